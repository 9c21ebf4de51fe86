//! The accept loop: one task per connection (which hands the connection to
//! a thread of its own after startup), all ended when the server is.

use std::sync::Arc;
use std::time::Duration;

use tessera_sql::SqlEngine;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::auth::{AuthConfig, Authenticator};
use crate::cancel::CancelRegistry;

/// What every connection of a server shares.
pub(crate) struct Shared {
    /// The node's SQL engine.
    pub engine: Arc<SqlEngine>,
    /// Password checks.
    pub auth: Authenticator,
    /// Live connections, for cancel requests.
    pub cancels: Arc<CancelRegistry>,
}

/// Serves PostgreSQL clients on `listener` until this future is dropped
/// (for example by aborting its task), which also closes every connection.
///
/// Each connection gets its own task (then thread) and
/// [`tessera_sql::Session`]; a failing or malicious connection ends only
/// itself.
pub async fn serve(listener: TcpListener, engine: Arc<SqlEngine>, auth: AuthConfig) {
    let shared = Arc::new(Shared {
        engine,
        auth: Authenticator::new(&auth),
        cancels: Arc::new(CancelRegistry::default()),
    });
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, auth = %auth.method, "SQL server listening");
    }
    // Owned here so that dropping the server aborts its connections.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(crate::connection::run(stream, peer, shared.clone()));
                }
                Err(err) => {
                    // Out of file descriptors, for example: wait, don't spin.
                    tracing::warn!(%err, "cannot accept a SQL connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(err) = done {
                    if err.is_panic() {
                        tracing::error!(%err, "a SQL connection task panicked");
                    }
                }
            }
        }
    }
}
