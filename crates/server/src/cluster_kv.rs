//! [`ClusterKv`]: the SQL layer's storage interface over the replicated
//! cluster, through a [`KvClient`].

use tessera_kv::{ClientError, KvClient};
use tessera_proto::meta::{mutation, Delete, Mutation, Put};
use tessera_sql::kv::{Kv, KvWrite};
use tessera_sql::{code, SqlError, SqlResult};
use tessera_types::keys::USER_MIN;
use tokio::runtime::Handle;

/// [`Kv`] over the cluster. The SQL layer is synchronous, so each call
/// blocks on the runtime; it must run on a blocking thread
/// (`spawn_blocking`), as the pgwire frontend's session calls do.
pub struct ClusterKv {
    client: KvClient,
    runtime: Handle,
}

impl ClusterKv {
    /// A store that sends requests with `client` on `runtime`.
    pub fn new(client: KvClient, runtime: Handle) -> Self {
        Self { client, runtime }
    }

    /// Applies one batch, splitting it where a range ends: `KvClient::batch`
    /// needs every key in one range. The parts are applied one after the
    /// other, so a batch over several ranges is not atomic; that waits for
    /// transactions (2PC).
    async fn apply(&self, mut mutations: Vec<Mutation>) -> Result<(), ClientError> {
        let mut pending = Vec::new();
        loop {
            match self.client.batch(mutations.clone()).await {
                Ok(()) => {}
                Err(ClientError::CrossRange(key)) => {
                    let (below, rest): (Vec<_>, Vec<_>) = mutations
                        .into_iter()
                        .partition(|m| mutation_key(m) < key.as_slice());
                    if below.is_empty() || rest.is_empty() {
                        // The split key does not divide the batch: give up
                        // rather than loop.
                        return Err(ClientError::CrossRange(key));
                    }
                    mutations = below;
                    pending.push(rest);
                    continue;
                }
                Err(err) => return Err(err),
            }
            match pending.pop() {
                Some(next) => mutations = next,
                None => return Ok(()),
            }
        }
    }
}

fn mutation_key(m: &Mutation) -> &[u8] {
    match &m.op {
        Some(mutation::Op::Put(put)) => &put.key,
        Some(mutation::Op::Delete(delete)) => &delete.key,
        None => &[],
    }
}

fn to_mutation(write: KvWrite) -> Mutation {
    Mutation {
        op: Some(match write {
            KvWrite::Put(key, value) => mutation::Op::Put(Put { key, value }),
            KvWrite::Delete(key) => mutation::Op::Delete(Delete { key }),
        }),
    }
}

/// Maps a client error to the SQLSTATE the SQL client sees.
fn sql_error(err: ClientError) -> SqlError {
    match err {
        ClientError::Unavailable(msg) => {
            SqlError::new(code::CONNECTION_FAILURE, "the cluster is unavailable").with_detail(msg)
        }
        other => SqlError::internal(format!("storage error: {other}")),
    }
}

impl Kv for ClusterKv {
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        self.runtime
            .block_on(self.client.get(key))
            .map_err(sql_error)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.runtime
            .block_on(self.client.scan(start, end, limit))
            .map_err(sql_error)
    }

    fn write(&self, writes: Vec<KvWrite>) -> SqlResult<()> {
        // The system keyspace (the SQL catalog) and user keys are different
        // ranges: one batch for each side.
        let (system, user): (Vec<_>, Vec<_>) = writes
            .into_iter()
            .map(to_mutation)
            .partition(|m| mutation_key(m) < USER_MIN);
        self.runtime.block_on(async {
            for batch in [system, user] {
                if !batch.is_empty() {
                    self.apply(batch).await.map_err(sql_error)?;
                }
            }
            Ok(())
        })
    }
}
