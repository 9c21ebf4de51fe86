//! The timestamp oracle's client.
//!
//! The client may name one key of the meta range for the oracle to read
//! with every batch, as of the batch's last timestamp (the SQL layer's
//! schema version, which every statement reads). The value read there is
//! the key's value at every timestamp of the batch: a commit of the key
//! between one of them and the last would need a commit timestamp from the
//! batch itself, which this client handed out together with the value, and
//! - a two-phase commit asks for its commit timestamp only once its
//!   prewrite has applied, so its lock was on the key when the oracle read
//!   it, and the oracle then gives no value;
//! - a one-phase commit proposed after the oracle's read is raised above
//!   every timestamp read at, the batch's last included (and one proposed
//!   before got its commit timestamp from an earlier batch).
//!
//! The client also keeps the last batch's last timestamp, with the time it
//! asked for the batch, for reads that may start at a recent timestamp
//! instead of a fresh one ([`TsoClient::recent_stamp`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tessera_kv::KvClient;
use tessera_types::Timestamp;
use tokio::sync::oneshot;

use crate::{TxnError, TxnResult};

/// A timestamp, and the watched key's value at it if the oracle read it
/// (`Some(None)`: the key is absent).
#[derive(Clone, Debug)]
pub(crate) struct Stamp {
    pub ts: Timestamp,
    pub read: Option<Option<Vec<u8>>>,
}

/// What a caller waiting behind a request in flight is told: its stamp, or
/// that it asks next, for itself and whoever queued behind it.
enum Answer {
    Stamp(TxnResult<Stamp>),
    Ask,
}

type Waiter = oneshot::Sender<Answer>;

/// Hands out timestamps from the oracle. Callers that ask while a request
/// is in flight are served together by the next one, so a busy gateway
/// makes about one round trip per round trip's worth of callers.
///
/// The request is made by a caller, on its own thread, not by a task of
/// the runtime's: the first caller to find none in flight asks for itself
/// and for those queued, and when its answer comes it hands the asking to
/// the first caller queued meanwhile, which it wakes in any case. A caller
/// that finds the oracle idle (on this node, say) gets its stamp without
/// waking another thread.
#[derive(Clone)]
pub struct TsoClient {
    shared: Arc<Shared>,
}

struct Shared {
    kv: KvClient,
    /// The meta range key the oracle reads with each batch (empty: none).
    watched: Vec<u8>,
    queue: Mutex<Queue>,
    /// The last batch's last stamp (unless the oracle was to read the
    /// watched key with it and did not), and when the batch was asked for.
    recent: Mutex<Option<(Instant, Stamp)>>,
}

#[derive(Default)]
struct Queue {
    /// A caller is asking the oracle.
    asking: bool,
    /// The callers waiting for the next request, in order.
    waiters: VecDeque<Waiter>,
}

impl TsoClient {
    /// A client that reaches the oracle through `kv`.
    /// `watched` names the meta range key the oracle reads with each batch
    /// (empty: none).
    pub fn new(kv: KvClient, watched: Vec<u8>) -> Self {
        let shared = Shared {
            kv,
            watched,
            queue: Mutex::new(Queue::default()),
            recent: Mutex::new(None),
        };
        TsoClient {
            shared: Arc::new(shared),
        }
    }

    /// The last stamp handed out, if it came from a batch asked for less
    /// than `max_age` ago (by this process's monotonic clock), with the
    /// watched key's value if there is one. Every timestamp handed out
    /// after that request was sent is above it, so a writer that waits
    /// `max_age` after its commit, once it has its commit timestamp, knows
    /// that no read begun after that wait starts below its commit from
    /// this stamp.
    pub(crate) fn recent_stamp(&self, max_age: Duration) -> Option<Stamp> {
        let recent = self.shared.recent.lock();
        recent
            .as_ref()
            .filter(|(asked, _)| asked.elapsed() < max_age)
            .map(|(_, stamp)| stamp.clone())
    }

    /// A new timestamp, above every timestamp handed out before this call.
    pub async fn timestamp(&self) -> TxnResult<Timestamp> {
        Ok(self.stamp().await?.ts)
    }

    /// A new timestamp, with the watched key's value at it if the oracle
    /// read it.
    pub(crate) async fn stamp(&self) -> TxnResult<Stamp> {
        let waiting = {
            let mut queue = self.shared.queue.lock();
            if queue.asking {
                let (tx, rx) = oneshot::channel();
                queue.waiters.push_back(tx);
                Some(rx)
            } else {
                queue.asking = true;
                None
            }
        };
        if let Some(rx) = waiting {
            match rx.await {
                Ok(Answer::Stamp(stamp)) => return stamp,
                Ok(Answer::Ask) => {}
                Err(_) => {
                    return Err(TxnError::Internal(
                        "the request for its timestamp was dropped".into(),
                    ))
                }
            }
        }
        self.ask().await
    }

    /// Asks the oracle for a batch: this caller's stamp (the first) and
    /// those of the callers queued now; then hands the asking on (also if
    /// this future is dropped on the way).
    async fn ask(&self) -> TxnResult<Stamp> {
        let mut turn = Turn {
            shared: &self.shared,
            batch: self.shared.queue.lock().waiters.drain(..).collect(),
        };
        let count = turn.batch.len() as u32 + 1;
        let asked = Instant::now();
        let shared = &self.shared;
        let stamps = match shared.kv.timestamps_reading(count, &shared.watched).await {
            Ok((start, granted, read)) if granted >= count => {
                if shared.watched.is_empty() || read.is_some() {
                    let last = Stamp {
                        ts: Timestamp(start.0 + u64::from(count) - 1),
                        read: read.clone(),
                    };
                    *shared.recent.lock() = Some((asked, last));
                }
                Ok((start, read))
            }
            Ok((_, granted, _)) => Err(Failed::Internal(format!(
                "the oracle granted {granted} of {count} timestamps"
            ))),
            Err(err) => Err(Failed::Unavailable(TxnError::from(err).to_string())),
        };
        let stamp = |i: u64| match &stamps {
            Ok((start, read)) => Ok(Stamp {
                ts: Timestamp(start.0 + i),
                read: read.clone(),
            }),
            Err(Failed::Internal(err)) => Err(TxnError::Internal(err.clone())),
            Err(Failed::Unavailable(err)) => Err(TxnError::Unavailable(err.clone())),
        };
        for (i, waiter) in std::mem::take(&mut turn.batch).into_iter().enumerate() {
            let _ = waiter.send(Answer::Stamp(stamp(i as u64 + 1)));
        }
        stamp(0)
    }
}

/// Why a batch was not granted, for each of its callers.
enum Failed {
    Internal(String),
    Unavailable(String),
}

/// A caller's turn at asking the oracle, with the callers its request is
/// for: when it ends, the first caller still waiting asks next, or no one
/// is asking. If the asker gave up before its answer came (its future was
/// dropped), the callers of its batch wait on at the head of the queue.
struct Turn<'a> {
    shared: &'a Shared,
    /// The callers queued behind this one when it asked, until answered.
    batch: Vec<Waiter>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut queue = self.shared.queue.lock();
        for waiter in self.batch.drain(..).rev() {
            queue.waiters.push_front(waiter);
        }
        while let Some(next) = queue.waiters.pop_front() {
            if next.send(Answer::Ask).is_ok() {
                return;
            }
        }
        queue.asking = false;
    }
}
