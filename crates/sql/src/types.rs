//! SQL data types and values: PostgreSQL's text input and output formats,
//! casts, numeric promotion and comparison.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{code, SqlError, SqlResult};

/// A SQL data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// numeric(precision, scale); both absent for unconstrained numeric.
    Numeric(Option<(u32, u32)>),
    Text,
    Varchar(Option<u32>),
    /// char(n), blank-padded.
    Char(u32),
    /// PostgreSQL's 63-byte identifier type, used by the catalogs.
    Name,
    Bytea,
    Date,
    Timestamp,
    TimestampTz,
    Uuid,
    Oid,
    RegClass,
    RegType,
    /// An array of text, used by catalog columns and array literals.
    TextArray,
    /// An array of int2/int4/oid in the catalogs (int2vector, oidvector).
    IntArray,
    /// The type of an untyped literal or NULL before context decides.
    Unknown,
}

impl DataType {
    /// The type's OID in pg_type.
    pub fn oid(self) -> u32 {
        match self {
            DataType::Bool => 16,
            DataType::Bytea => 17,
            DataType::Name => 19,
            DataType::Int8 => 20,
            DataType::Int2 => 21,
            DataType::Int4 => 23,
            DataType::Text => 25,
            DataType::Oid => 26,
            DataType::Float4 => 700,
            DataType::Float8 => 701,
            DataType::Unknown => 705,
            DataType::Char(_) => 1042,
            DataType::Varchar(_) => 1043,
            DataType::Date => 1082,
            DataType::Timestamp => 1114,
            DataType::TimestampTz => 1184,
            DataType::Numeric(_) => 1700,
            DataType::RegClass => 2205,
            DataType::RegType => 2206,
            DataType::Uuid => 2950,
            DataType::TextArray => 1009,
            DataType::IntArray => 1007,
        }
    }

    /// The type with pg_type OID `oid`, if Tessera supports it.
    pub fn from_oid(oid: u32) -> Option<DataType> {
        Some(match oid {
            16 => DataType::Bool,
            17 => DataType::Bytea,
            18 | 19 => DataType::Name,
            20 => DataType::Int8,
            21 => DataType::Int2,
            23 => DataType::Int4,
            25 => DataType::Text,
            26 => DataType::Oid,
            700 => DataType::Float4,
            701 => DataType::Float8,
            705 | 0 => DataType::Unknown,
            1042 => DataType::Char(1),
            1043 => DataType::Varchar(None),
            1082 => DataType::Date,
            1114 => DataType::Timestamp,
            1184 => DataType::TimestampTz,
            1700 => DataType::Numeric(None),
            2205 => DataType::RegClass,
            2206 => DataType::RegType,
            2950 => DataType::Uuid,
            1009 => DataType::TextArray,
            1005 | 1007 | 1028 => DataType::IntArray,
            _ => return None,
        })
    }

    /// Type modifier as pg_attribute.atttypmod stores it (-1 if none).
    pub fn typmod(self) -> i32 {
        match self {
            DataType::Numeric(Some((p, s))) => (((p << 16) | s) + 4) as i32,
            DataType::Varchar(Some(n)) | DataType::Char(n) => n as i32 + 4,
            DataType::Varchar(None) => -1,
            _ => -1,
        }
    }

    /// pg_type.typlen.
    pub fn typlen(self) -> i16 {
        match self {
            DataType::Bool => 1,
            DataType::Int2 => 2,
            DataType::Int4 | DataType::Float4 | DataType::Date | DataType::Oid => 4,
            DataType::RegClass | DataType::RegType => 4,
            DataType::Int8 | DataType::Float8 | DataType::Timestamp | DataType::TimestampTz => 8,
            DataType::Uuid => 16,
            DataType::Name => 64,
            _ => -1,
        }
    }

    /// The name `format_type` prints, with the modifier.
    pub fn sql_name(self) -> String {
        match self {
            DataType::Bool => "boolean".into(),
            DataType::Int2 => "smallint".into(),
            DataType::Int4 => "integer".into(),
            DataType::Int8 => "bigint".into(),
            DataType::Float4 => "real".into(),
            DataType::Float8 => "double precision".into(),
            DataType::Numeric(None) => "numeric".into(),
            DataType::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            DataType::Text => "text".into(),
            DataType::Varchar(None) => "character varying".into(),
            DataType::Varchar(Some(n)) => format!("character varying({n})"),
            DataType::Char(n) => format!("character({n})"),
            DataType::Name => "name".into(),
            DataType::Bytea => "bytea".into(),
            DataType::Date => "date".into(),
            DataType::Timestamp => "timestamp without time zone".into(),
            DataType::TimestampTz => "timestamp with time zone".into(),
            DataType::Uuid => "uuid".into(),
            DataType::Oid => "oid".into(),
            DataType::RegClass => "regclass".into(),
            DataType::RegType => "regtype".into(),
            DataType::TextArray => "text[]".into(),
            DataType::IntArray => "integer[]".into(),
            DataType::Unknown => "unknown".into(),
        }
    }

    /// pg_type.typname.
    pub fn type_name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::Int2 => "int2",
            DataType::Int4 => "int4",
            DataType::Int8 => "int8",
            DataType::Float4 => "float4",
            DataType::Float8 => "float8",
            DataType::Numeric(_) => "numeric",
            DataType::Text => "text",
            DataType::Varchar(_) => "varchar",
            DataType::Char(_) => "bpchar",
            DataType::Name => "name",
            DataType::Bytea => "bytea",
            DataType::Date => "date",
            DataType::Timestamp => "timestamp",
            DataType::TimestampTz => "timestamptz",
            DataType::Uuid => "uuid",
            DataType::Oid => "oid",
            DataType::RegClass => "regclass",
            DataType::RegType => "regtype",
            DataType::TextArray => "_text",
            DataType::IntArray => "_int4",
            DataType::Unknown => "unknown",
        }
    }

    /// Every type that gets a pg_type row.
    pub fn catalog_types() -> &'static [DataType] {
        &[
            DataType::Bool,
            DataType::Bytea,
            DataType::Name,
            DataType::Int8,
            DataType::Int2,
            DataType::Int4,
            DataType::Text,
            DataType::Oid,
            DataType::Float4,
            DataType::Float8,
            DataType::Unknown,
            DataType::Char(1),
            DataType::Varchar(None),
            DataType::Date,
            DataType::Timestamp,
            DataType::TimestampTz,
            DataType::Numeric(None),
            DataType::RegClass,
            DataType::RegType,
            DataType::Uuid,
            DataType::TextArray,
            DataType::IntArray,
        ]
    }

    /// Integer types (including oid-like ones).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::Int2
                | DataType::Int4
                | DataType::Int8
                | DataType::Oid
                | DataType::RegClass
                | DataType::RegType
        )
    }

    /// Any numeric type.
    pub fn is_numeric(self) -> bool {
        self.is_integer()
            || matches!(
                self,
                DataType::Float4 | DataType::Float8 | DataType::Numeric(_)
            )
    }

    /// Character types.
    pub fn is_string(self) -> bool {
        matches!(
            self,
            DataType::Text | DataType::Varchar(_) | DataType::Char(_) | DataType::Name
        )
    }

    /// The type category used by implicit coercion ('N', 'S', 'B', 'D', ...).
    pub fn category(self) -> char {
        match self {
            DataType::Bool => 'B',
            t if t.is_numeric() => 'N',
            t if t.is_string() => 'S',
            DataType::Date | DataType::Timestamp | DataType::TimestampTz => 'D',
            DataType::Unknown => 'X',
            DataType::TextArray | DataType::IntArray => 'A',
            _ => 'U',
        }
    }

    /// The same type without length or precision constraints.
    pub fn base(self) -> DataType {
        match self {
            DataType::Numeric(_) => DataType::Numeric(None),
            DataType::Varchar(_) => DataType::Varchar(None),
            DataType::Char(_) => DataType::Char(1),
            t => t,
        }
    }

    /// Rank in the numeric promotion ladder.
    fn numeric_rank(self) -> u8 {
        match self {
            DataType::Int2 => 1,
            DataType::Int4 | DataType::Oid | DataType::RegClass | DataType::RegType => 2,
            DataType::Int8 => 3,
            DataType::Numeric(_) => 4,
            DataType::Float4 => 5,
            DataType::Float8 => 6,
            _ => 0,
        }
    }

    /// The common type of two numeric types (PostgreSQL's promotion).
    pub fn promote(a: DataType, b: DataType) -> DataType {
        let t = if a.numeric_rank() >= b.numeric_rank() {
            a
        } else {
            b
        };
        if t == DataType::Float4 && a != b {
            // float4 with an integer or numeric computes in float8.
            return DataType::Float8;
        }
        match t {
            DataType::Numeric(_) => DataType::Numeric(None),
            DataType::Oid | DataType::RegClass | DataType::RegType if a != b => DataType::Int8,
            t => t,
        }
    }

    /// The common type of two types for UNION, CASE, COALESCE, IN, comparison.
    pub fn common(a: DataType, b: DataType) -> Option<DataType> {
        if a == b {
            return Some(a);
        }
        match (a, b) {
            (DataType::Unknown, t) | (t, DataType::Unknown) => Some(if t == DataType::Unknown {
                DataType::Text
            } else {
                t
            }),
            (x, y) if x.is_numeric() && y.is_numeric() => Some(DataType::promote(x, y)),
            (x, y) if x.is_string() && y.is_string() => Some(if x.base() == y.base() {
                x.base()
            } else {
                DataType::Text
            }),
            (DataType::Date, DataType::Timestamp) | (DataType::Timestamp, DataType::Date) => {
                Some(DataType::Timestamp)
            }
            (DataType::Date | DataType::Timestamp, DataType::TimestampTz)
            | (DataType::TimestampTz, DataType::Date | DataType::Timestamp) => {
                Some(DataType::TimestampTz)
            }
            _ => None,
        }
    }
}

/// A SQL value. Integer types share `Int` and float types share `Float`; the
/// static type says which width applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Numeric(Decimal),
    Text(String),
    Bytea(Vec<u8>),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    Uuid(Uuid),
    Array(Vec<Value>),
}

impl Value {
    /// SQL NULL?
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The boolean value; NULL is None.
    pub fn as_bool(&self) -> SqlResult<Option<bool>> {
        match self {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            other => Err(SqlError::mismatch(format!(
                "argument must be type boolean, not {}",
                other.kind()
            ))),
        }
    }

    /// The integer value (NULL is an error; callers check first).
    pub fn as_i64(&self) -> SqlResult<i64> {
        match self {
            Value::Int(i) => Ok(*i),
            Value::Float(f) => float_to_int(*f, i64::MIN, i64::MAX, "bigint"),
            Value::Numeric(d) => decimal_to_int(*d, i64::MIN, i64::MAX, "bigint"),
            Value::Text(s) => parse_int(s.trim(), i64::MIN, i64::MAX, "bigint"),
            other => Err(SqlError::mismatch(format!(
                "expected an integer, found {}",
                other.kind()
            ))),
        }
    }

    /// The value as f64 (numeric types only).
    pub fn as_f64(&self) -> SqlResult<f64> {
        match self {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            Value::Numeric(d) => Ok(d.to_f64().unwrap_or(f64::NAN)),
            other => Err(SqlError::mismatch(format!(
                "expected a number, found {}",
                other.kind()
            ))),
        }
    }

    /// The value as a decimal (integer and numeric types).
    pub fn as_decimal(&self) -> SqlResult<Decimal> {
        match self {
            Value::Int(i) => Ok(Decimal::from(*i)),
            Value::Numeric(d) => Ok(*d),
            Value::Float(f) => float_to_decimal(*f),
            other => Err(SqlError::mismatch(format!(
                "expected a number, found {}",
                other.kind()
            ))),
        }
    }

    /// The string (character types only).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the value's representation, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "double precision",
            Value::Numeric(_) => "numeric",
            Value::Text(_) => "text",
            Value::Bytea(_) => "bytea",
            Value::Date(_) => "date",
            Value::Timestamp(_) => "timestamp without time zone",
            Value::TimestampTz(_) => "timestamp with time zone",
            Value::Uuid(_) => "uuid",
            Value::Array(_) => "array",
        }
    }

    /// PostgreSQL's text output for a value of type `ty`. None for NULL.
    pub fn to_pg_text(&self, ty: DataType) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => {
                if ty == DataType::Float4 {
                    format_float4(*f as f32)
                } else {
                    format_float8(*f)
                }
            }
            Value::Numeric(d) => format_numeric(*d),
            Value::Text(s) => s.clone(),
            Value::Bytea(b) => {
                let mut out = String::with_capacity(2 + b.len() * 2);
                out.push_str("\\x");
                for byte in b {
                    let _ = write!(out, "{byte:02x}");
                }
                out
            }
            Value::Date(d) => format_date(*d),
            Value::Timestamp(ts) => format_timestamp(*ts),
            Value::TimestampTz(ts) => format!("{}+00", format_timestamp(ts.naive_utc())),
            Value::Uuid(u) => u.hyphenated().to_string(),
            Value::Array(items) => {
                let mut out = String::from("{");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    match item.to_pg_text(DataType::Text) {
                        None => out.push_str("NULL"),
                        Some(s) => {
                            if s.is_empty()
                                || s.contains([',', '{', '}', '"', '\\', ' '])
                                || s.eq_ignore_ascii_case("null")
                            {
                                out.push('"');
                                out.push_str(&s.replace('\\', "\\\\").replace('"', "\\\""));
                                out.push('"');
                            } else {
                                out.push_str(&s);
                            }
                        }
                    }
                }
                out.push('}');
                out
            }
        })
    }
}

/// Values compare and hash by SQL equality so that GROUP BY, DISTINCT and hash
/// joins put equal values together: 1 = 1.0 and -0.0 = 0.0.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        compare(self, other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Bool(b) => b.hash(state),
            Value::Int(_) | Value::Float(_) | Value::Numeric(_) => {
                // All numbers hash by their normalized decimal value when they
                // have one, so that equal numbers of different types collide.
                match self.as_decimal() {
                    Ok(d) => d.normalize().hash(state),
                    Err(_) => self.as_f64().unwrap_or(0.0).to_bits().hash(state),
                }
            }
            Value::Text(s) => s.trim_end_matches(' ').hash(state),
            Value::Bytea(b) => b.hash(state),
            Value::Date(d) => d.hash(state),
            Value::Timestamp(t) => t.hash(state),
            Value::TimestampTz(t) => t.hash(state),
            Value::Uuid(u) => u.hash(state),
            Value::Array(a) => a.hash(state),
        }
    }
}

/// Total order used by ORDER BY, indexes and comparisons: NULL sorts last,
/// numbers compare across types, NaN above every other float (as PostgreSQL).
pub fn compare(a: &Value, b: &Value) -> Ordering {
    use Value::*;
    match (a, b) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Greater,
        (_, Null) => Ordering::Less,
        (Bool(x), Bool(y)) => x.cmp(y),
        (Int(x), Int(y)) => x.cmp(y),
        (Float(x), Float(y)) => cmp_f64(*x, *y),
        (Numeric(x), Numeric(y)) => x.cmp(y),
        (Int(x), Numeric(y)) => Decimal::from(*x).cmp(y),
        (Numeric(x), Int(y)) => x.cmp(&Decimal::from(*y)),
        (Int(_) | Numeric(_), Float(y)) => cmp_f64(a.as_f64().unwrap_or(f64::NAN), *y),
        (Float(x), Int(_) | Numeric(_)) => cmp_f64(*x, b.as_f64().unwrap_or(f64::NAN)),
        (Text(x), Text(y)) => x.trim_end_matches(' ').cmp(y.trim_end_matches(' ')),
        (Bytea(x), Bytea(y)) => x.cmp(y),
        (Date(x), Date(y)) => x.cmp(y),
        (Timestamp(x), Timestamp(y)) => x.cmp(y),
        (TimestampTz(x), TimestampTz(y)) => x.cmp(y),
        (Date(x), Timestamp(y)) => x.and_time(NaiveTime::MIN).cmp(y),
        (Timestamp(x), Date(y)) => x.cmp(&y.and_time(NaiveTime::MIN)),
        (Uuid(x), Uuid(y)) => x.cmp(y),
        (Array(x), Array(y)) => {
            for (l, r) in x.iter().zip(y.iter()) {
                let o = compare(l, r);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 255,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Float(_) | Value::Numeric(_) => 2,
        Value::Text(_) => 3,
        Value::Bytea(_) => 4,
        Value::Date(_) | Value::Timestamp(_) => 5,
        Value::TimestampTz(_) => 6,
        Value::Uuid(_) => 7,
        Value::Array(_) => 8,
    }
}

fn cmp_f64(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

// ---------------------------------------------------------------------------
// Output formats
// ---------------------------------------------------------------------------

/// float8 output as PostgreSQL 12+ prints it: the shortest digits that read
/// back exactly, exponent notation below 1e-4 and from 1e15.
pub fn format_float8(v: f64) -> String {
    format_shortest(v, format!("{v:e}"), 15)
}

/// float4 output (exponent notation from 1e6).
pub fn format_float4(v: f32) -> String {
    format_shortest(v as f64, format!("{v:e}"), 6)
}

fn format_shortest(v: f64, sci: String, max_exp: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // sci looks like "-1.2345e-7" or "1e20".
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exp < -4 || exp >= max_exp {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// numeric output: the digits with the value's own scale.
pub fn format_numeric(mut d: Decimal) -> String {
    // Decimal has a negative zero; PostgreSQL's numeric does not.
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    d.to_string()
}

fn format_date(d: NaiveDate) -> String {
    use chrono::Datelike;
    if d.year() <= 0 {
        format!("{:04}-{:02}-{:02} BC", 1 - d.year(), d.month(), d.day())
    } else {
        d.format("%Y-%m-%d").to_string()
    }
}

fn format_timestamp(ts: NaiveDateTime) -> String {
    use chrono::Timelike;
    let mut s = format!("{} {}", format_date(ts.date()), ts.format("%H:%M:%S"));
    let micros = ts.nanosecond() / 1000;
    if micros > 0 {
        let frac = format!("{micros:06}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

// ---------------------------------------------------------------------------
// Input formats
// ---------------------------------------------------------------------------

fn invalid_input(ty: &str, s: &str) -> SqlError {
    SqlError::new(
        code::INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {ty}: \"{s}\""),
    )
}

fn parse_int(s: &str, min: i64, max: i64, ty: &str) -> SqlResult<i64> {
    let t = s.trim();
    let v: i128 = t.parse().map_err(|_| invalid_input(ty, s))?;
    if v < min as i128 || v > max as i128 {
        return Err(SqlError::out_of_range(format!(
            "value \"{s}\" is out of range for type {ty}"
        )));
    }
    Ok(v as i64)
}

fn float_to_int(f: f64, min: i64, max: i64, ty: &str) -> SqlResult<i64> {
    let r = f.round_ties_even();
    if r.is_nan()
        || r < min as f64
        || r > max as f64
        || (max == i64::MAX && r >= 9.223_372_036_854_776e18)
    {
        return Err(SqlError::out_of_range(format!("{ty} out of range")));
    }
    Ok(r as i64)
}

fn decimal_to_int(d: Decimal, min: i64, max: i64, ty: &str) -> SqlResult<i64> {
    let r = d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    match r.to_i64() {
        Some(v) if v >= min && v <= max => Ok(v),
        _ => Err(SqlError::out_of_range(format!("{ty} out of range"))),
    }
}

fn float_to_decimal(f: f64) -> SqlResult<Decimal> {
    if !f.is_finite() {
        return Err(SqlError::unsupported(
            "numeric does not support NaN or infinity",
        ));
    }
    Decimal::from_f64(f)
        .or_else(|| format_float8(f).parse::<Decimal>().ok())
        .ok_or_else(|| SqlError::out_of_range("value overflows numeric format"))
}

fn parse_float(s: &str, ty: &str) -> SqlResult<f64> {
    let t = s.trim();
    let v = match t.to_ascii_lowercase().as_str() {
        "nan" => f64::NAN,
        "infinity" | "+infinity" | "inf" | "+inf" => f64::INFINITY,
        "-infinity" | "-inf" => f64::NEG_INFINITY,
        _ => {
            if t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            {
                return Err(invalid_input(ty, s));
            }
            t.parse::<f64>().map_err(|_| invalid_input(ty, s))?
        }
    };
    if v.is_infinite() && !t.to_ascii_lowercase().contains("inf") {
        return Err(SqlError::out_of_range(format!(
            "\"{s}\" is out of range for type {ty}"
        )));
    }
    Ok(v)
}

/// Parses a numeric literal, including exponent notation.
pub fn parse_decimal(s: &str) -> SqlResult<Decimal> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return Err(invalid_input("numeric", s));
    }
    if t.contains(['e', 'E']) {
        return Decimal::from_scientific(t).map_err(|_| invalid_input("numeric", s));
    }
    t.parse::<Decimal>().map_err(|e| {
        if e.to_string().contains("too large") || t.len() > 28 {
            SqlError::out_of_range("value overflows numeric format")
        } else {
            invalid_input("numeric", s)
        }
    })
}

fn parse_bool(s: &str) -> SqlResult<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" | "tr" | "tru" | "ye" => Ok(true),
        "f" | "false" | "n" | "no" | "off" | "0" | "fa" | "fal" | "fals" | "of" => Ok(false),
        _ => Err(invalid_input("boolean", s)),
    }
}

fn parse_date(s: &str) -> SqlResult<NaiveDate> {
    let t = s.trim();
    let bad = || {
        SqlError::new(
            code::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type date: \"{s}\""),
        )
    };
    // Accept "YYYY-MM-DD" (and "MM/DD/YYYY", DateStyle MDY) optionally
    // followed by a time part.
    let date_part = t.split([' ', 'T']).next().unwrap_or("");
    if let [m, d, y] = date_part.split('/').collect::<Vec<_>>()[..] {
        let (y, m, d): (i32, u32, u32) = (
            y.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
            d.parse().map_err(|_| bad())?,
        );
        return NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| {
            SqlError::new(
                code::DATETIME_FIELD_OVERFLOW,
                format!("date/time field value out of range: \"{s}\""),
            )
        });
    }
    let mut it = date_part.splitn(3, '-');
    let (y, m, d) = (it.next(), it.next(), it.next());
    let (Some(y), Some(m), Some(d)) = (y, m, d) else {
        return Err(bad());
    };
    let (y, m, d): (i32, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| {
        SqlError::new(
            code::DATETIME_FIELD_OVERFLOW,
            format!("date/time field value out of range: \"{s}\""),
        )
    })
}

/// Parses a timestamp; the offset, if any, is returned separately in seconds.
fn parse_timestamp(s: &str, ty: &str) -> SqlResult<(NaiveDateTime, Option<i32>)> {
    let t = s.trim();
    let bad = || {
        SqlError::new(
            code::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type {ty}: \"{s}\""),
        )
    };
    let lower = t.to_ascii_lowercase();
    if lower == "epoch" {
        return Ok((DateTime::UNIX_EPOCH.naive_utc(), Some(0)));
    }
    let (date_s, rest) = match t.find([' ', 'T']) {
        Some(i) => (&t[..i], t[i + 1..].trim()),
        None => (t, ""),
    };
    let date = parse_date(date_s)?;
    if rest.is_empty() {
        return Ok((date.and_time(NaiveTime::MIN), None));
    }
    // Split off a zone: "+hh[:mm]", "-hh", "Z", " UTC".
    let mut time_s = rest;
    let mut offset = None;
    if let Some(stripped) = rest
        .strip_suffix('Z')
        .or_else(|| rest.strip_suffix(" UTC"))
        .or_else(|| rest.strip_suffix("UTC"))
    {
        time_s = stripped.trim();
        offset = Some(0);
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let zone = &rest[i..];
        time_s = rest[..i].trim();
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let z = &zone[1..];
        let (h, m) = match z.split_once(':') {
            Some((h, m)) => (h, m),
            None if z.len() == 4 => (&z[..2], &z[2..]),
            None => (z, "0"),
        };
        let h: i32 = h.parse().map_err(|_| bad())?;
        let m: i32 = m.parse().map_err(|_| bad())?;
        offset = Some(sign * (h * 3600 + m * 60));
    }
    let Some((h, m, sec, nanos)) = time_fields(time_s) else {
        return Err(bad());
    };
    let out_of_range = || {
        SqlError::new(
            code::DATETIME_FIELD_OVERFLOW,
            format!("date/time field value out of range: \"{s}\""),
        )
    };
    // 24:00:00 is the end of the day, as in PostgreSQL.
    if h == 24 && m == 0 && sec == 0 && nanos == 0 {
        let next = date.succ_opt().ok_or_else(out_of_range)?;
        return Ok((next.and_time(NaiveTime::MIN), offset));
    }
    let time = NaiveTime::from_hms_nano_opt(h, m, sec, nanos).ok_or_else(out_of_range)?;
    Ok((date.and_time(time), offset))
}

/// `hh:mm[:ss[.fraction]]` as (hours, minutes, seconds, nanoseconds);
/// None unless it has that shape (the values are not range-checked).
fn time_fields(s: &str) -> Option<(u32, u32, u32, u32)> {
    let number = |p: &str| {
        (!p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u32>().ok())
            .flatten()
    };
    let mut parts = s.split(':');
    let h = number(parts.next()?)?;
    let m = number(parts.next()?)?;
    let (sec, nanos) = match parts.next() {
        None => (0, 0),
        Some(p) => {
            let (whole, frac) = p.split_once('.').unwrap_or((p, ""));
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Nanoseconds from the first nine digits (PostgreSQL keeps
            // microseconds; the value is rounded where it is stored).
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            (number(whole)?, digits.parse().ok()?)
        }
    };
    if parts.next().is_some() {
        return None;
    }
    Some((h, m, sec, nanos))
}

/// Parses `s` as the text input of type `ty`.
pub fn parse_text(s: &str, ty: DataType) -> SqlResult<Value> {
    Ok(match ty {
        DataType::Bool => Value::Bool(parse_bool(s)?),
        DataType::Int2 => Value::Int(parse_int(s, i16::MIN as i64, i16::MAX as i64, "smallint")?),
        DataType::Int4 => Value::Int(parse_int(s, i32::MIN as i64, i32::MAX as i64, "integer")?),
        DataType::Int8 => Value::Int(parse_int(s, i64::MIN, i64::MAX, "bigint")?),
        DataType::Oid | DataType::RegType | DataType::RegClass => {
            Value::Int(parse_int(s, 0, u32::MAX as i64, "oid")?)
        }
        DataType::Float4 => {
            let v = parse_float(s, "real")?;
            if v.is_finite() && (v as f32).is_infinite() {
                return Err(SqlError::out_of_range(format!(
                    "\"{s}\" is out of range for type real"
                )));
            }
            Value::Float(v as f32 as f64)
        }
        DataType::Float8 => Value::Float(parse_float(s, "double precision")?),
        DataType::Numeric(_) => {
            let lower = s.trim().to_ascii_lowercase();
            if lower == "nan" || lower.contains("inf") {
                return Err(SqlError::unsupported(
                    "numeric NaN and infinity are not supported",
                ));
            }
            coerce_numeric(parse_decimal(s)?, ty)?
        }
        DataType::Text | DataType::Name | DataType::Unknown => Value::Text(s.to_string()),
        DataType::Varchar(_) | DataType::Char(_) => coerce_string(s.to_string(), ty, false)?,
        DataType::Bytea => Value::Bytea(parse_bytea(s)?),
        DataType::Date => Value::Date(parse_date(s)?),
        DataType::Timestamp => Value::Timestamp(parse_timestamp(s, "timestamp")?.0),
        DataType::TimestampTz => {
            let (ts, offset) = parse_timestamp(s, "timestamp with time zone")?;
            let utc = ts - chrono::Duration::seconds(offset.unwrap_or(0) as i64);
            Value::TimestampTz(Utc.from_utc_datetime(&utc))
        }
        DataType::Uuid => {
            let t = s.trim();
            let t = t
                .strip_prefix('{')
                .and_then(|x| x.strip_suffix('}'))
                .unwrap_or(t);
            Value::Uuid(Uuid::parse_str(t).map_err(|_| invalid_input("uuid", s))?)
        }
        DataType::TextArray | DataType::IntArray => Value::Array(parse_array(s, ty)?),
    })
}

fn parse_array(s: &str, ty: DataType) -> SqlResult<Vec<Value>> {
    let t = s.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| invalid_input("array", s))?;
    let elem = if ty == DataType::IntArray {
        DataType::Int8
    } else {
        DataType::Text
    };
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Ok(out);
    }
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = inner.chars();
    let push = |cur: &mut String, quoted: &mut bool, out: &mut Vec<Value>| -> SqlResult<()> {
        let item = if *quoted {
            cur.clone()
        } else {
            cur.trim().to_string()
        };
        if !*quoted && item.eq_ignore_ascii_case("null") {
            out.push(Value::Null);
        } else {
            out.push(parse_text(&item, elem)?);
        }
        cur.clear();
        *quoted = false;
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                quoted = true;
            }
            '\\' if in_quotes => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' if !in_quotes => push(&mut cur, &mut quoted, &mut out)?,
            c => cur.push(c),
        }
    }
    push(&mut cur, &mut quoted, &mut out)?;
    Ok(out)
}

fn parse_bytea(s: &str) -> SqlResult<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x") {
        let hex: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !hex.len().is_multiple_of(2) {
            return Err(invalid_input("bytea", s));
        }
        return hex
            .chunks(2)
            .map(|pair| {
                let digits = std::str::from_utf8(pair).map_err(|_| invalid_input("bytea", s))?;
                u8::from_str_radix(digits, 16).map_err(|_| {
                    let bad = digits
                        .chars()
                        .find(|c| !c.is_ascii_hexdigit())
                        .unwrap_or('?');
                    SqlError::new(
                        code::INVALID_PARAMETER_VALUE,
                        format!("invalid hexadecimal digit: \"{bad}\""),
                    )
                })
            })
            .collect();
    }
    // Escape format: backslash-octal and doubled backslashes.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
            } else if i + 3 < bytes.len()
                && bytes[i + 1..i + 4]
                    .iter()
                    .all(|b| (b'0'..=b'7').contains(b))
            {
                let v = (bytes[i + 1] - b'0') as u32 * 64
                    + (bytes[i + 2] - b'0') as u32 * 8
                    + (bytes[i + 3] - b'0') as u32;
                if v > 255 {
                    return Err(invalid_input("bytea", s));
                }
                out.push(v as u8);
                i += 4;
            } else {
                return Err(invalid_input("bytea", s));
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Applies numeric(p,s): rounds to the scale and checks the precision.
pub fn coerce_numeric(d: Decimal, ty: DataType) -> SqlResult<Value> {
    if let DataType::Numeric(Some((p, s))) = ty {
        let r = d.round_dp_with_strategy(s, RoundingStrategy::MidpointAwayFromZero);
        let mut r = r;
        r.rescale(s);
        let int_digits = r.trunc().abs().to_string().trim_start_matches('0').len() as u32;
        if int_digits > p.saturating_sub(s) {
            return Err(SqlError::out_of_range("numeric field overflow").with_detail(format!(
                "A field with precision {p}, scale {s} must round to an absolute value less than 10^{}.",
                p - s
            )));
        }
        return Ok(Value::Numeric(r));
    }
    Ok(Value::Numeric(d))
}

/// Applies varchar(n)/char(n). An explicit cast truncates; an assignment of a
/// longer value is an error unless the excess is spaces.
pub fn coerce_string(s: String, ty: DataType, explicit: bool) -> SqlResult<Value> {
    match ty {
        DataType::Varchar(Some(n)) | DataType::Char(n) => {
            let n = n as usize;
            let len = s.chars().count();
            let mut s = s;
            if len > n {
                let cut: String = s.chars().take(n).collect();
                if !explicit && s.chars().skip(n).any(|c| c != ' ') {
                    let name = if matches!(ty, DataType::Char(_)) {
                        "character"
                    } else {
                        "character varying"
                    };
                    return Err(SqlError::new(
                        code::STRING_DATA_RIGHT_TRUNCATION,
                        format!("value too long for type {name}({n})"),
                    ));
                }
                s = cut;
            }
            if let DataType::Char(_) = ty {
                let len = s.chars().count();
                s.extend(std::iter::repeat_n(' ', n.saturating_sub(len)));
            }
            Ok(Value::Text(s))
        }
        _ => Ok(Value::Text(s)),
    }
}

/// Converts `v` (of type `from`) to type `to`. `explicit` is true for CAST and
/// `::`, false for assignment to a column.
pub fn cast(v: Value, from: DataType, to: DataType, explicit: bool) -> SqlResult<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if from == to
        && !matches!(
            to,
            DataType::Numeric(Some(_)) | DataType::Varchar(Some(_)) | DataType::Char(_)
        )
    {
        return Ok(v);
    }
    let cannot = || {
        SqlError::new(
            code::CANNOT_COERCE,
            format!("cannot cast type {} to {}", from.sql_name(), to.sql_name()),
        )
    };
    match (v, to) {
        (Value::Text(s), to) if from.is_string() || from == DataType::Unknown => {
            if let DataType::Char(_) = from {
                // char(n) drops its padding when it becomes another type.
                let trimmed = s.trim_end_matches(' ').to_string();
                return if to.is_string() {
                    coerce_string(trimmed, to, explicit)
                } else {
                    parse_text(&trimmed, to)
                };
            }
            if to.is_string() {
                coerce_string(s, to, explicit)
            } else {
                parse_text(&s, to)
            }
        }
        (Value::Bool(b), to) if to.is_string() => {
            coerce_string(if b { "true" } else { "false" }.into(), to, true)
        }
        (v, to) if to.is_string() => {
            let text = v.to_pg_text(from).unwrap_or_default();
            coerce_string(text, to, true)
        }
        (Value::Int(i), to) => match to {
            DataType::Int2 => check_int_range(i, i16::MIN as i64, i16::MAX as i64, "smallint"),
            DataType::Int4 => check_int_range(i, i32::MIN as i64, i32::MAX as i64, "integer"),
            DataType::Int8 => Ok(Value::Int(i)),
            DataType::Oid | DataType::RegClass | DataType::RegType => {
                check_int_range(i, 0, u32::MAX as i64, "oid")
            }
            DataType::Float4 => Ok(Value::Float(i as f32 as f64)),
            DataType::Float8 => Ok(Value::Float(i as f64)),
            DataType::Numeric(_) => coerce_numeric(Decimal::from(i), to),
            DataType::Bool if from == DataType::Int4 => Ok(Value::Bool(i != 0)),
            _ => Err(cannot()),
        },
        (Value::Float(f), to) => match to {
            DataType::Int2 => Ok(Value::Int(float_to_int(
                f,
                i16::MIN as i64,
                i16::MAX as i64,
                "smallint",
            )?)),
            DataType::Int4 => Ok(Value::Int(float_to_int(
                f,
                i32::MIN as i64,
                i32::MAX as i64,
                "integer",
            )?)),
            DataType::Int8 => Ok(Value::Int(float_to_int(f, i64::MIN, i64::MAX, "bigint")?)),
            DataType::Float4 => {
                let g = f as f32;
                if f.is_finite() && g.is_infinite() {
                    return Err(SqlError::out_of_range("value out of range: overflow"));
                }
                Ok(Value::Float(g as f64))
            }
            DataType::Float8 => Ok(Value::Float(f)),
            DataType::Numeric(_) => {
                let d = if from == DataType::Float4 {
                    format_float4(f as f32)
                        .parse::<Decimal>()
                        .map_err(|_| SqlError::out_of_range("value overflows numeric format"))?
                } else {
                    float_to_decimal(f)?
                };
                coerce_numeric(d, to)
            }
            _ => Err(cannot()),
        },
        (Value::Numeric(d), to) => match to {
            DataType::Int2 => Ok(Value::Int(decimal_to_int(
                d,
                i16::MIN as i64,
                i16::MAX as i64,
                "smallint",
            )?)),
            DataType::Int4 => Ok(Value::Int(decimal_to_int(
                d,
                i32::MIN as i64,
                i32::MAX as i64,
                "integer",
            )?)),
            DataType::Int8 => Ok(Value::Int(decimal_to_int(d, i64::MIN, i64::MAX, "bigint")?)),
            DataType::Float4 => Ok(Value::Float(d.to_f32().unwrap_or(f32::NAN) as f64)),
            DataType::Float8 => Ok(Value::Float(d.to_f64().unwrap_or(f64::NAN))),
            DataType::Numeric(_) => coerce_numeric(d, to),
            _ => Err(cannot()),
        },
        (Value::Bool(b), DataType::Int4) => Ok(Value::Int(b as i64)),
        (Value::Date(d), DataType::Timestamp) => Ok(Value::Timestamp(d.and_time(NaiveTime::MIN))),
        (Value::Date(d), DataType::TimestampTz) => Ok(Value::TimestampTz(
            Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)),
        )),
        (Value::Timestamp(t), DataType::Date) => Ok(Value::Date(t.date())),
        (Value::Timestamp(t), DataType::TimestampTz) => {
            Ok(Value::TimestampTz(Utc.from_utc_datetime(&t)))
        }
        (Value::TimestampTz(t), DataType::Timestamp) => Ok(Value::Timestamp(t.naive_utc())),
        (Value::TimestampTz(t), DataType::Date) => Ok(Value::Date(t.naive_utc().date())),
        (v @ Value::Bool(_), DataType::Bool)
        | (v @ Value::Bytea(_), DataType::Bytea)
        | (v @ Value::Uuid(_), DataType::Uuid)
        | (v @ Value::Date(_), DataType::Date)
        | (v @ Value::Timestamp(_), DataType::Timestamp)
        | (v @ Value::TimestampTz(_), DataType::TimestampTz)
        | (v @ Value::Array(_), DataType::TextArray | DataType::IntArray) => Ok(v),
        _ => Err(cannot()),
    }
}

fn check_int_range(i: i64, min: i64, max: i64, ty: &str) -> SqlResult<Value> {
    if i < min || i > max {
        return Err(SqlError::out_of_range(format!("{ty} out of range")));
    }
    Ok(Value::Int(i))
}

/// Can a value of `from` be assigned to a column of `to` without an explicit
/// cast (PostgreSQL's assignment casts)?
pub fn assignable(from: DataType, to: DataType) -> bool {
    if from == DataType::Unknown || from.base() == to.base() {
        return true;
    }
    matches!(
        (from.category(), to.category()),
        ('N', 'N') | (_, 'S') | ('D', 'D')
    )
}

/// Integer range of a type, for arithmetic overflow checks.
pub fn int_range(ty: DataType) -> (i64, i64, &'static str) {
    match ty {
        DataType::Int2 => (i16::MIN as i64, i16::MAX as i64, "smallint"),
        DataType::Int4 => (i32::MIN as i64, i32::MAX as i64, "integer"),
        _ => (i64::MIN, i64::MAX, "bigint"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_output_matches_postgres() {
        assert_eq!(format_float8(0.1), "0.1");
        assert_eq!(format_float8(1e15), "1e+15");
        assert_eq!(format_float8(123456789012345.0), "123456789012345");
        assert_eq!(format_float8(0.0001), "0.0001");
        assert_eq!(format_float8(0.00001), "1e-05");
        assert_eq!(format_float8(-2.5), "-2.5");
        assert_eq!(format_float8(100.0), "100");
        assert_eq!(format_float4(1.1), "1.1");
        assert_eq!(format_float4(1e6), "1e+06");
    }

    #[test]
    fn casts_check_ranges() {
        assert_eq!(
            cast(Value::Int(40000), DataType::Int4, DataType::Int2, true)
                .unwrap_err()
                .code,
            "22003"
        );
        assert_eq!(parse_text("abc", DataType::Int4).unwrap_err().code, "22P02");
        assert_eq!(
            cast(
                Value::Text("12.345".into()),
                DataType::Unknown,
                DataType::Numeric(Some((5, 2))),
                true
            )
            .unwrap()
            .to_pg_text(DataType::Numeric(None))
            .unwrap(),
            "12.35"
        );
        assert_eq!(
            coerce_string("abcd".into(), DataType::Varchar(Some(3)), false)
                .unwrap_err()
                .code,
            "22001"
        );
        assert_eq!(
            coerce_string("ab".into(), DataType::Char(3), false).unwrap(),
            Value::Text("ab ".into())
        );
    }

    #[test]
    fn timestamps_round_trip() {
        let v = parse_text("2024-02-29 13:45:01.25", DataType::Timestamp).unwrap();
        assert_eq!(
            v.to_pg_text(DataType::Timestamp).unwrap(),
            "2024-02-29 13:45:01.25"
        );
        let v = parse_text("2024-02-29 13:45:01+02", DataType::TimestampTz).unwrap();
        assert_eq!(
            v.to_pg_text(DataType::TimestampTz).unwrap(),
            "2024-02-29 11:45:01+00"
        );
        assert_eq!(
            parse_text("2024-02-30", DataType::Date).unwrap_err().code,
            "22008"
        );
    }
}
