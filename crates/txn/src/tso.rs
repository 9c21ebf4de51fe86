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

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_kv::KvClient;
use tessera_types::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::{TxnError, TxnResult};

/// A timestamp, and the watched key's value at it if the oracle read it
/// (`Some(None)`: the key is absent).
#[derive(Clone, Debug)]
pub(crate) struct Stamp {
    pub ts: Timestamp,
    pub read: Option<Option<Vec<u8>>>,
}

type Waiter = oneshot::Sender<TxnResult<Stamp>>;

/// Hands out timestamps from the oracle. Callers that ask while a request
/// is in flight are served together by the next one, so a busy gateway
/// makes about one round trip per round trip's worth of callers.
#[derive(Clone)]
pub struct TsoClient {
    requests: mpsc::UnboundedSender<Waiter>,
    /// The last batch's last stamp (unless the oracle was to read the
    /// watched key with it and did not), and when the batch was asked for.
    recent: Arc<Mutex<Option<(Instant, Stamp)>>>,
}

impl TsoClient {
    /// A client that reaches the oracle through `kv`. Spawns its batching
    /// task on the current tokio runtime.
    /// `watched` names the meta range key the oracle reads with each batch
    /// (empty: none).
    pub fn new(kv: KvClient, watched: Vec<u8>) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        let recent = Arc::new(Mutex::new(None));
        tokio::spawn(batch_loop(Arc::new(kv), watched, rx, recent.clone()));
        TsoClient { requests, recent }
    }

    /// The last stamp handed out, if it came from a batch asked for less
    /// than `max_age` ago (by this process's monotonic clock), with the
    /// watched key's value if there is one. Every timestamp handed out
    /// after that request was sent is above it, so a writer that waits
    /// `max_age` after its commit, once it has its commit timestamp, knows
    /// that no read begun after that wait starts below its commit from
    /// this stamp.
    pub(crate) fn recent_stamp(&self, max_age: Duration) -> Option<Stamp> {
        let recent = self.recent.lock().expect("the recent stamp's lock");
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
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(tx)
            .map_err(|_| TxnError::Internal("the timestamp client stopped".into()))?;
        rx.await
            .map_err(|_| TxnError::Internal("the timestamp client stopped".into()))?
    }
}

async fn batch_loop(
    kv: Arc<KvClient>,
    watched: Vec<u8>,
    mut rx: mpsc::UnboundedReceiver<Waiter>,
    recent: Arc<Mutex<Option<(Instant, Stamp)>>>,
) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(next) = rx.try_recv() {
            waiters.push(next);
        }
        let count = waiters.len() as u32;
        let asked = Instant::now();
        match kv.timestamps_reading(count, &watched).await {
            Ok((start, granted, read)) if granted >= count => {
                if watched.is_empty() || read.is_some() {
                    let last = Stamp {
                        ts: Timestamp(start.0 + u64::from(count) - 1),
                        read: read.clone(),
                    };
                    *recent.lock().expect("the recent stamp's lock") = Some((asked, last));
                }
                for (i, waiter) in waiters.into_iter().enumerate() {
                    let _ = waiter.send(Ok(Stamp {
                        ts: Timestamp(start.0 + i as u64),
                        read: read.clone(),
                    }));
                }
            }
            Ok((_, granted, _)) => {
                let err = format!("the oracle granted {granted} of {count} timestamps");
                for waiter in waiters {
                    let _ = waiter.send(Err(TxnError::Internal(err.clone())));
                }
            }
            Err(err) => {
                let err = TxnError::from(err).to_string();
                for waiter in waiters {
                    let _ = waiter.send(Err(TxnError::Unavailable(err.clone())));
                }
            }
        }
    }
}
