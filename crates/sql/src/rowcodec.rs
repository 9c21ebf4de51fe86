//! How rows and index entries become keys and values.
//!
//! A row lives at `/table/<table oid>/<index 1>/<primary key columns>`; a
//! secondary index entry at `/table/<oid>/<index id>/<index columns>/<pk
//! columns>` with the row's primary key as its value. `/table/` is the first
//! byte of the user keyspace. Key columns use the memcomparable encoding, so
//! key order is SQL order; values are a list of (column id, tagged value).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use tessera_types::encoding::KeyWriter;
use tessera_types::keys::USER_MIN;
use uuid::Uuid;

use crate::catalog::{IndexDesc, TableDesc};
use crate::error::{SqlError, SqlResult};
use crate::types::{DataType, Value};

/// The key prefix of one index of one table.
pub fn index_prefix(table_oid: u32, index_id: u32) -> Vec<u8> {
    let mut w = KeyWriter::with_prefix(USER_MIN);
    w.write_u64(table_oid as u64).write_u64(index_id as u64);
    w.into_bytes()
}

/// The key prefix of everything a table stores.
pub fn table_prefix(table_oid: u32) -> Vec<u8> {
    let mut w = KeyWriter::with_prefix(USER_MIN);
    w.write_u64(table_oid as u64);
    w.into_bytes()
}

/// The columns a key holds, decoded: its table and index, and the names
/// and values (as text) of the leading index columns present in the key (a
/// row or index entry has them all; a range boundary may have fewer).
pub struct KeyColumns {
    /// The table's name.
    pub table: String,
    /// The index's name, None for the primary key.
    pub index: Option<String>,
    /// The columns present, in index order.
    pub names: Vec<String>,
    /// Their values as PostgreSQL prints them.
    pub values: Vec<String>,
}

/// Decodes the table, index and column values of `key`. None if the key is
/// not one of a table the catalog knows, or does not decode.
pub fn key_columns(snap: &crate::catalog::Snapshot, key: &[u8]) -> Option<KeyColumns> {
    use tessera_types::encoding::KeyReader;
    let mut r = KeyReader::new(key.strip_prefix(USER_MIN)?);
    let oid = u32::try_from(r.decode_u64().ok()?).ok()?;
    let index_id = u32::try_from(r.decode_u64().ok()?).ok()?;
    let table = snap.tables.get(&oid)?;
    let index = table.indexes.iter().find(|i| i.id == index_id)?;
    let mut names = Vec::new();
    let mut values = Vec::new();
    for (column_id, desc) in &index.columns {
        if r.remaining().is_empty() {
            break;
        }
        let column = table.columns.iter().find(|c| c.id == *column_id)?;
        let value = decode_key_value(&mut r, column.ty, *desc)?;
        names.push(column.name.clone());
        values.push(value.to_pg_text(column.ty).unwrap_or_else(|| "NULL".into()));
    }
    Some(KeyColumns {
        table: table.name.clone(),
        index: (!index.primary).then(|| index.name.clone()),
        names,
        values,
    })
}

/// Names the row or index entry `key` belongs to, as PostgreSQL words a
/// key: `table "t", key (a, b)=(1, x)`. None if the key is not one of a
/// table the catalog knows, or does not decode.
pub fn describe_key(snap: &crate::catalog::Snapshot, key: &[u8]) -> Option<String> {
    let k = key_columns(snap, key)?;
    let entry = match &k.index {
        None => String::new(),
        Some(index) => format!(" in index \"{index}\""),
    };
    Some(format!(
        "table \"{}\"{entry}, key ({})=({})",
        k.table,
        k.names.join(", "),
        k.values.join(", ")
    ))
}

/// Decodes one key column of type `ty` (see `encode_key_value`).
fn decode_key_value(
    r: &mut tessera_types::encoding::KeyReader<'_>,
    ty: DataType,
    desc: bool,
) -> Option<Value> {
    if (!desc && r.is_null()) || (desc && r.is_null_desc()) {
        if desc {
            r.decode_null_desc().ok()?;
        } else {
            r.decode_null().ok()?;
        }
        return Some(Value::Null);
    }
    let int = |r: &mut tessera_types::encoding::KeyReader<'_>| {
        if desc {
            r.decode_i64_desc().ok()
        } else {
            r.decode_i64().ok()
        }
    };
    let text = |r: &mut tessera_types::encoding::KeyReader<'_>| {
        if desc {
            r.decode_str_desc().ok()
        } else {
            r.decode_str().ok()
        }
    };
    let bytes = |r: &mut tessera_types::encoding::KeyReader<'_>| {
        if desc {
            r.decode_bytes_desc().ok()
        } else {
            r.decode_bytes().ok()
        }
    };
    Some(match ty {
        DataType::Bool => Value::Bool(if desc {
            r.decode_bool_desc().ok()?
        } else {
            r.decode_bool().ok()?
        }),
        DataType::Int2 | DataType::Int4 | DataType::Int8 | DataType::Oid => Value::Int(int(r)?),
        DataType::Float4 | DataType::Float8 => Value::Float(if desc {
            r.decode_f64_desc().ok()?
        } else {
            r.decode_f64().ok()?
        }),
        DataType::Numeric(_) => {
            // The nearest float, then the exact digits.
            if desc {
                r.decode_f64_desc().ok()?;
            } else {
                r.decode_f64().ok()?;
            }
            Value::Numeric(text(r)?.parse().ok()?)
        }
        DataType::Text | DataType::Varchar(_) | DataType::Char(_) | DataType::Name => {
            Value::Text(text(r)?)
        }
        DataType::Bytea => Value::Bytea(bytes(r)?),
        DataType::Uuid => Value::Uuid(uuid::Uuid::from_slice(&bytes(r)?).ok()?),
        DataType::Date => Value::Date(chrono::NaiveDate::from_num_days_from_ce_opt(
            i32::try_from(int(r)?).ok()?,
        )?),
        DataType::Timestamp => {
            Value::Timestamp(chrono::DateTime::from_timestamp_micros(int(r)?)?.naive_utc())
        }
        DataType::TimestampTz => {
            Value::TimestampTz(chrono::DateTime::from_timestamp_micros(int(r)?)?)
        }
        _ => return None,
    })
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    tessera_types::encoding::prefix_end(prefix).unwrap_or_default()
}

/// Appends one key column.
pub fn encode_key_value(w: &mut KeyWriter, v: &Value, desc: bool) {
    match (v, desc) {
        (Value::Null, false) => w.write_null(),
        (Value::Null, true) => w.write_null_desc(),
        (Value::Bool(b), false) => w.write_bool(*b),
        (Value::Bool(b), true) => w.write_bool_desc(*b),
        (Value::Int(i), false) => w.write_i64(*i),
        (Value::Int(i), true) => w.write_i64_desc(*i),
        (Value::Float(f), false) => w.write_f64(*f),
        (Value::Float(f), true) => w.write_f64_desc(*f),
        (Value::Numeric(d), desc) => {
            // Ordered by the nearest float, made unique by the exact digits.
            let f = d.to_f64().unwrap_or(0.0);
            let exact = d.normalize().to_string();
            if desc {
                w.write_f64_desc(f).write_str_desc(&exact)
            } else {
                w.write_f64(f).write_str(&exact)
            }
        }
        (Value::Text(s), false) => w.write_str(s.trim_end_matches(' ')),
        (Value::Text(s), true) => w.write_str_desc(s.trim_end_matches(' ')),
        (Value::Bytea(b), false) => w.write_bytes(b),
        (Value::Bytea(b), true) => w.write_bytes_desc(b),
        (Value::Date(d), false) => w.write_i64(d.num_days_from_ce() as i64),
        (Value::Date(d), true) => w.write_i64_desc(d.num_days_from_ce() as i64),
        (Value::Timestamp(t), false) => w.write_i64(t.and_utc().timestamp_micros()),
        (Value::Timestamp(t), true) => w.write_i64_desc(t.and_utc().timestamp_micros()),
        (Value::TimestampTz(t), false) => w.write_i64(t.timestamp_micros()),
        (Value::TimestampTz(t), true) => w.write_i64_desc(t.timestamp_micros()),
        (Value::Uuid(u), false) => w.write_bytes(u.as_bytes()),
        (Value::Uuid(u), true) => w.write_bytes_desc(u.as_bytes()),
        (Value::Array(items), desc) => {
            for item in items {
                encode_key_value(w, item, desc);
            }
            w
        }
    };
}

/// The values of an index's columns in `row` (ordered as `table.columns`).
pub fn index_values(table: &TableDesc, index: &IndexDesc, row: &[Value]) -> Vec<Value> {
    index
        .columns
        .iter()
        .map(|(id, _)| row[table.position(*id).expect("index column exists")].clone())
        .collect()
}

/// The primary key of `row`.
pub fn primary_key(table: &TableDesc, row: &[Value]) -> Vec<u8> {
    let pk = table.primary();
    let mut w = KeyWriter::from_vec(index_prefix(table.oid, pk.id));
    for (id, desc) in &pk.columns {
        encode_key_value(&mut w, &row[table.position(*id).expect("pk column")], *desc);
    }
    w.into_bytes()
}

/// The key prefix of index entries whose index columns equal `values`.
pub fn index_key_prefix(table: &TableDesc, index: &IndexDesc, values: &[Value]) -> Vec<u8> {
    let mut w = KeyWriter::from_vec(index_prefix(table.oid, index.id));
    for (v, (_, desc)) in values.iter().zip(&index.columns) {
        encode_key_value(&mut w, v, *desc);
    }
    w.into_bytes()
}

/// A secondary index entry for `row`: key and value (the primary key).
///
/// An entry of a unique index whose columns are all non-NULL is keyed by
/// those columns alone, so that two transactions inserting one value write
/// the same key and the second to commit gets a write conflict instead of a
/// duplicate. Other entries (non-unique indexes, NULLs, which may repeat)
/// end with the primary key's columns, so that they are distinct.
pub fn index_entry(table: &TableDesc, index: &IndexDesc, row: &[Value]) -> (Vec<u8>, Vec<u8>) {
    let pk_key = primary_key(table, row);
    let values = index_values(table, index, row);
    let mut key = index_key_prefix(table, index, &values);
    if !index.unique || values.iter().any(Value::is_null) {
        let pk_prefix_len = index_prefix(table.oid, table.primary().id).len();
        key.extend_from_slice(&pk_key[pk_prefix_len..]);
    }
    (key, pk_key)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> SqlResult<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos).ok_or_else(corrupt)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(corrupt());
        }
    }
}

fn corrupt() -> SqlError {
    SqlError::internal("corrupt row value")
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> SqlResult<&'a [u8]> {
    let s = buf.get(*pos..*pos + n).ok_or_else(corrupt)?;
    *pos += n;
    Ok(s)
}

fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(false) => out.push(1),
        Value::Bool(true) => out.push(2),
        Value::Int(i) => {
            out.push(3);
            put_varint(out, ((i << 1) ^ (i >> 63)) as u64);
        }
        Value::Float(f) => {
            out.push(4);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Numeric(d) => {
            out.push(5);
            out.extend_from_slice(&d.serialize());
        }
        Value::Text(s) => {
            out.push(6);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytea(b) => {
            out.push(7);
            put_varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Date(d) => {
            out.push(8);
            out.extend_from_slice(&d.num_days_from_ce().to_le_bytes());
        }
        Value::Timestamp(t) => {
            out.push(9);
            out.extend_from_slice(&t.and_utc().timestamp_micros().to_le_bytes());
        }
        Value::TimestampTz(t) => {
            out.push(10);
            out.extend_from_slice(&t.timestamp_micros().to_le_bytes());
        }
        Value::Uuid(u) => {
            out.push(11);
            out.extend_from_slice(u.as_bytes());
        }
        Value::Array(items) => {
            out.push(12);
            put_varint(out, items.len() as u64);
            for item in items {
                encode_value(out, item);
            }
        }
    }
}

fn decode_value(buf: &[u8], pos: &mut usize) -> SqlResult<Value> {
    let tag = *buf.get(*pos).ok_or_else(corrupt)?;
    *pos += 1;
    Ok(match tag {
        0 => Value::Null,
        1 => Value::Bool(false),
        2 => Value::Bool(true),
        3 => {
            let z = get_varint(buf, pos)?;
            Value::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
        }
        4 => Value::Float(f64::from_le_bytes(
            take(buf, pos, 8)?.try_into().expect("8 bytes"),
        )),
        5 => Value::Numeric(Decimal::deserialize(
            take(buf, pos, 16)?.try_into().expect("16 bytes"),
        )),
        6 => {
            let n = get_varint(buf, pos)? as usize;
            Value::Text(String::from_utf8(take(buf, pos, n)?.to_vec()).map_err(|_| corrupt())?)
        }
        7 => {
            let n = get_varint(buf, pos)? as usize;
            Value::Bytea(take(buf, pos, n)?.to_vec())
        }
        8 => {
            let days = i32::from_le_bytes(take(buf, pos, 4)?.try_into().expect("4 bytes"));
            Value::Date(NaiveDate::from_num_days_from_ce_opt(days).ok_or_else(corrupt)?)
        }
        9 | 10 => {
            let micros = i64::from_le_bytes(take(buf, pos, 8)?.try_into().expect("8 bytes"));
            let t: DateTime<Utc> = DateTime::from_timestamp_micros(micros).ok_or_else(corrupt)?;
            if tag == 9 {
                Value::Timestamp(t.naive_utc())
            } else {
                Value::TimestampTz(t)
            }
        }
        11 => Value::Uuid(Uuid::from_slice(take(buf, pos, 16)?).map_err(|_| corrupt())?),
        12 => {
            let n = get_varint(buf, pos)? as usize;
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(decode_value(buf, pos)?);
            }
            Value::Array(items)
        }
        _ => return Err(corrupt()),
    })
}

/// Encodes a row (values in `table.columns` order), skipping NULLs.
pub fn encode_row(table: &TableDesc, row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * row.len());
    for (col, v) in table.columns.iter().zip(row) {
        if !v.is_null() {
            put_varint(&mut out, col.id as u64);
            encode_value(&mut out, v);
        }
    }
    out
}

/// Decodes a row into `table.columns` order; columns the value lacks are NULL
/// and values of dropped columns are skipped.
pub fn decode_row(table: &TableDesc, bytes: &[u8]) -> SqlResult<Vec<Value>> {
    let mut row = vec![Value::Null; table.columns.len()];
    let mut pos = 0;
    while pos < bytes.len() {
        let id = get_varint(bytes, &mut pos)? as u32;
        let v = decode_value(bytes, &mut pos)?;
        if let Some(i) = table.position(id) {
            row[i] = v;
        }
    }
    Ok(row)
}
