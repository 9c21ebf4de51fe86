use std::collections::VecDeque;
use std::sync::Arc;

use crate::{Cf, Result, Snapshot};

/// How many entries a `ScanIter` fetches from its snapshot at a time.
const SCAN_PAGE: usize = 256;

/// Iterates `[start, end)` of one column family of a snapshot in key order,
/// fetching a page at a time so that no engine iterator outlives a call.
pub struct ScanIter {
    snapshot: Arc<dyn Snapshot>,
    cf: Cf,
    /// The next key to fetch from, or None once the span is exhausted.
    cursor: Option<Vec<u8>>,
    end: Vec<u8>,
    page: VecDeque<(Vec<u8>, Vec<u8>)>,
}

impl ScanIter {
    /// Scans `[start, end)` of `cf` in `snapshot`; an empty `end` is unbounded.
    pub fn new(snapshot: Arc<dyn Snapshot>, cf: Cf, start: &[u8], end: &[u8]) -> Self {
        Self {
            snapshot,
            cf,
            cursor: Some(start.to_vec()),
            end: end.to_vec(),
            page: VecDeque::new(),
        }
    }

    fn fill(&mut self) -> Result<()> {
        let Some(cursor) = self.cursor.take() else {
            return Ok(());
        };
        let page = self
            .snapshot
            .scan_chunk(self.cf, &cursor, &self.end, SCAN_PAGE)?;
        if page.len() == SCAN_PAGE {
            // Resume just after the last key: the smallest key greater than it.
            let mut next = page[page.len() - 1].0.clone();
            next.push(0);
            self.cursor = Some(next);
        }
        self.page.extend(page);
        Ok(())
    }
}

impl Iterator for ScanIter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() {
            if let Err(err) = self.fill() {
                self.cursor = None;
                return Some(Err(err));
            }
        }
        self.page.pop_front().map(Ok)
    }
}
