use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tessera_types::NodeId;

/// The gRPC address of every node this node has heard of: from the node
/// records of the meta range, bootstrap, and hello handshakes.
#[derive(Clone, Default)]
pub struct AddressBook {
    addresses: Arc<RwLock<HashMap<NodeId, String>>>,
}

impl AddressBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records (or updates) a node's address.
    pub fn insert(&self, node_id: NodeId, address: impl Into<String>) {
        if node_id == 0 {
            return;
        }
        self.addresses.write().insert(node_id, address.into());
    }

    /// A node's address, if known.
    pub fn get(&self, node_id: NodeId) -> Option<String> {
        self.addresses.read().get(&node_id).cloned()
    }

    /// Every known node, sorted by id.
    pub fn all(&self) -> Vec<(NodeId, String)> {
        let mut all: Vec<_> = self
            .addresses
            .read()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        all.sort();
        all
    }
}
