//! Range ids for splits, handed out by the meta range's leader.

use prost::Message as _;
use tessera_proto::meta::{mutation, Mutation, Put, RangeDescriptor};
use tessera_raft::StoreHandle;
use tessera_types::{keys, RangeId};

/// Hands out range ids from this node's replica of the meta range: the
/// last id handed out is stored at `keys::RANGE_ID_KEY` and raised through
/// Raft before an id is returned, so a new leader never repeats one.
pub struct RangeIdAllocator {
    store: StoreHandle,
    /// One allocation at a time on this node.
    lock: tokio::sync::Mutex<()>,
}

impl RangeIdAllocator {
    /// The allocator of the node whose store is `store`.
    pub fn new(store: StoreHandle) -> Self {
        RangeIdAllocator {
            store,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// A range id no other range has or had. Fails with the store's error
    /// (not leader of the meta range, unavailable) when this node cannot
    /// hand one out.
    pub async fn allocate(&self) -> tessera_raft::Result<RangeId> {
        let _one_at_a_time = self.lock.lock().await;
        let last = match self.store.get(keys::RANGE_ID_KEY.to_vec()).await? {
            Some(bytes) => {
                let bytes: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                    tessera_raft::Error::InvalidInput(format!(
                        "the last range id is {} bytes, not 8",
                        bytes.len()
                    ))
                })?;
                RangeId::from_be_bytes(bytes)
            }
            // No split yet: above every range the meta range records.
            None => self.highest_recorded().await?,
        };
        let next = last + 1;
        self.store
            .write(vec![Mutation {
                op: Some(mutation::Op::Put(Put {
                    key: keys::RANGE_ID_KEY.to_vec(),
                    value: next.to_be_bytes().to_vec(),
                })),
            }])
            .await?;
        Ok(next)
    }

    async fn highest_recorded(&self) -> tessera_raft::Result<RangeId> {
        let end = tessera_types::encoding::prefix_end(keys::META_PREFIX).unwrap_or_default();
        let mut highest = keys::FIRST_USER_RANGE_ID;
        let mut cursor = keys::META_PREFIX.to_vec();
        loop {
            let (records, resume) = self.store.scan(cursor, end.clone(), 1000).await?;
            for (_, value) in records {
                let descriptor = RangeDescriptor::decode(&value[..]).map_err(|e| {
                    tessera_raft::Error::InvalidInput(format!("corrupt range descriptor: {e}"))
                })?;
                highest = highest.max(descriptor.range_id);
            }
            match resume {
                Some(next) => cursor = next,
                None => return Ok(highest),
            }
        }
    }
}
