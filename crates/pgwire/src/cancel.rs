//! Cancel requests: BackendKeyData gives each connection a process id and a
//! secret; a CancelRequest on a new connection that presents both cancels
//! the statement that connection is running.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use tessera_sql::session::CancelHandle;

/// The server's live connections by process id.
#[derive(Default)]
pub(crate) struct CancelRegistry {
    connections: Mutex<HashMap<i32, (i32, CancelHandle)>>,
    next_pid: AtomicI32,
}

/// A registered connection; unregisters it when dropped.
pub(crate) struct CancelKey {
    registry: Arc<CancelRegistry>,
    /// Process id sent in BackendKeyData.
    pub pid: i32,
    /// Secret sent in BackendKeyData.
    pub secret: i32,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        if let Ok(mut connections) = self.registry.connections.lock() {
            connections.remove(&self.pid);
        }
    }
}

impl CancelRegistry {
    /// Registers a connection's cancel handle under a new pid and secret.
    pub(crate) fn register(self: &Arc<Self>, handle: CancelHandle) -> CancelKey {
        let secret = crate::auth::random_u64() as i32;
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let pid = loop {
            // Positive, unique among live connections (the counter wraps).
            let pid = self
                .next_pid
                .fetch_add(1, Ordering::Relaxed)
                .rem_euclid(i32::MAX - 1)
                + 1;
            if !connections.contains_key(&pid) {
                break pid;
            }
        };
        connections.insert(pid, (secret, handle));
        CancelKey {
            registry: self.clone(),
            pid,
            secret,
        }
    }

    /// Cancels `pid`'s running statement if `secret` is its key; a wrong key
    /// is ignored silently, as in PostgreSQL.
    pub(crate) fn cancel(&self, pid: i32, secret: &[u8]) -> bool {
        let Ok(secret) = <[u8; 4]>::try_from(secret) else {
            return false;
        };
        let secret = i32::from_be_bytes(secret);
        let connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        match connections.get(&pid) {
            Some((key, handle)) if *key == secret => {
                handle.cancel();
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancels_only_with_the_right_secret() {
        let registry = Arc::new(CancelRegistry::default());
        let key = registry.register(CancelHandle::default());
        let other = registry.register(CancelHandle::default());
        assert_ne!(key.pid, other.pid);
        assert!(!registry.cancel(key.pid, &key.secret.wrapping_add(1).to_be_bytes()));
        assert!(!registry.cancel(key.pid, &[1, 2, 3]));
        assert!(registry.cancel(key.pid, &key.secret.to_be_bytes()));
        let (pid, secret) = (key.pid, key.secret);
        drop(key);
        assert!(!registry.cancel(pid, &secret.to_be_bytes()));
    }
}
