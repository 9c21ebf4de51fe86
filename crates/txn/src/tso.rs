//! The timestamp oracle's client.

use std::sync::Arc;

use tessera_kv::KvClient;
use tessera_types::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::{TxnError, TxnResult};

type Waiter = oneshot::Sender<TxnResult<Timestamp>>;

/// Hands out timestamps from the oracle. Callers that ask while a request
/// is in flight are served together by the next one, so a busy gateway
/// makes about one round trip per round trip's worth of callers.
#[derive(Clone)]
pub struct TsoClient {
    requests: mpsc::UnboundedSender<Waiter>,
}

impl TsoClient {
    /// A client that reaches the oracle through `kv`. Spawns its batching
    /// task on the current tokio runtime.
    pub fn new(kv: KvClient) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::spawn(batch_loop(Arc::new(kv), rx));
        TsoClient { requests }
    }

    /// A new timestamp, above every timestamp handed out before this call.
    pub async fn timestamp(&self) -> TxnResult<Timestamp> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(tx)
            .map_err(|_| TxnError::Internal("the timestamp client stopped".into()))?;
        rx.await
            .map_err(|_| TxnError::Internal("the timestamp client stopped".into()))?
    }
}

async fn batch_loop(kv: Arc<KvClient>, mut rx: mpsc::UnboundedReceiver<Waiter>) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(next) = rx.try_recv() {
            waiters.push(next);
        }
        let count = waiters.len() as u32;
        match kv.timestamps(count).await {
            Ok((start, granted)) if granted >= count => {
                for (i, waiter) in waiters.into_iter().enumerate() {
                    let _ = waiter.send(Ok(Timestamp(start.0 + i as u64)));
                }
            }
            Ok((_, granted)) => {
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
