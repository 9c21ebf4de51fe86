//! PostgreSQL's text and binary formats for [`Value`]s: result columns out,
//! bind parameters in.
//!
//! Text is the SQL layer's own output and input (`Value::to_pg_text`,
//! `types::parse_text`). Binary follows PostgreSQL's `send`/`recv`
//! functions; numeric, date and timestamps go through postgres-types'
//! `ToSql`/`FromSql` (with the chrono and rust_decimal implementations).

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use postgres_types::{FromSql, ToSql, Type};
use rust_decimal::Decimal;
use tessera_sql::types::{coerce_numeric, parse_text};
use tessera_sql::{code, DataType, SqlError, SqlResult, Value};

/// Format code 0.
pub(crate) const TEXT: i16 = 0;
/// Format code 1.
pub(crate) const BINARY: i16 = 1;

/// The type a client is told about: an unresolved literal is text, as
/// PostgreSQL resolves `unknown` output columns and parameters.
pub(crate) fn wire_type(ty: DataType) -> DataType {
    match ty {
        DataType::Unknown => DataType::Text,
        t => t,
    }
}

/// The format of column or parameter `i` given a Bind's format codes: none
/// means text, one applies to all, otherwise one per column.
pub(crate) fn format_of(formats: &[i16], i: usize) -> i16 {
    match formats {
        [] => TEXT,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(TEXT),
    }
}

/// Checks that a Bind's format codes are text or binary.
pub(crate) fn check_codes(formats: &[i16]) -> SqlResult<()> {
    match formats.iter().find(|f| **f != TEXT && **f != BINARY) {
        Some(bad) => Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            format!("unsupported format code: {bad}"),
        )),
        None => Ok(()),
    }
}

fn binary_error(what: &str) -> SqlError {
    SqlError::new("22P03", format!("incorrect binary data format in {what}"))
}

fn boxed_error(what: &str, err: Box<dyn std::error::Error + Send + Sync>) -> SqlError {
    binary_error(what).with_detail(err.to_string())
}

/// Converts `value` to the variant binary output expects for `ty`, through
/// text when the SQL layer produced another variant.
fn conform<'a>(value: &'a Value, ty: DataType) -> SqlResult<Cow<'a, Value>> {
    let fits = matches!(
        (ty, value),
        (DataType::Bool, Value::Bool(_))
            | (
                DataType::Int2
                    | DataType::Int4
                    | DataType::Int8
                    | DataType::Oid
                    | DataType::RegClass
                    | DataType::RegType,
                Value::Int(_)
            )
            | (DataType::Float4 | DataType::Float8, Value::Float(_))
            | (DataType::Numeric(_), Value::Numeric(_))
            | (
                DataType::Text
                    | DataType::Varchar(_)
                    | DataType::Char(_)
                    | DataType::Name
                    | DataType::Unknown,
                Value::Text(_)
            )
            | (DataType::Bytea, Value::Bytea(_))
            | (DataType::Date, Value::Date(_))
            | (DataType::Timestamp, Value::Timestamp(_))
            | (DataType::TimestampTz, Value::TimestampTz(_))
            | (DataType::Uuid, Value::Uuid(_))
            | (DataType::TextArray | DataType::IntArray, Value::Array(_))
    );
    if fits {
        return Ok(Cow::Borrowed(value));
    }
    let text = value.to_pg_text(ty).unwrap_or_default();
    parse_text(&text, ty).map(Cow::Owned)
}

/// Appends one DataRow field: its length and bytes, or -1 for NULL.
pub(crate) fn put_field(
    value: &Value,
    ty: DataType,
    format: i16,
    out: &mut BytesMut,
) -> SqlResult<()> {
    if value.is_null() {
        out.put_i32(-1);
        return Ok(());
    }
    let at = out.len();
    out.put_i32(0);
    if format == BINARY {
        put_binary(value, ty, out)?;
    } else {
        out.put_slice(value.to_pg_text(ty).unwrap_or_default().as_bytes());
    }
    let len = i32::try_from(out.len() - at - 4)
        .map_err(|_| SqlError::new(code::PROGRAM_LIMIT_EXCEEDED, "result value too large"))?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn to_sql<T: ToSql>(v: &T, ty: &Type, out: &mut BytesMut) -> SqlResult<()> {
    v.to_sql(ty, out)
        .map(|_| ())
        .map_err(|e| SqlError::internal(format!("cannot encode a {ty} value: {e}")))
}

fn int_in_range(i: i64, min: i64, max: i64, name: &str) -> SqlResult<i64> {
    if i < min || i > max {
        return Err(SqlError::out_of_range(format!("{name} out of range")));
    }
    Ok(i)
}

/// PostgreSQL's binary `send` format of a non-NULL value of type `ty`.
fn put_binary(value: &Value, ty: DataType, out: &mut BytesMut) -> SqlResult<()> {
    let value = conform(value, ty)?;
    match (ty, value.as_ref()) {
        (_, Value::Null) => {}
        (DataType::Bool, Value::Bool(b)) => out.put_u8(u8::from(*b)),
        (DataType::Int2, Value::Int(i)) => {
            out.put_i16(int_in_range(*i, i16::MIN.into(), i16::MAX.into(), "smallint")? as i16)
        }
        (DataType::Int4, Value::Int(i)) => {
            out.put_i32(int_in_range(*i, i32::MIN.into(), i32::MAX.into(), "integer")? as i32)
        }
        (DataType::Int8, Value::Int(i)) => out.put_i64(*i),
        (DataType::Oid | DataType::RegClass | DataType::RegType, Value::Int(i)) => {
            out.put_u32(int_in_range(*i, 0, u32::MAX.into(), "oid")? as u32)
        }
        (DataType::Float4, Value::Float(f)) => out.put_f32(*f as f32),
        (DataType::Float8, Value::Float(f)) => out.put_f64(*f),
        (DataType::Numeric(_), Value::Numeric(d)) => to_sql(d, &Type::NUMERIC, out)?,
        (_, Value::Text(s)) => out.put_slice(s.as_bytes()),
        (_, Value::Bytea(b)) => out.put_slice(b),
        (_, Value::Date(d)) => to_sql(d, &Type::DATE, out)?,
        (_, Value::Timestamp(ts)) => to_sql(ts, &Type::TIMESTAMP, out)?,
        (_, Value::TimestampTz(ts)) => to_sql(ts, &Type::TIMESTAMPTZ, out)?,
        (_, Value::Uuid(u)) => out.put_slice(u.as_bytes()),
        (DataType::TextArray, Value::Array(items)) => put_array(items, DataType::Text, out)?,
        (DataType::IntArray, Value::Array(items)) => put_array(items, DataType::Int4, out)?,
        (ty, value) => {
            return Err(SqlError::internal(format!(
                "cannot send a {} value as {}",
                value.kind(),
                ty.sql_name()
            )))
        }
    }
    Ok(())
}

/// A one-dimensional array in `array_send` format.
fn put_array(items: &[Value], element: DataType, out: &mut BytesMut) -> SqlResult<()> {
    let dims = i32::from(!items.is_empty());
    out.put_i32(dims);
    out.put_i32(i32::from(items.iter().any(Value::is_null)));
    out.put_u32(element.oid());
    if dims == 1 {
        let len = i32::try_from(items.len())
            .map_err(|_| SqlError::new(code::PROGRAM_LIMIT_EXCEEDED, "array too large"))?;
        out.put_i32(len);
        out.put_i32(1);
    }
    for item in items {
        put_field(item, element, BINARY, out)?;
    }
    Ok(())
}

/// Decodes bind parameter `index` (0-based) of type `ty` sent in `format`.
pub(crate) fn decode_param(
    raw: Option<&[u8]>,
    ty: DataType,
    format: i16,
    index: usize,
) -> SqlResult<Value> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    if format == BINARY {
        decode_binary(raw, ty).map_err(|e| {
            if e.code == "22P03" {
                SqlError::new(
                    "22P03",
                    format!(
                        "incorrect binary data format in bind parameter {}",
                        index + 1
                    ),
                )
                .with_detail(e.detail.unwrap_or(e.message))
            } else {
                e
            }
        })
    } else {
        let text = utf8(raw)?;
        if ty.is_string() || ty == DataType::Unknown {
            // Length limits apply where the value is assigned, not here: a
            // parameter declared bpchar (char(1) to the SQL layer) or
            // varchar(n) takes any string, as in PostgreSQL.
            return Ok(Value::Text(text.to_string()));
        }
        parse_text(text, ty)
    }
}

fn utf8(raw: &[u8]) -> SqlResult<&str> {
    std::str::from_utf8(raw)
        .map_err(|_| SqlError::new("22021", "invalid byte sequence for encoding \"UTF8\""))
}

fn fixed<const N: usize>(raw: &[u8]) -> SqlResult<[u8; N]> {
    raw.try_into().map_err(|_| binary_error("value"))
}

fn from_sql<'a, T: FromSql<'a>>(ty: &Type, raw: &'a [u8]) -> SqlResult<T> {
    T::from_sql(ty, raw).map_err(|e| boxed_error("value", e))
}

/// PostgreSQL's binary `recv` format.
pub(crate) fn decode_binary(raw: &[u8], ty: DataType) -> SqlResult<Value> {
    Ok(match ty {
        DataType::Bool => Value::Bool(fixed::<1>(raw)?[0] != 0),
        DataType::Int2 => Value::Int(i16::from_be_bytes(fixed(raw)?).into()),
        DataType::Int4 => Value::Int(i32::from_be_bytes(fixed(raw)?).into()),
        DataType::Int8 => Value::Int(i64::from_be_bytes(fixed(raw)?)),
        DataType::Oid | DataType::RegClass | DataType::RegType => {
            Value::Int(u32::from_be_bytes(fixed(raw)?).into())
        }
        DataType::Float4 => Value::Float(f32::from_be_bytes(fixed(raw)?).into()),
        DataType::Float8 => Value::Float(f64::from_be_bytes(fixed(raw)?)),
        DataType::Numeric(_) => coerce_numeric(from_sql::<Decimal>(&Type::NUMERIC, raw)?, ty)?,
        DataType::Text
        | DataType::Name
        | DataType::Unknown
        | DataType::Varchar(_)
        | DataType::Char(_) => Value::Text(utf8(raw)?.to_string()),
        DataType::Bytea => Value::Bytea(raw.to_vec()),
        DataType::Date => Value::Date(from_sql::<NaiveDate>(&Type::DATE, raw)?),
        DataType::Timestamp => Value::Timestamp(from_sql::<NaiveDateTime>(&Type::TIMESTAMP, raw)?),
        DataType::TimestampTz => {
            Value::TimestampTz(from_sql::<DateTime<Utc>>(&Type::TIMESTAMPTZ, raw)?)
        }
        DataType::Uuid => Value::Uuid(uuid::Uuid::from_bytes(fixed(raw)?)),
        DataType::TextArray | DataType::IntArray => decode_array(raw)?,
    })
}

/// `array_recv` for arrays of at most one dimension.
fn decode_array(raw: &[u8]) -> SqlResult<Value> {
    let mut r = crate::frontend::Reader::new(raw);
    let bad = |_| binary_error("array");
    let dims = r.i32().map_err(bad)?;
    let _has_nulls = r.i32().map_err(bad)?;
    let element_oid = r.u32().map_err(bad)?;
    let element = DataType::from_oid(element_oid).ok_or_else(|| {
        SqlError::new(
            code::UNDEFINED_OBJECT,
            format!("type with OID {element_oid} does not exist"),
        )
    })?;
    let len = match dims {
        0 => 0,
        1 => {
            let len = r.i32().map_err(bad)?;
            let _lower_bound = r.i32().map_err(bad)?;
            usize::try_from(len).map_err(|_| binary_error("array"))?
        }
        _ => {
            return Err(SqlError::unsupported(
                "multidimensional arrays are not supported",
            ))
        }
    };
    let mut items = Vec::with_capacity(len.min(raw.len() / 4));
    for _ in 0..len {
        let item_len = r.i32().map_err(bad)?;
        if item_len < 0 {
            items.push(Value::Null);
        } else {
            let bytes = r.bytes(item_len as usize).map_err(bad)?;
            items.push(decode_binary(bytes, element)?);
        }
    }
    r.finish().map_err(bad)?;
    Ok(Value::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(value: &Value, ty: DataType) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_field(value, ty, BINARY, &mut out).unwrap();
        out[4..].to_vec()
    }

    #[test]
    fn binary_round_trips() {
        let ts = NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_micro_opt(12, 34, 56, 789)
            .unwrap();
        let cases = [
            (Value::Bool(true), DataType::Bool),
            (Value::Int(-7), DataType::Int2),
            (Value::Int(1 << 20), DataType::Int4),
            (Value::Int(1 << 40), DataType::Int8),
            (Value::Int(4_000_000_000), DataType::Oid),
            (Value::Float(1.5), DataType::Float4),
            (Value::Float(-2.25e100), DataType::Float8),
            (
                Value::Numeric("12345.678".parse().unwrap()),
                DataType::Numeric(None),
            ),
            (Value::Text("héllo".into()), DataType::Text),
            (Value::Bytea(vec![0, 1, 255]), DataType::Bytea),
            (Value::Date(ts.date()), DataType::Date),
            (Value::Timestamp(ts), DataType::Timestamp),
            (Value::TimestampTz(ts.and_utc()), DataType::TimestampTz),
            (Value::Uuid(uuid::Uuid::from_u128(0x1234)), DataType::Uuid),
            (
                Value::Array(vec![Value::Text("a".into()), Value::Null]),
                DataType::TextArray,
            ),
            (
                Value::Array(vec![Value::Int(1), Value::Int(-2)]),
                DataType::IntArray,
            ),
            (Value::Array(vec![]), DataType::TextArray),
        ];
        for (value, ty) in cases {
            let bytes = binary(&value, ty);
            let back = decode_binary(&bytes, ty).unwrap();
            assert_eq!(
                back.to_pg_text(ty),
                value.to_pg_text(ty),
                "{ty:?}: {value:?} came back as {back:?}"
            );
        }
    }

    #[test]
    fn binary_matches_postgres_types() {
        // What tokio-postgres would send for these parameters.
        let mut buf = BytesMut::new();
        42i32.to_sql(&Type::INT4, &mut buf).unwrap();
        assert_eq!(binary(&Value::Int(42), DataType::Int4), buf.to_vec());
        let mut buf = BytesMut::new();
        vec![Some("x".to_string()), None]
            .to_sql(&Type::TEXT_ARRAY, &mut buf)
            .unwrap();
        let decoded = decode_binary(&buf, DataType::TextArray).unwrap();
        assert_eq!(decoded.to_pg_text(DataType::TextArray).unwrap(), "{x,NULL}");
    }

    #[test]
    fn text_and_null_fields() {
        let mut out = BytesMut::new();
        put_field(&Value::Null, DataType::Int4, TEXT, &mut out).unwrap();
        put_field(&Value::Int(12), DataType::Int4, TEXT, &mut out).unwrap();
        assert_eq!(&out[..], &[255, 255, 255, 255, 0, 0, 0, 2, b'1', b'2']);
    }

    #[test]
    fn bad_binary_input_is_an_error() {
        assert!(decode_binary(&[0, 1, 2], DataType::Int4).is_err());
        assert!(decode_binary(&[0, 0, 0, 1, 0, 0, 0, 0], DataType::TextArray).is_err());
        assert!(decode_binary(&[0xff, 0xfe], DataType::Text).is_err());
        let err = decode_param(Some(&[1]), DataType::Int8, BINARY, 1).unwrap_err();
        assert_eq!(err.code, "22P03");
        assert!(err.message.contains("parameter 2"), "{err}");
        assert!(decode_param(None, DataType::Int8, BINARY, 0)
            .unwrap()
            .is_null());
        assert_eq!(
            decode_param(Some(b"17"), DataType::Int8, TEXT, 0)
                .unwrap()
                .to_pg_text(DataType::Int8),
            Some("17".into())
        );
    }

    #[test]
    fn format_codes() {
        assert_eq!(format_of(&[], 3), TEXT);
        assert_eq!(format_of(&[1], 3), BINARY);
        assert_eq!(format_of(&[0, 1], 1), BINARY);
        assert!(check_codes(&[2]).is_err());
        assert!(check_codes(&[1, 0]).is_ok());
    }
}
