//! The parts of `pg_catalog` and `information_schema` that psql's `\d`
//! commands and drivers read, computed from the schema catalog.

use crate::catalog::{Snapshot, TableDesc};
use crate::error::{code, SqlError, SqlResult};
use crate::exec::{Ctx, Env, Row};
use crate::functions::format_type;
use crate::types::{DataType as T, Value};

const PG_CATALOG_NS: i64 = 11;
const PUBLIC_NS: i64 = 2200;
const INFO_SCHEMA_NS: i64 = 13000;

fn b(v: bool) -> Value {
    Value::Bool(v)
}
fn i(v: i64) -> Value {
    Value::Int(v)
}
fn s(v: &str) -> Value {
    Value::Text(v.to_string())
}

/// Column definitions of each catalog relation.
fn definition(name: &str) -> Option<Vec<(&'static str, T)>> {
    use T::*;
    Some(match name {
        "pg_namespace" => vec![
            ("oid", Oid),
            ("nspname", Name),
            ("nspowner", Oid),
            ("nspacl", TextArray),
        ],
        "pg_class" => vec![
            ("oid", Oid),
            ("relname", Name),
            ("relnamespace", Oid),
            ("reltype", Oid),
            ("reloftype", Oid),
            ("relowner", Oid),
            ("relam", Oid),
            ("relfilenode", Oid),
            ("reltablespace", Oid),
            ("relpages", Int4),
            ("reltuples", Float4),
            ("relallvisible", Int4),
            ("reltoastrelid", Oid),
            ("relhasindex", Bool),
            ("relisshared", Bool),
            ("relpersistence", Char(1)),
            ("relkind", Char(1)),
            ("relnatts", Int2),
            ("relchecks", Int2),
            ("relhasrules", Bool),
            ("relhastriggers", Bool),
            ("relhassubclass", Bool),
            ("relrowsecurity", Bool),
            ("relforcerowsecurity", Bool),
            ("relispopulated", Bool),
            ("relreplident", Char(1)),
            ("relispartition", Bool),
            ("relrewrite", Oid),
            ("relacl", TextArray),
            ("reloptions", TextArray),
            ("relpartbound", Text),
        ],
        "pg_attribute" => vec![
            ("attrelid", Oid),
            ("attname", Name),
            ("atttypid", Oid),
            ("attstattarget", Int4),
            ("attlen", Int2),
            ("attnum", Int2),
            ("attndims", Int4),
            ("atttypmod", Int4),
            ("attbyval", Bool),
            ("attalign", Char(1)),
            ("attstorage", Char(1)),
            ("attcompression", Char(1)),
            ("attnotnull", Bool),
            ("atthasdef", Bool),
            ("atthasmissing", Bool),
            ("attidentity", Char(1)),
            ("attgenerated", Char(1)),
            ("attisdropped", Bool),
            ("attislocal", Bool),
            ("attinhcount", Int4),
            ("attcollation", Oid),
            ("attacl", TextArray),
            ("attoptions", TextArray),
        ],
        "pg_type" => vec![
            ("oid", Oid),
            ("typname", Name),
            ("typnamespace", Oid),
            ("typowner", Oid),
            ("typlen", Int2),
            ("typbyval", Bool),
            ("typtype", Char(1)),
            ("typcategory", Char(1)),
            ("typispreferred", Bool),
            ("typisdefined", Bool),
            ("typdelim", Char(1)),
            ("typrelid", Oid),
            ("typelem", Oid),
            ("typarray", Oid),
            ("typinput", Text),
            ("typoutput", Text),
            ("typreceive", Text),
            ("typsend", Text),
            ("typbasetype", Oid),
            ("typtypmod", Int4),
            ("typndims", Int4),
            ("typcollation", Oid),
            ("typnotnull", Bool),
            ("typdefault", Text),
        ],
        "pg_index" => vec![
            ("indexrelid", Oid),
            ("indrelid", Oid),
            ("indnatts", Int2),
            ("indnkeyatts", Int2),
            ("indisunique", Bool),
            ("indisprimary", Bool),
            ("indisexclusion", Bool),
            ("indimmediate", Bool),
            ("indisclustered", Bool),
            ("indisvalid", Bool),
            ("indcheckxmin", Bool),
            ("indisready", Bool),
            ("indislive", Bool),
            ("indisreplident", Bool),
            ("indkey", IntArray),
            ("indcollation", IntArray),
            ("indclass", IntArray),
            ("indoption", IntArray),
            ("indexprs", Text),
            ("indpred", Text),
        ],
        "pg_database" => vec![
            ("oid", Oid),
            ("datname", Name),
            ("datdba", Oid),
            ("encoding", Int4),
            ("datlocprovider", Char(1)),
            ("datistemplate", Bool),
            ("datallowconn", Bool),
            ("datconnlimit", Int4),
            ("datcollate", Name),
            ("datctype", Name),
            ("daticulocale", Text),
            ("datacl", TextArray),
            ("dattablespace", Oid),
        ],
        "pg_constraint" => vec![
            ("oid", Oid),
            ("conname", Name),
            ("connamespace", Oid),
            ("contype", Char(1)),
            ("condeferrable", Bool),
            ("condeferred", Bool),
            ("convalidated", Bool),
            ("conrelid", Oid),
            ("contypid", Oid),
            ("conindid", Oid),
            ("conparentid", Oid),
            ("confrelid", Oid),
            ("confupdtype", Char(1)),
            ("confdeltype", Char(1)),
            ("confmatchtype", Char(1)),
            ("conislocal", Bool),
            ("coninhcount", Int4),
            ("connoinherit", Bool),
            ("conkey", IntArray),
            ("confkey", IntArray),
            ("conbin", Text),
        ],
        "pg_attrdef" => vec![
            ("oid", Oid),
            ("adrelid", Oid),
            ("adnum", Int2),
            ("adbin", Text),
        ],
        "pg_am" => vec![
            ("oid", Oid),
            ("amname", Name),
            ("amhandler", Text),
            ("amtype", Char(1)),
        ],
        "pg_roles" | "pg_user" | "pg_authid" => vec![
            ("oid", Oid),
            ("rolname", Name),
            ("rolsuper", Bool),
            ("rolinherit", Bool),
            ("rolcreaterole", Bool),
            ("rolcreatedb", Bool),
            ("rolcanlogin", Bool),
            ("rolreplication", Bool),
            ("rolconnlimit", Int4),
            ("rolbypassrls", Bool),
            ("usename", Name),
            ("usesysid", Oid),
        ],
        "pg_settings" => vec![
            ("name", Text),
            ("setting", Text),
            ("unit", Text),
            ("category", Text),
            ("short_desc", Text),
            ("context", Text),
            ("vartype", Text),
        ],
        "pg_tables" => vec![
            ("schemaname", Name),
            ("tablename", Name),
            ("tableowner", Name),
            ("tablespace", Name),
            ("hasindexes", Bool),
            ("hasrules", Bool),
            ("hastriggers", Bool),
            ("rowsecurity", Bool),
        ],
        "pg_indexes" => vec![
            ("schemaname", Name),
            ("tablename", Name),
            ("indexname", Name),
            ("tablespace", Name),
            ("indexdef", Text),
        ],
        "pg_sequence" => vec![
            ("seqrelid", Oid),
            ("seqtypid", Oid),
            ("seqstart", Int8),
            ("seqincrement", Int8),
            ("seqmax", Int8),
            ("seqmin", Int8),
            ("seqcache", Int8),
            ("seqcycle", Bool),
        ],
        "pg_description" | "pg_shdescription" => vec![
            ("objoid", Oid),
            ("classoid", Oid),
            ("objsubid", Int4),
            ("description", Text),
        ],
        "pg_inherits" => vec![
            ("inhrelid", Oid),
            ("inhparent", Oid),
            ("inhseqno", Int4),
            ("inhdetachpending", Bool),
        ],
        "pg_trigger" => vec![
            ("oid", Oid),
            ("tgrelid", Oid),
            ("tgparentid", Oid),
            ("tgname", Name),
            ("tgfoid", Oid),
            ("tgtype", Int2),
            ("tgenabled", Char(1)),
            ("tgisinternal", Bool),
            ("tgconstraint", Oid),
        ],
        "pg_policy" => vec![
            ("oid", Oid),
            ("polname", Name),
            ("polrelid", Oid),
            ("polcmd", Char(1)),
            ("polpermissive", Bool),
            ("polroles", IntArray),
            ("polqual", Text),
            ("polwithcheck", Text),
        ],
        "pg_statistic_ext" => vec![
            ("oid", Oid),
            ("stxrelid", Oid),
            ("stxname", Name),
            ("stxnamespace", Oid),
            ("stxowner", Oid),
            ("stxstattarget", Int4),
            ("stxkeys", IntArray),
            ("stxkind", TextArray),
            ("stxexprs", Text),
        ],
        "pg_publication" => vec![
            ("oid", Oid),
            ("pubname", Name),
            ("pubowner", Oid),
            ("puballtables", Bool),
            ("pubinsert", Bool),
            ("pubupdate", Bool),
            ("pubdelete", Bool),
            ("pubtruncate", Bool),
            ("pubviaroot", Bool),
        ],
        "pg_publication_rel" => vec![
            ("oid", Oid),
            ("prpubid", Oid),
            ("prrelid", Oid),
            ("prqual", Text),
            ("prattrs", IntArray),
        ],
        "pg_publication_namespace" => vec![("oid", Oid), ("pnpubid", Oid), ("pnnspid", Oid)],
        "pg_collation" => vec![
            ("oid", Oid),
            ("collname", Name),
            ("collnamespace", Oid),
            ("collprovider", Char(1)),
            ("collcollate", Text),
        ],
        "pg_extension" => vec![
            ("oid", Oid),
            ("extname", Name),
            ("extowner", Oid),
            ("extnamespace", Oid),
            ("extversion", Text),
        ],
        "pg_proc" => vec![
            ("oid", Oid),
            ("proname", Name),
            ("pronamespace", Oid),
            ("prorettype", Oid),
            ("prokind", Char(1)),
            ("proargtypes", IntArray),
        ],
        "pg_tablespace" => vec![("oid", Oid), ("spcname", Name), ("spcowner", Oid)],
        "pg_partitioned_table" => vec![
            ("partrelid", Oid),
            ("partstrat", Char(1)),
            ("partnatts", Int2),
        ],
        "pg_foreign_table" => vec![("ftrelid", Oid), ("ftserver", Oid)],
        "pg_rewrite" => vec![
            ("oid", Oid),
            ("rulename", Name),
            ("ev_class", Oid),
            ("ev_type", Char(1)),
        ],
        "pg_enum" => vec![
            ("oid", Oid),
            ("enumtypid", Oid),
            ("enumsortorder", Float4),
            ("enumlabel", Name),
        ],
        "pg_range" => vec![("rngtypid", Oid), ("rngsubtype", Oid)],
        "pg_stat_activity" => vec![
            ("datid", Oid),
            ("datname", Name),
            ("pid", Int4),
            ("usename", Name),
            ("application_name", Text),
            ("state", Text),
            ("query", Text),
        ],
        "tables" => vec![
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("table_type", Text),
            ("is_insertable_into", Text),
        ],
        "columns" => vec![
            ("table_catalog", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("column_name", Name),
            ("ordinal_position", Int4),
            ("column_default", Text),
            ("is_nullable", Text),
            ("data_type", Text),
            ("character_maximum_length", Int4),
            ("numeric_precision", Int4),
            ("numeric_scale", Int4),
            ("udt_name", Name),
        ],
        "schemata" => vec![
            ("catalog_name", Name),
            ("schema_name", Name),
            ("schema_owner", Name),
        ],
        "table_constraints" => vec![
            ("constraint_catalog", Name),
            ("constraint_schema", Name),
            ("constraint_name", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("constraint_type", Text),
        ],
        "key_column_usage" => vec![
            ("constraint_schema", Name),
            ("constraint_name", Name),
            ("table_schema", Name),
            ("table_name", Name),
            ("column_name", Name),
            ("ordinal_position", Int4),
        ],
        "sequences" => vec![
            ("sequence_schema", Name),
            ("sequence_name", Name),
            ("data_type", Text),
            ("start_value", Text),
            ("increment", Text),
        ],
        _ => return None,
    })
}

/// Every catalog relation, for pg_class.
const CATALOG_RELATIONS: &[&str] = &[
    "pg_namespace",
    "pg_class",
    "pg_attribute",
    "pg_type",
    "pg_index",
    "pg_database",
    "pg_constraint",
    "pg_attrdef",
    "pg_am",
    "pg_roles",
    "pg_user",
    "pg_settings",
    "pg_tables",
    "pg_indexes",
    "pg_sequence",
    "pg_description",
    "pg_inherits",
    "pg_trigger",
    "pg_policy",
    "pg_statistic_ext",
    "pg_publication",
    "pg_publication_rel",
    "pg_publication_namespace",
    "pg_collation",
    "pg_extension",
    "pg_proc",
    "pg_tablespace",
    "pg_partitioned_table",
    "pg_foreign_table",
    "pg_rewrite",
    "pg_enum",
    "pg_range",
    "pg_stat_activity",
    "information_schema.tables",
    "information_schema.columns",
    "information_schema.schemata",
    "information_schema.table_constraints",
    "information_schema.key_column_usage",
    "information_schema.sequences",
];

/// A stable OID below the user range for a catalog relation.
fn catalog_oid(name: &str) -> i64 {
    let bare = name.trim_start_matches("information_schema.");
    match CATALOG_RELATIONS
        .iter()
        .position(|n| n.trim_start_matches("information_schema.") == bare)
    {
        Some(k) => 1200 + k as i64,
        None => 1199,
    }
}

const INFO_SCHEMA: &[&str] = &[
    "tables",
    "columns",
    "schemata",
    "table_constraints",
    "key_column_usage",
    "sequences",
];

/// The canonical name of a catalog relation reachable as `schema.name`.
pub fn canonical(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some("information_schema") => format!("information_schema.{name}"),
        _ => name.to_string(),
    }
}

/// Columns of a catalog relation, if `schema.name` is one.
pub fn columns(schema: Option<&str>, name: &str) -> Option<Vec<(String, T)>> {
    let ok = match schema {
        Some("information_schema") => INFO_SCHEMA.contains(&name),
        Some("pg_catalog") | None => name.starts_with("pg_"),
        _ => false,
    };
    if !ok {
        return None;
    }
    definition(name).map(|d| d.into_iter().map(|(n, t)| (n.to_string(), t)).collect())
}

fn pad(cols: usize, mut row: Row) -> Row {
    row.resize(cols, Value::Null);
    row
}

/// What varies between the `pg_constraint` rows of a primary key or unique
/// constraint, a check and a foreign key; the rest is the same for all
/// (public namespace, not deferrable, validated, local, not inherited).
struct ConstraintRow<'a> {
    oid: i64,
    name: &'a str,
    /// `contype`: p, u, c or f.
    kind: &'a str,
    table: u32,
    /// `conindid`: the constraint's index, or the referenced one.
    index: u32,
    /// `confrelid`.
    referenced_table: u32,
    /// `confupdtype`, `confdeltype` and `confmatchtype`.
    actions: [&'a str; 3],
    no_inherit: bool,
    keys: Option<Vec<Value>>,
    referenced_keys: Option<Vec<Value>>,
    /// `conbin`: a check's expression.
    expr: Option<&'a str>,
}

impl Default for ConstraintRow<'_> {
    fn default() -> Self {
        Self {
            oid: 0,
            name: "",
            kind: "",
            table: 0,
            index: 0,
            referenced_table: 0,
            actions: [" "; 3],
            no_inherit: false,
            keys: None,
            referenced_keys: None,
            expr: None,
        }
    }
}

impl ConstraintRow<'_> {
    /// The row, in `pg_constraint`'s column order.
    fn values(self) -> Vec<Value> {
        let array = |v: Option<Vec<Value>>| v.map_or(Value::Null, Value::Array);
        vec![
            i(self.oid),
            s(self.name),
            i(PUBLIC_NS),
            s(self.kind),
            b(false),
            b(false),
            b(true),
            i(i64::from(self.table)),
            i(0),
            i(i64::from(self.index)),
            i(0),
            i(i64::from(self.referenced_table)),
            s(self.actions[0]),
            s(self.actions[1]),
            s(self.actions[2]),
            b(true),
            i(0),
            b(self.no_inherit),
            array(self.keys),
            array(self.referenced_keys),
            self.expr.map_or(Value::Null, s),
        ]
    }
}

fn constraint_oid_for_check(t: &TableDesc, k: usize) -> i64 {
    t.oid as i64 + 48 + k as i64
}

/// Rows of a catalog relation.
pub fn rows(name: &str, ctx: &Ctx) -> SqlResult<Vec<Row>> {
    let snap: &Snapshot = &ctx.snap;
    let db = ctx.database;
    let tables = snap.tables_of(db);
    let width = definition(name.trim_start_matches("information_schema."))
        .map(|d| d.len())
        .unwrap_or(0);
    let mut out: Vec<Row> = Vec::new();
    match name {
        "pg_namespace" => {
            for (oid, n) in [
                (PG_CATALOG_NS, "pg_catalog"),
                (PUBLIC_NS, "public"),
                (INFO_SCHEMA_NS, "information_schema"),
            ] {
                out.push(vec![i(oid), s(n), i(10), Value::Null]);
            }
        }
        "pg_class" => {
            for t in &tables {
                let natts = t.visible_columns().count() as i64;
                out.push(vec![
                    i(t.oid as i64),
                    s(&t.name),
                    i(PUBLIC_NS),
                    i(0),
                    i(0),
                    i(10),
                    i(2),
                    i(t.oid as i64),
                    i(0),
                    i(0),
                    Value::Float(-1.0),
                    i(0),
                    i(0),
                    b(t.indexes.len() > 1 || t.indexes[0].constraint),
                    b(false),
                    s("p"),
                    s("r"),
                    i(natts),
                    i(t.checks.len() as i64),
                    b(false),
                    // Foreign keys are triggers in PostgreSQL: psql lists
                    // them (and the tables referencing this one) only then.
                    b(!t.foreign_keys.is_empty() || !snap.referencing(t.oid).is_empty()),
                    b(false),
                    b(false),
                    b(false),
                    b(true),
                    s("d"),
                    b(false),
                    i(0),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ]);
                for ix in t.indexes.iter().filter(|ix| ix.constraint || !ix.primary) {
                    out.push(pad(
                        width,
                        vec![
                            i(ix.oid as i64),
                            s(&ix.name),
                            i(PUBLIC_NS),
                            i(0),
                            i(0),
                            i(10),
                            i(403),
                            i(ix.oid as i64),
                            i(0),
                            i(0),
                            Value::Float(-1.0),
                            i(0),
                            i(0),
                            b(false),
                            b(false),
                            s("p"),
                            s("i"),
                            i(ix.columns.len() as i64),
                            i(0),
                            b(false),
                            b(false),
                            b(false),
                            b(false),
                            b(false),
                            b(true),
                            s("n"),
                            b(false),
                            i(0),
                        ],
                    ));
                }
            }
            for name in CATALOG_RELATIONS {
                let oid = catalog_oid(name);
                let (ns, relname) = match name.strip_prefix("information_schema.") {
                    Some(n) => (INFO_SCHEMA_NS, n),
                    None => (PG_CATALOG_NS, *name),
                };
                let kind = if ns == PG_CATALOG_NS
                    && !matches!(
                        relname,
                        "pg_roles"
                            | "pg_user"
                            | "pg_settings"
                            | "pg_tables"
                            | "pg_indexes"
                            | "pg_stat_activity"
                    ) {
                    "r"
                } else {
                    "v"
                };
                out.push(pad(
                    width,
                    vec![
                        i(oid),
                        s(relname),
                        i(ns),
                        i(0),
                        i(0),
                        i(10),
                        i(2),
                        i(oid),
                        i(0),
                        i(0),
                        Value::Float(-1.0),
                        i(0),
                        i(0),
                        b(false),
                        b(false),
                        s("p"),
                        s(kind),
                    ],
                ));
            }
            for sq in snap.sequences.values().filter(|q| q.database == db) {
                out.push(pad(
                    width,
                    vec![
                        i(sq.oid as i64),
                        s(&sq.name),
                        i(PUBLIC_NS),
                        i(0),
                        i(0),
                        i(10),
                        i(0),
                        i(sq.oid as i64),
                        i(0),
                        i(1),
                        Value::Float(1.0),
                        i(0),
                        i(0),
                        b(false),
                        b(false),
                        s("p"),
                        s("S"),
                        i(3),
                        i(0),
                        b(false),
                        b(false),
                        b(false),
                        b(false),
                        b(false),
                        b(true),
                        s("n"),
                        b(false),
                        i(0),
                    ],
                ));
            }
        }
        "pg_attribute" => {
            for t in &tables {
                for c in t.visible_columns() {
                    out.push(vec![
                        i(t.oid as i64),
                        s(&c.name),
                        i(c.ty.oid() as i64),
                        i(-1),
                        i(c.ty.typlen() as i64),
                        i(c.id as i64),
                        i(0),
                        i(c.ty.typmod() as i64),
                        b(c.ty.typlen() > 0 && c.ty.typlen() <= 8),
                        s("i"),
                        s("p"),
                        s(""),
                        b(!c.nullable),
                        b(c.default.is_some()),
                        b(false),
                        s(""),
                        s(""),
                        b(false),
                        b(true),
                        i(0),
                        i(if c.ty.is_string() { 100 } else { 0 }),
                        Value::Null,
                        Value::Null,
                    ]);
                }
                for ix in &t.indexes {
                    for (k, (id, _)) in ix.columns.iter().enumerate() {
                        let Some(c) = t.columns.iter().find(|c| c.id == *id) else {
                            continue;
                        };
                        out.push(pad(
                            width,
                            vec![
                                i(ix.oid as i64),
                                s(&c.name),
                                i(c.ty.oid() as i64),
                                i(-1),
                                i(c.ty.typlen() as i64),
                                i(k as i64 + 1),
                                i(0),
                                i(c.ty.typmod() as i64),
                                b(false),
                                s("i"),
                                s("p"),
                                s(""),
                                b(false),
                                b(false),
                                b(false),
                                s(""),
                                s(""),
                                b(false),
                                b(true),
                                i(0),
                                i(0),
                            ],
                        ));
                    }
                }
            }
        }
        "pg_type" => {
            for t in T::catalog_types() {
                let array_oid = match t {
                    T::Int4 => 1007,
                    T::Text => 1009,
                    T::Int8 => 1016,
                    T::Bool => 1000,
                    _ => 0,
                };
                out.push(pad(
                    width,
                    vec![
                        i(t.oid() as i64),
                        s(t.type_name()),
                        i(PG_CATALOG_NS),
                        i(10),
                        i(t.typlen() as i64),
                        b(t.typlen() > 0 && t.typlen() <= 8),
                        s("b"),
                        s(&t.category().to_string()),
                        b(false),
                        b(true),
                        s(","),
                        i(0),
                        i(match t {
                            T::TextArray => 25,
                            T::IntArray => 23,
                            _ => 0,
                        }),
                        i(array_oid),
                        s(&format!("{}in", t.type_name())),
                        s(&format!("{}out", t.type_name())),
                        s(&format!("{}recv", t.type_name())),
                        s(&format!("{}send", t.type_name())),
                        i(0),
                        i(-1),
                        i(0),
                        i(if t.is_string() { 100 } else { 0 }),
                        b(false),
                        Value::Null,
                    ],
                ));
            }
        }
        "pg_index" => {
            for t in &tables {
                for ix in t.indexes.iter().filter(|ix| ix.constraint || !ix.primary) {
                    let keys: Vec<Value> = ix.columns.iter().map(|(id, _)| i(*id as i64)).collect();
                    out.push(pad(
                        width,
                        vec![
                            i(ix.oid as i64),
                            i(t.oid as i64),
                            i(keys.len() as i64),
                            i(keys.len() as i64),
                            b(ix.unique),
                            b(ix.primary),
                            b(false),
                            b(true),
                            b(false),
                            b(true),
                            b(false),
                            b(true),
                            b(true),
                            b(false),
                            Value::Array(keys),
                        ],
                    ));
                }
            }
        }
        "pg_database" => {
            for d in snap.databases.values() {
                out.push(vec![
                    i(d.oid as i64),
                    s(&d.name),
                    i(10),
                    i(6),
                    s("c"),
                    b(false),
                    b(true),
                    i(-1),
                    s("C"),
                    s("C"),
                    Value::Null,
                    Value::Null,
                    i(1663),
                ]);
            }
        }
        "pg_constraint" => {
            for t in &tables {
                let ids = |cols: &[u32]| Some(cols.iter().map(|c| i(*c as i64)).collect());
                for ix in t.indexes.iter().filter(|ix| ix.constraint) {
                    let keys: Vec<u32> = ix.columns.iter().map(|(id, _)| *id).collect();
                    out.push(pad(
                        width,
                        ConstraintRow {
                            oid: ix.oid as i64,
                            name: &ix.name,
                            kind: if ix.primary { "p" } else { "u" },
                            table: t.oid,
                            index: ix.oid,
                            no_inherit: true,
                            keys: ids(&keys),
                            ..ConstraintRow::default()
                        }
                        .values(),
                    ));
                }
                for (k, ch) in t.checks.iter().enumerate() {
                    out.push(pad(
                        width,
                        ConstraintRow {
                            oid: constraint_oid_for_check(t, k),
                            name: &ch.name,
                            kind: "c",
                            table: t.oid,
                            expr: Some(&ch.expr),
                            ..ConstraintRow::default()
                        }
                        .values(),
                    ));
                }
                for fk in &t.foreign_keys {
                    out.push(pad(
                        width,
                        ConstraintRow {
                            oid: fk.oid as i64,
                            name: &fk.name,
                            kind: "f",
                            table: t.oid,
                            index: crate::fk::referenced_index_oid(snap, fk),
                            referenced_table: fk.referenced_table,
                            actions: [
                                fk.on_update.letter(),
                                fk.on_delete.letter(),
                                if fk.match_full { "f" } else { "s" },
                            ],
                            no_inherit: true,
                            keys: ids(&fk.columns),
                            referenced_keys: ids(&fk.referenced_columns),
                            ..ConstraintRow::default()
                        }
                        .values(),
                    ));
                }
            }
        }
        "pg_attrdef" => {
            for t in &tables {
                for c in t.visible_columns() {
                    if let Some(d) = &c.default {
                        out.push(vec![
                            i(t.oid as i64 * 1000 + c.id as i64),
                            i(t.oid as i64),
                            i(c.id as i64),
                            s(d),
                        ]);
                    }
                }
            }
        }
        "pg_am" => {
            out.push(vec![i(2), s("heap"), s("heap_tableam_handler"), s("t")]);
            out.push(vec![i(403), s("btree"), s("bthandler"), s("i")]);
        }
        "pg_roles" | "pg_user" | "pg_authid" => {
            out.push(vec![
                i(10),
                s(&ctx.user),
                b(true),
                b(true),
                b(true),
                b(true),
                b(true),
                b(false),
                i(-1),
                b(true),
                s(&ctx.user),
                i(10),
            ]);
        }
        "pg_settings" => {
            for (n, v) in ctx.session.vars.all() {
                out.push(vec![
                    s(&n),
                    s(&v),
                    Value::Null,
                    s("Tessera"),
                    s(""),
                    s("user"),
                    s("string"),
                ]);
            }
        }
        "pg_tables" => {
            for t in &tables {
                out.push(vec![
                    s("public"),
                    s(&t.name),
                    s(&ctx.user),
                    Value::Null,
                    b(t.indexes.len() > 1),
                    b(false),
                    b(false),
                    b(false),
                ]);
            }
        }
        "pg_indexes" => {
            for t in &tables {
                for ix in t.indexes.iter().filter(|ix| ix.constraint || !ix.primary) {
                    out.push(vec![
                        s("public"),
                        s(&t.name),
                        s(&ix.name),
                        Value::Null,
                        s(&index_definition(t, ix.oid).unwrap_or_default()),
                    ]);
                }
            }
        }
        "pg_sequence" => {
            for sq in snap.sequences.values().filter(|q| q.database == db) {
                out.push(vec![
                    i(sq.oid as i64),
                    i(20),
                    i(sq.start),
                    i(sq.increment),
                    i(sq.max),
                    i(sq.min),
                    i(1),
                    b(sq.cycle),
                ]);
            }
        }
        "pg_tablespace" => out.push(vec![i(1663), s("pg_default"), i(10)]),
        "information_schema.tables" => {
            for t in &tables {
                out.push(vec![
                    s(db),
                    s("public"),
                    s(&t.name),
                    s("BASE TABLE"),
                    s("YES"),
                ]);
            }
        }
        "information_schema.columns" => {
            for t in &tables {
                for c in t.visible_columns() {
                    let (len, prec, scale) = match c.ty {
                        T::Varchar(Some(n)) | T::Char(n) => (i(n as i64), Value::Null, Value::Null),
                        T::Int2 => (Value::Null, i(16), i(0)),
                        T::Int4 => (Value::Null, i(32), i(0)),
                        T::Int8 => (Value::Null, i(64), i(0)),
                        T::Float4 => (Value::Null, i(24), Value::Null),
                        T::Float8 => (Value::Null, i(53), Value::Null),
                        T::Numeric(Some((p, sc))) => (Value::Null, i(p as i64), i(sc as i64)),
                        _ => (Value::Null, Value::Null, Value::Null),
                    };
                    let data_type = match c.ty {
                        T::Numeric(_) => "numeric".to_string(),
                        T::Varchar(_) => "character varying".to_string(),
                        T::Char(_) => "character".to_string(),
                        t => t.sql_name(),
                    };
                    out.push(vec![
                        s(db),
                        s("public"),
                        s(&t.name),
                        s(&c.name),
                        i(c.id as i64),
                        c.default.as_deref().map(s).unwrap_or(Value::Null),
                        s(if c.nullable { "YES" } else { "NO" }),
                        s(&data_type),
                        len,
                        prec,
                        scale,
                        s(c.ty.type_name()),
                    ]);
                }
            }
        }
        "information_schema.schemata" => {
            for n in ["pg_catalog", "public", "information_schema"] {
                out.push(vec![s(db), s(n), s(&ctx.user)]);
            }
        }
        "information_schema.table_constraints" => {
            for t in &tables {
                for ix in t.indexes.iter().filter(|ix| ix.constraint) {
                    out.push(vec![
                        s(db),
                        s("public"),
                        s(&ix.name),
                        s("public"),
                        s(&t.name),
                        s(if ix.primary { "PRIMARY KEY" } else { "UNIQUE" }),
                    ]);
                }
                for ch in &t.checks {
                    out.push(vec![
                        s(db),
                        s("public"),
                        s(&ch.name),
                        s("public"),
                        s(&t.name),
                        s("CHECK"),
                    ]);
                }
            }
        }
        "information_schema.key_column_usage" => {
            for t in &tables {
                for ix in t.indexes.iter().filter(|ix| ix.constraint) {
                    for (k, (id, _)) in ix.columns.iter().enumerate() {
                        if let Some(c) = t.columns.iter().find(|c| c.id == *id) {
                            out.push(vec![
                                s("public"),
                                s(&ix.name),
                                s("public"),
                                s(&t.name),
                                s(&c.name),
                                i(k as i64 + 1),
                            ]);
                        }
                    }
                }
            }
        }
        "information_schema.sequences" => {
            for sq in snap.sequences.values().filter(|q| q.database == db) {
                out.push(vec![
                    s("public"),
                    s(&sq.name),
                    s("bigint"),
                    s(&sq.start.to_string()),
                    s(&sq.increment.to_string()),
                ]);
            }
        }
        _ => {}
    }
    Ok(out)
}

fn index_definition(t: &TableDesc, oid: u32) -> Option<String> {
    let ix = t.indexes.iter().find(|ix| ix.oid == oid)?;
    let cols: Vec<String> = ix
        .columns
        .iter()
        .filter_map(|(id, desc)| {
            let c = t.columns.iter().find(|c| c.id == *id)?;
            Some(if *desc {
                format!("{} DESC", c.name)
            } else {
                c.name.clone()
            })
        })
        .collect();
    Some(format!(
        "CREATE {}INDEX {} ON public.{} USING btree ({})",
        if ix.unique { "UNIQUE " } else { "" },
        ix.name,
        t.name,
        cols.join(", ")
    ))
}

/// pg_get_indexdef.
pub fn index_def(env: &Env, oid: u32) -> SqlResult<Value> {
    for t in env.ctx.snap.tables.values() {
        if let Some(d) = index_definition(t, oid) {
            return Ok(Value::Text(d));
        }
    }
    Ok(Value::Null)
}

/// pg_get_constraintdef.
pub fn constraint_def(env: &Env, oid: u32) -> SqlResult<Value> {
    for t in env.ctx.snap.tables.values() {
        if let Some(ix) = t.indexes.iter().find(|ix| ix.oid == oid && ix.constraint) {
            let cols: Vec<String> = ix
                .columns
                .iter()
                .filter_map(|(id, _)| {
                    t.columns
                        .iter()
                        .find(|c| c.id == *id)
                        .map(|c| c.name.clone())
                })
                .collect();
            let kind = if ix.primary { "PRIMARY KEY" } else { "UNIQUE" };
            return Ok(Value::Text(format!("{kind} ({})", cols.join(", "))));
        }
        if let Some(fk) = t.foreign_keys.iter().find(|fk| fk.oid == oid) {
            return Ok(Value::Text(crate::fk::definition(&env.ctx.snap, t, fk)));
        }
        for (k, ch) in t.checks.iter().enumerate() {
            if constraint_oid_for_check(t, k) == oid as i64 {
                // PostgreSQL prints the expression parenthesized.
                let body = if ch.expr.starts_with('(') {
                    ch.expr.clone()
                } else {
                    format!("({})", ch.expr)
                };
                return Ok(Value::Text(format!("CHECK ({body})")));
            }
        }
    }
    Ok(Value::Null)
}

/// pg_get_serial_sequence.
pub fn serial_sequence(env: &Env, table: &str, column: &str) -> SqlResult<Value> {
    let snap = &env.ctx.snap;
    let name = table.rsplit('.').next().unwrap_or(table);
    let t = snap.table(env.ctx.database, name).ok_or_else(|| {
        SqlError::new(
            code::UNDEFINED_TABLE,
            format!("relation \"{table}\" does not exist"),
        )
    })?;
    let c = t.column(column).ok_or_else(|| {
        SqlError::new(
            code::UNDEFINED_COLUMN,
            format!("column \"{column}\" of relation \"{table}\" does not exist"),
        )
    })?;
    Ok(snap
        .sequences
        .values()
        .find(|s| s.owned_by == Some((t.oid, c.id)))
        .map(|s| Value::Text(format!("public.{}", s.name)))
        .unwrap_or(Value::Null))
}

/// 'name'::regclass.
pub fn regclass_in(env: &Env, v: &Value) -> SqlResult<Value> {
    let Some(text) = v.as_str() else {
        return Ok(Value::Null);
    };
    if let Ok(n) = text.trim().parse::<i64>() {
        return Ok(Value::Int(n));
    }
    let name = text.rsplit('.').next().unwrap_or(text).trim_matches('"');
    let snap = &env.ctx.snap;
    let db = env.ctx.database;
    if let Some(t) = snap.table(db, name) {
        return Ok(Value::Int(t.oid as i64));
    }
    if let Some((_, ix)) = snap.index(db, name) {
        return Ok(Value::Int(ix.oid as i64));
    }
    if let Some(s) = snap.sequence(db, name) {
        return Ok(Value::Int(s.oid as i64));
    }
    if definition(name).is_some() {
        return Ok(Value::Int(catalog_oid(name)));
    }
    Err(SqlError::new(
        code::UNDEFINED_TABLE,
        format!("relation \"{text}\" does not exist"),
    ))
}

#[allow(dead_code)]
fn type_name(oid: u32, typmod: i32) -> String {
    format_type(oid, typmod)
}
