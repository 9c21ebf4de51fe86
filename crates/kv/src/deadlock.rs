//! Deadlock detection: the cluster's wait-for graph.
//!
//! A transaction that waits for another's lock registers an edge
//! `waiter -> holder` with the node that leads the meta range. If the new
//! edge closes a cycle, it is refused and the waiter is the victim: it gives
//! up with 40P01 and its locks are released, which breaks the cycle. Edges
//! expire unless renewed (a waiter renews its edge each time it retries), so
//! the graph forgets waiters whose coordinator died, and a leadership change
//! that loses the graph only delays detection by one renewal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// One transaction waiting for another's lock on `key`.
#[derive(Debug, Clone)]
struct Edge {
    key: Vec<u8>,
    renewed: Instant,
}

/// The wait-for graph between transactions, identified by their start
/// timestamps.
#[derive(Debug)]
pub struct WaitForGraph {
    /// waiter -> holder -> edge.
    edges: HashMap<u64, HashMap<u64, Edge>>,
    /// How long an edge lives without renewal.
    ttl: Duration,
}

/// A cycle found by [`WaitForGraph::wait`]: the transactions in wait order,
/// starting with the waiter, and the key each one waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// `(transaction, key it waits for)` around the cycle.
    pub waits: Vec<(u64, Vec<u8>)>,
}

impl WaitForGraph {
    /// An empty graph whose edges expire `ttl` after their last renewal.
    pub fn new(ttl: Duration) -> Self {
        WaitForGraph {
            edges: HashMap::new(),
            ttl,
        }
    }

    /// Records (or renews) that `waiter` waits for `holder`'s lock on `key`,
    /// unless that closes a cycle, which is returned instead.
    pub fn wait(
        &mut self,
        waiter: u64,
        holder: u64,
        key: &[u8],
        now: Instant,
    ) -> Result<(), Cycle> {
        self.expire(now);
        if let Some(mut path) = self.path(holder, waiter) {
            path.insert(0, (waiter, key.to_vec()));
            return Err(Cycle { waits: path });
        }
        self.edges.entry(waiter).or_default().insert(
            holder,
            Edge {
                key: key.to_vec(),
                renewed: now,
            },
        );
        Ok(())
    }

    /// Forgets what `waiter` waits for: it got its lock or gave up.
    pub fn clean_up(&mut self, waiter: u64) {
        self.edges.remove(&waiter);
    }

    /// The number of waiting transactions.
    pub fn waiters(&self) -> usize {
        self.edges.len()
    }

    fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.edges.retain(|_, holders| {
            holders.retain(|_, edge| now.duration_since(edge.renewed) < ttl);
            !holders.is_empty()
        });
    }

    /// A path of waits from `from` to `to`, if there is one: each
    /// transaction on it with the key it waits for (depth-first).
    fn path(&self, from: u64, to: u64) -> Option<Vec<(u64, Vec<u8>)>> {
        // Each frame: a transaction, the key of the edge taken out of it
        // (once one is), and the edges still to try.
        struct Frame {
            txn: u64,
            taken: Vec<u8>,
            untried: Vec<(u64, Vec<u8>)>,
        }
        let mut stack = vec![Frame {
            txn: from,
            taken: Vec::new(),
            untried: self.neighbours(from),
        }];
        let mut visited = std::collections::HashSet::from([from]);
        while let Some(frame) = stack.last_mut() {
            let Some((holder, key)) = frame.untried.pop() else {
                stack.pop();
                continue;
            };
            frame.taken = key;
            if holder == to {
                return Some(stack.into_iter().map(|f| (f.txn, f.taken)).collect());
            }
            if visited.insert(holder) {
                stack.push(Frame {
                    txn: holder,
                    taken: Vec::new(),
                    untried: self.neighbours(holder),
                });
            }
        }
        None
    }

    fn neighbours(&self, txn: u64) -> Vec<(u64, Vec<u8>)> {
        self.edges
            .get(&txn)
            .map(|holders| {
                let mut v: Vec<_> = holders.iter().map(|(h, e)| (*h, e.key.clone())).collect();
                v.sort();
                v
            })
            .unwrap_or_default()
    }
}

/// A [`WaitForGraph`] shared by a node's KV service.
#[derive(Clone)]
pub struct DeadlockDetector {
    graph: Arc<Mutex<WaitForGraph>>,
}

impl DeadlockDetector {
    /// How long an edge lives without renewal. Waiters renew theirs at
    /// least every 100 ms.
    pub const EDGE_TTL: Duration = Duration::from_secs(2);

    /// An empty detector.
    pub fn new() -> Self {
        DeadlockDetector {
            graph: Arc::new(Mutex::new(WaitForGraph::new(Self::EDGE_TTL))),
        }
    }

    /// See [`WaitForGraph::wait`].
    pub fn wait(&self, waiter: u64, holder: u64, key: &[u8]) -> Result<(), Cycle> {
        self.graph.lock().wait(waiter, holder, key, Instant::now())
    }

    /// See [`WaitForGraph::clean_up`].
    pub fn clean_up(&self, waiter: u64) {
        self.graph.lock().clean_up(waiter)
    }
}

impl Default for DeadlockDetector {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_is_refused_and_names_its_waits() {
        let now = Instant::now();
        let mut g = WaitForGraph::new(Duration::from_secs(1));
        g.wait(1, 2, b"a", now).unwrap();
        g.wait(2, 3, b"b", now).unwrap();
        // 3 -> 1 closes 1 -> 2 -> 3 -> 1.
        let cycle = g.wait(3, 1, b"c", now).unwrap_err();
        assert_eq!(
            cycle.waits,
            vec![(3, b"c".to_vec()), (1, b"a".to_vec()), (2, b"b".to_vec())]
        );
        // The refused edge was not recorded: 3 may wait for someone else.
        g.wait(3, 4, b"d", now).unwrap();
        assert_eq!(g.waiters(), 3);
    }

    #[test]
    fn two_way_deadlock_and_no_false_positive_after_clean_up() {
        let now = Instant::now();
        let mut g = WaitForGraph::new(Duration::from_secs(1));
        g.wait(1, 2, b"x", now).unwrap();
        assert!(g.wait(2, 1, b"y", now).is_err());
        // 1 got its lock: 2 may now wait for 1.
        g.clean_up(1);
        g.wait(2, 1, b"y", now).unwrap();
    }

    #[test]
    fn edges_expire_unless_renewed() {
        let start = Instant::now();
        let mut g = WaitForGraph::new(Duration::from_secs(1));
        g.wait(1, 2, b"x", start).unwrap();
        g.wait(3, 4, b"z", start).unwrap();
        let later = start + Duration::from_millis(800);
        g.wait(3, 4, b"z", later).unwrap();
        // 1's edge is stale by now; 3's was renewed.
        let much_later = start + Duration::from_millis(1500);
        g.wait(2, 1, b"y", much_later).unwrap();
        assert!(g.wait(4, 3, b"w", much_later).is_err());
    }

    #[test]
    fn branching_waits_find_the_cycle_through_any_branch() {
        let now = Instant::now();
        let mut g = WaitForGraph::new(Duration::from_secs(1));
        // 1 waits for 2 and 3 (locks in two ranges); 3 waits for 4.
        g.wait(1, 2, b"a", now).unwrap();
        g.wait(1, 3, b"b", now).unwrap();
        g.wait(3, 4, b"c", now).unwrap();
        g.wait(2, 5, b"e", now).unwrap();
        let cycle = g.wait(4, 1, b"d", now).unwrap_err();
        assert_eq!(
            cycle.waits,
            vec![(4, b"d".to_vec()), (1, b"b".to_vec()), (3, b"c".to_vec())]
        );
    }
}
