//! The schema catalog: database, table, index and sequence descriptors stored
//! as JSON in the system keyspace, cached by each gateway and revalidated
//! against a schema version key on every statement.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{code, SqlError, SqlResult};
use crate::kv::{Kv, KvWrite};
use crate::types::DataType;

/// Prefix of every SQL descriptor key.
const DESC_PREFIX: &[u8] = b"\x01sql/";
/// The schema version, which every schema change bumps and every statement
/// reads (a key of the meta range, as the descriptors are).
pub const VERSION_KEY: &[u8] = b"\x01sql/version";
const DB_PREFIX: &[u8] = b"\x01sql/db/";
const TABLE_PREFIX: &[u8] = b"\x01sql/tbl/";
const SEQ_PREFIX: &[u8] = b"\x01sql/seq/";
const SEQ_VALUE_PREFIX: &[u8] = b"\x01sql/seqval/";

/// The first OID handed to user objects (PostgreSQL's FirstNormalObjectId).
pub const FIRST_USER_OID: u32 = 16384;
/// OIDs are allocated in aligned blocks of this many (a table takes one
/// block for itself and its row type).
pub const OID_BLOCK: u32 = 64;

/// 64 random bits (from the OS, through uuid's v4 generator).
fn random_u64() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}
/// Databases every cluster has.
pub const DEFAULT_DATABASES: &[&str] = &["tessera", "postgres"];

/// A database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatabaseDesc {
    pub oid: u32,
    pub name: String,
}

/// A column of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnDesc {
    /// Stable id, also the attribute number (attnum).
    pub id: u32,
    pub name: String,
    pub ty: DataType,
    pub nullable: bool,
    /// The DEFAULT expression as SQL text.
    pub default: Option<String>,
    /// The hidden row id of a table without a primary key.
    pub hidden: bool,
}

/// An index of a table; index 1 is the primary index that holds the rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexDesc {
    /// Index id within the table (part of every key).
    pub id: u32,
    /// pg_class OID of the index.
    pub oid: u32,
    pub name: String,
    /// Column ids, with descending flags.
    pub columns: Vec<(u32, bool)>,
    pub unique: bool,
    pub primary: bool,
    /// Whether this index came from a UNIQUE/PRIMARY KEY constraint.
    pub constraint: bool,
}

/// A CHECK constraint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckDesc {
    pub name: String,
    /// The boolean expression as SQL text.
    pub expr: String,
}

/// What a FOREIGN KEY does when a referenced row is deleted or its key
/// changes while rows still reference it: both refuse (23503); NO ACTION
/// not if the statement leaves another row with the same key.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum FkAction {
    NoAction,
    Restrict,
}

impl FkAction {
    /// pg_constraint's confupdtype/confdeltype letter.
    pub fn letter(self) -> &'static str {
        match self {
            FkAction::NoAction => "a",
            FkAction::Restrict => "r",
        }
    }
}

/// A FOREIGN KEY constraint, held by the referencing table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForeignKeyDesc {
    /// pg_constraint OID.
    pub oid: u32,
    pub name: String,
    /// The referencing columns' ids in this table.
    pub columns: Vec<u32>,
    /// The referenced table's OID.
    pub referenced_table: u32,
    /// The referenced columns' ids, one for each of `columns`: those of its
    /// primary key or of a unique index.
    pub referenced_columns: Vec<u32>,
    pub on_delete: FkAction,
    pub on_update: FkAction,
    /// MATCH FULL (all key columns NULL or none); else MATCH SIMPLE (a row
    /// with any NULL key column references nothing).
    pub match_full: bool,
}

/// A table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableDesc {
    /// pg_class OID; also the table id in row keys.
    pub oid: u32,
    pub database: String,
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnDesc>,
    /// The primary index first, then secondary indexes.
    pub indexes: Vec<IndexDesc>,
    pub checks: Vec<CheckDesc>,
    pub next_column_id: u32,
    pub next_index_id: u32,
    /// Storage options given WITH (...), kept for display.
    pub options: Vec<(String, String)>,
    /// FOREIGN KEY constraints of this (referencing) table.
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKeyDesc>,
}

impl TableDesc {
    /// The primary index.
    pub fn primary(&self) -> &IndexDesc {
        &self.indexes[0]
    }

    /// Visible columns, in order.
    pub fn visible_columns(&self) -> impl Iterator<Item = &ColumnDesc> {
        self.columns.iter().filter(|c| !c.hidden)
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnDesc> {
        self.columns.iter().find(|c| c.name == name && !c.hidden)
    }

    /// Position of a column id in `columns`.
    pub fn position(&self, id: u32) -> Option<usize> {
        self.columns.iter().position(|c| c.id == id)
    }

    /// Whether the table has the hidden rowid column.
    pub fn has_hidden_rowid(&self) -> bool {
        self.columns.iter().any(|c| c.hidden)
    }
}

/// A sequence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SequenceDesc {
    pub oid: u32,
    pub database: String,
    pub schema: String,
    pub name: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cycle: bool,
    /// The column that owns it (SERIAL), as (table oid, column id).
    pub owned_by: Option<(u32, u32)>,
}

/// A consistent view of every descriptor, as of one schema version.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    pub databases: BTreeMap<String, DatabaseDesc>,
    /// By oid.
    pub tables: BTreeMap<u32, Arc<TableDesc>>,
    /// By oid.
    pub sequences: BTreeMap<u32, Arc<SequenceDesc>>,
}

impl Snapshot {
    /// Whether any database, table, index or sequence has an OID in
    /// `first..=last`.
    pub fn uses_oids(&self, first: u32, last: u32) -> bool {
        let used = |oid: u32| (first..=last).contains(&oid);
        self.databases.values().any(|d| used(d.oid))
            || self.tables.values().any(|t| {
                used(t.oid)
                    || t.indexes.iter().any(|i| used(i.oid))
                    || t.foreign_keys.iter().any(|fk| used(fk.oid))
            })
            || self.sequences.keys().any(|&oid| used(oid))
    }

    /// A table of `database` by name.
    pub fn table(&self, database: &str, name: &str) -> Option<Arc<TableDesc>> {
        self.tables
            .values()
            .find(|t| t.database == database && t.name == name)
            .cloned()
    }

    /// The foreign keys that reference table `oid`, with the tables that
    /// hold them (itself included, for a self-reference).
    pub fn referencing(&self, oid: u32) -> Vec<(Arc<TableDesc>, ForeignKeyDesc)> {
        self.tables
            .values()
            .flat_map(|t| {
                t.foreign_keys
                    .iter()
                    .filter(|fk| fk.referenced_table == oid)
                    .map(|fk| (t.clone(), fk.clone()))
            })
            .collect()
    }

    /// A sequence of `database` by name.
    pub fn sequence(&self, database: &str, name: &str) -> Option<Arc<SequenceDesc>> {
        self.sequences
            .values()
            .find(|s| s.database == database && s.name == name)
            .cloned()
    }

    /// Tables of `database`, by name.
    pub fn tables_of(&self, database: &str) -> Vec<Arc<TableDesc>> {
        let mut v: Vec<_> = self
            .tables
            .values()
            .filter(|t| t.database == database)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// An index of `database` by name, with its table.
    pub fn index(&self, database: &str, name: &str) -> Option<(Arc<TableDesc>, IndexDesc)> {
        for t in self.tables.values().filter(|t| t.database == database) {
            if let Some(ix) = t.indexes.iter().find(|i| i.name == name) {
                return Some((t.clone(), ix.clone()));
            }
        }
        None
    }

    /// Does any relation (table, index, sequence) of `database` use `name`?
    pub fn relation_exists(&self, database: &str, name: &str) -> bool {
        self.table(database, name).is_some()
            || self.index(database, name).is_some()
            || self.sequence(database, name).is_some()
    }
}

/// The gateway's catalog cache.
pub struct Catalog {
    kv: Arc<dyn Kv>,
    cached: Mutex<Arc<Snapshot>>,
    /// Serializes this gateway's read-modify-writes of counters (OIDs,
    /// sequence values). Gateways do not exclude each other until the store
    /// has transactions.
    counters: Mutex<()>,
}

fn oid_key(prefix: &[u8], oid: u32) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&oid.to_be_bytes());
    k
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> SqlResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| SqlError::internal(format!("corrupt descriptor: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("descriptors serialize")
}

fn u64_value(bytes: Option<Vec<u8>>) -> u64 {
    bytes
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

impl Catalog {
    /// A catalog over `kv`; nothing is read until first use.
    pub fn new(kv: Arc<dyn Kv>) -> Self {
        Self {
            kv,
            cached: Mutex::new(Arc::new(Snapshot {
                version: u64::MAX,
                ..Default::default()
            })),
            counters: Mutex::new(()),
        }
    }

    /// The current descriptors: one read of the version key, and a reload of
    /// every descriptor when another gateway changed the schema.
    pub fn snapshot(&self) -> SqlResult<Arc<Snapshot>> {
        self.snapshot_at(self.kv.get(VERSION_KEY)?)
    }

    /// The descriptors for a statement whose transaction reads its snapshot
    /// afresh: the version key is read in that transaction (`txn`), which
    /// saves a transaction, and a timestamp from the oracle, per statement.
    pub fn snapshot_in(&self, txn: &dyn crate::kv::KvTxn) -> SqlResult<Arc<Snapshot>> {
        self.snapshot_at(txn.get(VERSION_KEY)?)
    }

    /// The descriptors of the schema version stored as `version` (the
    /// version key's value): the cached ones, or a reload.
    fn snapshot_at(&self, version: Option<Vec<u8>>) -> SqlResult<Arc<Snapshot>> {
        let version = u64_value(version);
        {
            let cached = self.cached.lock();
            if cached.version == version {
                return Ok(cached.clone());
            }
        }
        let snapshot = Arc::new(self.load(version)?);
        *self.cached.lock() = snapshot.clone();
        Ok(snapshot)
    }

    fn load(&self, version: u64) -> SqlResult<Snapshot> {
        let mut end = DESC_PREFIX.to_vec();
        *end.last_mut().expect("prefix") += 1;
        let mut snap = Snapshot {
            version,
            ..Default::default()
        };
        for (k, v) in self.kv.scan(DESC_PREFIX, &end, 0)? {
            if k.starts_with(DB_PREFIX) {
                let d: DatabaseDesc = decode(&v)?;
                snap.databases.insert(d.name.clone(), d);
            } else if k.starts_with(TABLE_PREFIX) {
                let t: TableDesc = decode(&v)?;
                snap.tables.insert(t.oid, Arc::new(t));
            } else if k.starts_with(SEQ_PREFIX) {
                let s: SequenceDesc = decode(&v)?;
                snap.sequences.insert(s.oid, Arc::new(s));
            }
        }
        if snap.databases.is_empty() {
            // A new cluster: create the default databases once.
            let mut writes = Vec::new();
            for (i, name) in DEFAULT_DATABASES.iter().enumerate() {
                let d = DatabaseDesc {
                    oid: 5 + i as u32,
                    name: name.to_string(),
                };
                writes.push(KvWrite::Put(
                    [DB_PREFIX, name.as_bytes()].concat(),
                    encode(&d),
                ));
                snap.databases.insert(d.name.clone(), d);
            }
            self.kv.write(writes)?;
        }
        Ok(snap)
    }

    /// 3D000 unless `name` exists.
    pub fn ensure_database_exists(&self, name: &str) -> SqlResult<()> {
        if self.snapshot()?.databases.contains_key(name) {
            Ok(())
        } else {
            Err(SqlError::new(
                code::INVALID_DATABASE,
                format!("database \"{name}\" does not exist"),
            ))
        }
    }

    /// Allocates `n` (at most [`OID_BLOCK`]) consecutive OIDs.
    ///
    /// Gateways allocate without talking to each other, and until the store
    /// has transactions a shared counter would hand two gateways the same
    /// OIDs (and two tables the same keys). So each allocation takes a
    /// random block of [`OID_BLOCK`] OIDs that no object in the current
    /// catalog uses: two gateways creating objects at the same moment pick
    /// the same block with a chance of one in 2^26.
    pub fn allocate_oids(&self, n: u32) -> SqlResult<u32> {
        assert!(n <= OID_BLOCK, "at most {OID_BLOCK} OIDs at a time");
        let snap = self.snapshot()?;
        let first_block = FIRST_USER_OID / OID_BLOCK;
        let blocks = u32::MAX / OID_BLOCK - first_block;
        loop {
            let block = first_block + (random_u64() % blocks as u64) as u32;
            let base = block * OID_BLOCK;
            if !snap.uses_oids(base, base + (OID_BLOCK - 1)) {
                return Ok(base);
            }
        }
    }

    /// Applies descriptor changes and bumps the schema version, atomically.
    pub fn apply(&self, changes: Vec<Change>) -> SqlResult<()> {
        let version = u64_value(self.kv.get(VERSION_KEY)?);
        let mut writes = Vec::new();
        for change in changes {
            if let Change::DeleteSequence(oid) = &change {
                writes.push(KvWrite::Delete(oid_key(SEQ_VALUE_PREFIX, *oid)));
            }
            writes.push(match change {
                Change::PutTable(t) => KvWrite::Put(oid_key(TABLE_PREFIX, t.oid), encode(&t)),
                Change::DeleteTable(oid) => KvWrite::Delete(oid_key(TABLE_PREFIX, oid)),
                Change::PutSequence(s) => KvWrite::Put(oid_key(SEQ_PREFIX, s.oid), encode(&s)),
                Change::DeleteSequence(oid) => KvWrite::Delete(oid_key(SEQ_PREFIX, oid)),
                Change::PutDatabase(d) => {
                    KvWrite::Put([DB_PREFIX, d.name.as_bytes()].concat(), encode(&d))
                }
                Change::DeleteDatabase(name) => {
                    KvWrite::Delete([DB_PREFIX, name.as_bytes()].concat())
                }
            });
        }
        // The version is a token that every change replaces by a new random
        // one, not a counter: two gateways changing the schema at once would
        // both write version + 1, and a gateway that cached the first change
        // would miss the second. (The top bit stays clear: the empty cache
        // holds u64::MAX.)
        let mut next = version;
        while next == version {
            next = random_u64() >> 1;
        }
        writes.push(KvWrite::Put(
            VERSION_KEY.to_vec(),
            next.to_be_bytes().to_vec(),
        ));
        self.kv.write(writes)
    }

    /// nextval: advances a sequence outside any transaction, as PostgreSQL:
    /// in a KV transaction of its own, retried when a concurrent nextval on
    /// another gateway wins the race.
    pub fn next_value(&self, seq: &SequenceDesc) -> SqlResult<i64> {
        let _counters = self.counters.lock();
        let key = oid_key(SEQ_VALUE_PREFIX, seq.oid);
        loop {
            let txn = self.kv.begin()?;
            let current = txn
                .get(&key)?
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes);
            let next = advance_sequence(seq, current)?;
            match txn.commit(vec![KvWrite::Put(key.clone(), next.to_be_bytes().to_vec())]) {
                Ok(()) => return Ok(next),
                Err(err) if err.code == code::SERIALIZATION_FAILURE => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// setval.
    pub fn set_value(&self, seq: &SequenceDesc, value: i64) -> SqlResult<()> {
        let _counters = self.counters.lock();
        if value < seq.min || value > seq.max {
            return Err(SqlError::out_of_range(format!(
                "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                seq.name, seq.min, seq.max
            )));
        }
        self.kv.write(vec![KvWrite::Put(
            oid_key(SEQ_VALUE_PREFIX, seq.oid),
            value.to_be_bytes().to_vec(),
        )])
    }
}

/// One descriptor change.
pub enum Change {
    PutTable(TableDesc),
    DeleteTable(u32),
    PutSequence(SequenceDesc),
    DeleteSequence(u32),
    PutDatabase(DatabaseDesc),
    DeleteDatabase(String),
}

/// The value after `current` (None: the sequence's first value).
fn advance_sequence(seq: &SequenceDesc, current: Option<i64>) -> SqlResult<i64> {
    Ok(match current {
        None => seq.start,
        Some(v) => match v.checked_add(seq.increment) {
            Some(n) if n >= seq.min && n <= seq.max => n,
            _ if seq.cycle => {
                if seq.increment > 0 {
                    seq.min
                } else {
                    seq.max
                }
            }
            _ => {
                return Err(SqlError::new(
                    code::SEQUENCE_LIMIT,
                    format!(
                        "nextval: reached {} value of sequence \"{}\" ({})",
                        if seq.increment > 0 {
                            "maximum"
                        } else {
                            "minimum"
                        },
                        seq.name,
                        if seq.increment > 0 { seq.max } else { seq.min }
                    ),
                ))
            }
        },
    })
}
