//! [`Overlay`]: a snapshot with a batch's writes on top, for code that must
//! read its own writes before the batch is written (the Raft apply path
//! stages several commands into one batch, and a later command must see an
//! earlier one's effects).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::engine::Visitor;
use crate::{BatchOp, Cf, Result, Snapshot, WriteBatch};

type Pending = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A snapshot overlaid with pending writes.
pub struct Overlay {
    base: Arc<dyn Snapshot>,
    /// Per family: key -> new value, or `None` for a deletion.
    pending: [Pending; Cf::ALL.len()],
    /// Per family: spans removed by `DeleteRange` (before any pending write
    /// in them, which wins).
    removed: [Vec<(Vec<u8>, Vec<u8>)>; Cf::ALL.len()],
}

fn in_span(start: &[u8], end: &[u8], key: &[u8]) -> bool {
    key >= start && (end.is_empty() || key < end)
}

impl Overlay {
    /// `base` with nothing on top.
    pub fn new(base: Arc<dyn Snapshot>) -> Self {
        Overlay {
            base,
            pending: Default::default(),
            removed: Default::default(),
        }
    }

    /// Puts `batch`'s writes on top.
    pub fn apply(&mut self, batch: &WriteBatch) {
        for op in batch.ops() {
            match op {
                BatchOp::Put { cf, key, value } => {
                    self.pending[cf.index()].insert(key.clone(), Some(value.clone()));
                }
                BatchOp::Delete { cf, key } => {
                    self.pending[cf.index()].insert(key.clone(), None);
                }
                BatchOp::DeleteRange { cf, start, end } => {
                    self.pending[cf.index()].retain(|key, _| !in_span(start, end, key));
                    self.removed[cf.index()].push((start.clone(), end.clone()));
                }
            }
        }
    }

    fn is_removed(&self, cf: Cf, key: &[u8]) -> bool {
        self.removed[cf.index()]
            .iter()
            .any(|(start, end)| in_span(start, end, key))
    }
}

impl Snapshot for Overlay {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(value) = self.pending[cf.index()].get(key) {
            return Ok(value.clone());
        }
        if self.is_removed(cf, key) {
            return Ok(None);
        }
        self.base.get(cf, key)
    }

    fn scan_chunk(
        &self,
        cf: Cf,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        if limit > 0 {
            self.visit(cf, start, end, &mut |key, value| {
                out.push((key.to_vec(), value.to_vec()));
                Ok(out.len() < limit)
            })?;
        }
        Ok(out)
    }

    /// The base's walk, with the pending writes merged in as it goes: a
    /// walk that stops at its first entry (a key's newest version) reads no
    /// further in the base than that, as the base's own walk does.
    fn visit(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        let pending = &self.pending[cf.index()];
        if pending.is_empty() && self.removed[cf.index()].is_empty() {
            return self.base.visit(cf, start, end, visit);
        }
        if !end.is_empty() && start >= end {
            return Ok(());
        }
        let upper: Bound<&[u8]> = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        let mut staged = pending
            .range::<[u8], _>((Bound::Included(start), upper))
            .peekable();
        let mut stopped = false;
        self.base.visit(cf, start, end, &mut |key, value| {
            // The pending writes before this key, then this key: a pending
            // write of it shadows it.
            while let Some((staged_key, staged_value)) =
                staged.next_if(|(staged_key, _)| staged_key.as_slice() <= key)
            {
                let shadows = staged_key.as_slice() == key;
                if let Some(staged_value) = staged_value {
                    if !visit(staged_key, staged_value)? {
                        stopped = true;
                        return Ok(false);
                    }
                }
                if shadows {
                    return Ok(true);
                }
            }
            if self.is_removed(cf, key) {
                return Ok(true);
            }
            if !visit(key, value)? {
                stopped = true;
                return Ok(false);
            }
            Ok(true)
        })?;
        if stopped {
            return Ok(());
        }
        for (key, value) in staged {
            if let Some(value) = value {
                if !visit(key, value)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, MemoryEngine};

    #[test]
    fn pending_writes_shadow_the_base() {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for key in [b"a", b"b", b"c", b"d", b"e"] {
            batch.put(Cf::Default, key.to_vec(), b"base".to_vec());
        }
        engine.write(&batch, false).unwrap();
        let mut overlay = Overlay::new(engine.snapshot());
        let mut pending = WriteBatch::new();
        pending.delete(Cf::Default, b"b".to_vec());
        pending.put(Cf::Default, b"bb".to_vec(), b"new".to_vec());
        pending.put(Cf::Default, b"c".to_vec(), b"new".to_vec());
        pending.delete_range(Cf::Default, b"d".to_vec(), b"e".to_vec());
        pending.put(Cf::Lock, b"x".to_vec(), b"lock".to_vec());
        overlay.apply(&pending);

        assert_eq!(overlay.get(Cf::Default, b"b").unwrap(), None);
        assert_eq!(
            overlay.get(Cf::Default, b"c").unwrap(),
            Some(b"new".to_vec())
        );
        assert_eq!(overlay.get(Cf::Default, b"d").unwrap(), None);
        assert_eq!(
            overlay.get(Cf::Default, b"a").unwrap(),
            Some(b"base".to_vec())
        );
        let keys = |limit| {
            let mut keys = Vec::new();
            let mut cursor = Vec::new();
            loop {
                let chunk = overlay
                    .scan_chunk(Cf::Default, &cursor, b"", limit)
                    .unwrap();
                let done = chunk.len() < limit;
                for (key, value) in chunk {
                    cursor = key.clone();
                    cursor.push(0);
                    keys.push((
                        String::from_utf8(key).unwrap(),
                        String::from_utf8(value).unwrap(),
                    ));
                }
                if done {
                    return keys;
                }
            }
        };
        let expected: Vec<(String, String)> =
            [("a", "base"), ("bb", "new"), ("c", "new"), ("e", "base")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        for limit in 1..6 {
            assert_eq!(keys(limit), expected, "limit {limit}");
        }
        assert_eq!(overlay.scan_chunk(Cf::Lock, b"", b"", 10).unwrap().len(), 1);
    }

    #[test]
    fn visits_merge_pending_writes_and_stop_where_told() {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for i in 0..40u8 {
            batch.put(Cf::Write, vec![i * 2], vec![i]);
        }
        engine.write(&batch, false).unwrap();
        let mut overlay = Overlay::new(engine.snapshot());
        let mut pending = WriteBatch::new();
        pending.put(Cf::Write, vec![3], b"new".to_vec());
        pending.put(Cf::Write, vec![4], b"over".to_vec());
        pending.delete(Cf::Write, vec![6]);
        pending.put(Cf::Write, vec![200], b"last".to_vec());
        pending.delete_range(Cf::Write, vec![20], vec![30]);
        overlay.apply(&pending);
        // What the overlay must show: the same writes made to an engine.
        let written = MemoryEngine::new();
        written.write(&batch, false).unwrap();
        written.write(&pending, false).unwrap();
        let truth = written.snapshot();
        let spans: [(&[u8], &[u8]); 4] = [(b"", b""), (&[3], &[9]), (&[5], &[90]), (&[100], b"")];
        for (start, end) in spans {
            let expected = truth.scan_chunk(Cf::Write, start, end, 1000).unwrap();
            assert_eq!(
                overlay.scan_chunk(Cf::Write, start, end, 1000).unwrap(),
                expected,
                "{start:?}..{end:?}"
            );
            for stop_after in [1, 3, 7, usize::MAX] {
                let mut seen = Vec::new();
                overlay
                    .visit(Cf::Write, start, end, &mut |key, value| {
                        seen.push((key.to_vec(), value.to_vec()));
                        Ok(seen.len() < stop_after)
                    })
                    .unwrap();
                let want: Vec<_> = expected.iter().take(stop_after).cloned().collect();
                assert_eq!(
                    seen, want,
                    "{start:?}..{end:?}, stopping after {stop_after}"
                );
            }
        }
    }
}
