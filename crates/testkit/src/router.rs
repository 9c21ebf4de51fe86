//! A message router between in-process stores with fault injection.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tessera_proto::raft::RaftEnvelope;
use tessera_raft::{StoreHandle, Transport};
use tessera_types::NodeId;

struct Faults {
    /// Directed links that lose every message.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Probability of losing any one message.
    drop_rate: f64,
    /// Added to every delivery.
    delay: Duration,
    rng: SmallRng,
}

struct Delayed {
    at: Instant,
    seq: u64,
    to: NodeId,
    envelopes: Vec<RaftEnvelope>,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct DelayQueue {
    heap: BinaryHeap<Reverse<Delayed>>,
    seq: u64,
    stopped: bool,
}

/// Routes Raft messages between the stores of a test cluster.
pub struct Router {
    stores: Mutex<HashMap<NodeId, StoreHandle>>,
    faults: Mutex<Faults>,
    queue: Mutex<DelayQueue>,
    wakeup: Condvar,
}

impl Router {
    /// A router with no faults; `seed` drives random message loss.
    pub fn new(seed: u64) -> Arc<Self> {
        let router = Arc::new(Self {
            stores: Mutex::new(HashMap::new()),
            faults: Mutex::new(Faults {
                cut: BTreeSet::new(),
                drop_rate: 0.0,
                delay: Duration::ZERO,
                rng: SmallRng::seed_from_u64(seed),
            }),
            queue: Mutex::new(DelayQueue::default()),
            wakeup: Condvar::new(),
        });
        let weak = Arc::downgrade(&router);
        std::thread::Builder::new()
            .name("router-delay".into())
            .spawn(move || delay_loop(weak))
            .expect("spawn the delay thread");
        router
    }

    /// Connects a store; its messages are delivered from now on.
    pub fn register(&self, node: NodeId, handle: StoreHandle) {
        self.stores.lock().insert(node, handle);
    }

    /// Disconnects a store (it is stopped or restarting).
    pub fn unregister(&self, node: NodeId) {
        self.stores.lock().remove(&node);
    }

    /// A transport for `node`'s store.
    pub fn transport(self: &Arc<Self>, node: NodeId) -> Arc<dyn Transport> {
        Arc::new(RouterTransport {
            from: node,
            router: self.clone(),
        })
    }

    /// Loses every message between `node` and every other node, both ways.
    pub fn isolate(&self, node: NodeId, all: &[NodeId]) {
        let mut faults = self.faults.lock();
        for other in all.iter().filter(|n| **n != node) {
            faults.cut.insert((node, *other));
            faults.cut.insert((*other, node));
        }
    }

    /// Loses every message from `from` to `to`.
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.faults.lock().cut.insert((from, to));
    }

    /// Restores every link and stops random loss and delay.
    pub fn heal(&self) {
        let mut faults = self.faults.lock();
        faults.cut.clear();
        faults.drop_rate = 0.0;
        faults.delay = Duration::ZERO;
    }

    /// Loses each message with probability `rate`.
    pub fn set_drop_rate(&self, rate: f64) {
        self.faults.lock().drop_rate = rate;
    }

    /// Delays every message by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.faults.lock().delay = delay;
    }

    fn route(&self, from: NodeId, to: NodeId, mut envelopes: Vec<RaftEnvelope>) {
        let delay = {
            let mut faults = self.faults.lock();
            if faults.cut.contains(&(from, to)) {
                return;
            }
            if faults.drop_rate > 0.0 {
                let rate = faults.drop_rate;
                envelopes.retain(|_| !faults.rng.gen_bool(rate));
            }
            faults.delay
        };
        if envelopes.is_empty() {
            return;
        }
        if delay.is_zero() {
            self.deliver(to, envelopes);
        } else {
            let mut queue = self.queue.lock();
            queue.seq += 1;
            let seq = queue.seq;
            queue.heap.push(Reverse(Delayed {
                at: Instant::now() + delay,
                seq,
                to,
                envelopes,
            }));
            self.wakeup.notify_one();
        }
    }

    fn deliver(&self, to: NodeId, envelopes: Vec<RaftEnvelope>) {
        let store = self.stores.lock().get(&to).cloned();
        if let Some(store) = store {
            let _ = store.deliver(envelopes);
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.queue.lock().stopped = true;
        self.wakeup.notify_all();
    }
}

fn delay_loop(router: std::sync::Weak<Router>) {
    loop {
        let Some(router) = router.upgrade() else {
            return;
        };
        let due = {
            let mut queue = router.queue.lock();
            if queue.stopped {
                return;
            }
            let now = Instant::now();
            match queue.heap.peek() {
                Some(Reverse(next)) if next.at <= now => queue.heap.pop().map(|Reverse(d)| d),
                Some(Reverse(next)) => {
                    let wait = next.at - now;
                    router.wakeup.wait_for(&mut queue, wait);
                    None
                }
                None => {
                    router
                        .wakeup
                        .wait_for(&mut queue, Duration::from_millis(50));
                    None
                }
            }
        };
        if let Some(delayed) = due {
            router.deliver(delayed.to, delayed.envelopes);
        }
    }
}

struct RouterTransport {
    from: NodeId,
    router: Arc<Router>,
}

impl Transport for RouterTransport {
    fn send(&self, to: NodeId, envelopes: Vec<RaftEnvelope>) {
        self.router.route(self.from, to, envelopes);
    }
}
