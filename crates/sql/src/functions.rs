//! Scalar functions: name resolution with argument coercion, and evaluation.

use chrono::{Datelike, Timelike, Utc};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::error::{code, SqlError, SqlResult};
use crate::exec::Env;
use crate::expr::Expr;
use crate::types::{cast, compare, DataType, Value};

/// A scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Func {
    Abs,
    Round,
    Trunc,
    Ceil,
    Floor,
    Mod,
    Power,
    Sqrt,
    Sign,
    Exp,
    Ln,
    Log10,
    Random,
    Greatest,
    Least,
    Length,
    OctetLength,
    Lower,
    Upper,
    Substring,
    Trim,
    LTrim,
    RTrim,
    Concat,
    ConcatWs,
    Replace,
    Position,
    Left,
    Right,
    Repeat,
    Reverse,
    Lpad,
    Rpad,
    Initcap,
    SplitPart,
    Md5,
    Chr,
    Ascii,
    StartsWith,
    ToHex,
    Coalesce,
    NullIf,
    Now,
    ClockTimestamp,
    CurrentDate,
    Extract,
    DateTrunc,
    Version,
    CurrentDatabase,
    CurrentSchema,
    CurrentUser,
    CurrentSetting,
    SetConfig,
    BackendPid,
    GenRandomUuid,
    NextVal,
    CurrVal,
    SetVal,
    UniqueRowId,
    QuoteIdent,
    // Catalog helpers used by psql and drivers.
    TableIsVisible,
    GetUserById,
    FormatType,
    GetExpr,
    GetIndexDef,
    GetConstraintDef,
    ObjDescription,
    EncodingToChar,
    HasPrivilege,
    GetSerialSequence,
    PartitionAncestors,
    ArrayToString,
    RelationSize,
    SizePretty,
    CurrentSchemas,
    Unnest,
    ArrayLength,
    ToChar,
    DateAddDays,
    DateDiff,
    ArrayElement,
    ArrayUpper,
    NullText,
    False,
}

impl Func {
    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        use Func::*;
        match self {
            Abs => "abs",
            Round => "round",
            Trunc => "trunc",
            Ceil => "ceil",
            Floor => "floor",
            Mod => "mod",
            Power => "power",
            Sqrt => "sqrt",
            Sign => "sign",
            Exp => "exp",
            Ln => "ln",
            Log10 => "log",
            Random => "random",
            Greatest => "greatest",
            Least => "least",
            Length => "length",
            OctetLength => "octet_length",
            Lower => "lower",
            Upper => "upper",
            Substring => "substring",
            Trim => "btrim",
            LTrim => "ltrim",
            RTrim => "rtrim",
            Concat => "concat",
            ConcatWs => "concat_ws",
            Replace => "replace",
            Position => "strpos",
            Left => "left",
            Right => "right",
            Repeat => "repeat",
            Reverse => "reverse",
            Lpad => "lpad",
            Rpad => "rpad",
            Initcap => "initcap",
            SplitPart => "split_part",
            Md5 => "md5",
            Chr => "chr",
            Ascii => "ascii",
            StartsWith => "starts_with",
            ToHex => "to_hex",
            Coalesce => "coalesce",
            NullIf => "nullif",
            Now => "now",
            ClockTimestamp => "clock_timestamp",
            CurrentDate => "current_date",
            Extract => "extract",
            DateTrunc => "date_trunc",
            Version => "version",
            CurrentDatabase => "current_database",
            CurrentSchema => "current_schema",
            CurrentUser => "current_user",
            CurrentSetting => "current_setting",
            SetConfig => "set_config",
            BackendPid => "pg_backend_pid",
            GenRandomUuid => "gen_random_uuid",
            NextVal => "nextval",
            CurrVal => "currval",
            SetVal => "setval",
            UniqueRowId => "unique_rowid",
            QuoteIdent => "quote_ident",
            TableIsVisible => "pg_table_is_visible",
            GetUserById => "pg_get_userbyid",
            FormatType => "format_type",
            GetExpr => "pg_get_expr",
            GetIndexDef => "pg_get_indexdef",
            GetConstraintDef => "pg_get_constraintdef",
            ObjDescription => "obj_description",
            EncodingToChar => "pg_encoding_to_char",
            HasPrivilege => "has_table_privilege",
            GetSerialSequence => "pg_get_serial_sequence",
            PartitionAncestors => "pg_partition_ancestors",
            ArrayToString => "array_to_string",
            RelationSize => "pg_relation_size",
            SizePretty => "pg_size_pretty",
            CurrentSchemas => "current_schemas",
            Unnest => "unnest",
            ArrayLength => "array_length",
            ToChar => "to_char",
            DateAddDays => "date_pli",
            DateDiff => "date_mi",
            ArrayElement => "array_element",
            ArrayUpper => "array_upper",
            NullText => "pg_get_statisticsobjdef_columns",
            False => "pg_relation_is_publishable",
        }
    }

    /// Functions that read the session's settings, which a flow run at a
    /// range's leader does not have.
    pub fn reads_session(self) -> bool {
        matches!(self, Func::CurrentSetting)
    }

    /// Functions whose result changes between calls with the same inputs.
    pub fn is_volatile(self) -> bool {
        matches!(
            self,
            Func::Random
                | Func::NextVal
                | Func::SetVal
                | Func::GenRandomUuid
                | Func::ClockTimestamp
                | Func::UniqueRowId
                | Func::SetConfig
                | Func::CurrVal
        )
    }
}

fn no_function(name: &str, args: &[DataType]) -> SqlError {
    let list: Vec<String> = args.iter().map(|t| t.sql_name()).collect();
    SqlError::new(
        code::UNDEFINED_FUNCTION,
        format!("function {name}({}) does not exist", list.join(", ")),
    )
    .with_detail("No function matches the given name and argument types. You might need to add explicit type casts.")
}

/// Resolves a call: the function, its result type and the type each argument
/// is coerced to.
pub fn resolve(name: &str, args: &[DataType]) -> SqlResult<(Func, DataType, Vec<DataType>)> {
    use DataType as T;
    use Func::*;
    let n = args.len();
    let arity = |lo: usize, hi: usize| -> SqlResult<()> {
        if n < lo || n > hi {
            Err(no_function(name, args))
        } else {
            Ok(())
        }
    };
    let text_args = |k: usize| vec![T::Text; k];
    let numeric_arg = |t: DataType| -> SqlResult<DataType> {
        match t {
            T::Unknown => Ok(T::Float8),
            t if t.is_numeric() => Ok(if matches!(t, T::Oid | T::RegClass | T::RegType) {
                T::Int8
            } else {
                t.base()
            }),
            _ => Err(no_function(name, args)),
        }
    };
    let string_arg = |t: DataType| -> SqlResult<()> {
        if t.is_string() || t == T::Unknown {
            Ok(())
        } else {
            Err(no_function(name, args))
        }
    };
    Ok(match name {
        "abs" => {
            arity(1, 1)?;
            let t = numeric_arg(args[0])?;
            (Abs, t, vec![t])
        }
        "round" | "trunc" => {
            arity(1, 2)?;
            let f = if name == "round" { Round } else { Trunc };
            if n == 2 {
                (f, T::Numeric(None), vec![T::Numeric(None), T::Int4])
            } else {
                let t = numeric_arg(args[0])?;
                let t = if t.is_integer() { T::Float8 } else { t };
                (f, t, vec![t])
            }
        }
        "ceil" | "ceiling" | "floor" => {
            arity(1, 1)?;
            let t = numeric_arg(args[0])?;
            let t = if t.is_integer() || t == T::Float4 {
                T::Float8
            } else {
                t
            };
            (if name == "floor" { Floor } else { Ceil }, t, vec![t])
        }
        "sign" => {
            arity(1, 1)?;
            let t = numeric_arg(args[0])?;
            let t = if t.is_integer() || t == T::Float4 {
                T::Float8
            } else {
                t
            };
            (Sign, t, vec![t])
        }
        "mod" => {
            arity(2, 2)?;
            let t = DataType::promote(numeric_arg(args[0])?, numeric_arg(args[1])?);
            (Mod, t, vec![t, t])
        }
        "power" | "pow" => {
            arity(2, 2)?;
            let t = if matches!(args[0], T::Numeric(_)) || matches!(args[1], T::Numeric(_)) {
                T::Numeric(None)
            } else {
                T::Float8
            };
            (Power, t, vec![t, t])
        }
        "sqrt" | "exp" | "ln" | "log" => {
            arity(1, 1)?;
            let t = if matches!(args[0], T::Numeric(_)) {
                T::Numeric(None)
            } else {
                T::Float8
            };
            let f = match name {
                "sqrt" => Sqrt,
                "exp" => Exp,
                "ln" => Ln,
                _ => Log10,
            };
            (f, t, vec![t])
        }
        "random" => {
            arity(0, 0)?;
            (Random, T::Float8, vec![])
        }
        "greatest" | "least" | "coalesce" => {
            if n == 0 {
                return Err(SqlError::syntax(format!(
                    "syntax error: {name} requires at least one argument"
                )));
            }
            let mut t = T::Unknown;
            for a in args {
                t = DataType::common(t, *a).ok_or_else(|| {
                    SqlError::mismatch(format!(
                        "{} types {} and {} cannot be matched",
                        name.to_uppercase(),
                        t.sql_name(),
                        a.sql_name()
                    ))
                })?;
            }
            if t == T::Unknown {
                t = T::Text;
            }
            let f = match name {
                "greatest" => Greatest,
                "least" => Least,
                _ => Coalesce,
            };
            (f, t, vec![t; n])
        }
        "nullif" => {
            arity(2, 2)?;
            let t = DataType::common(args[0], args[1]).ok_or_else(|| no_function(name, args))?;
            let t = if t == T::Unknown { T::Text } else { t };
            (NullIf, t, vec![t, t])
        }
        "length" | "char_length" | "character_length" => {
            arity(1, 1)?;
            if args[0] == T::Bytea {
                (OctetLength, T::Int4, vec![T::Bytea])
            } else if let T::Char(_) = args[0] {
                // char(n): length ignores the padding.
                (Length, T::Int4, text_args(1))
            } else {
                string_arg(args[0])?;
                (Length, T::Int4, text_args(1))
            }
        }
        "octet_length" => {
            arity(1, 1)?;
            let t = if args[0] == T::Bytea || args[0].is_string() {
                args[0]
            } else {
                T::Text
            };
            (OctetLength, T::Int4, vec![t])
        }
        "lower" | "upper" | "initcap" | "reverse" | "md5" | "quote_ident" => {
            arity(1, 1)?;
            string_arg(args[0])?;
            let f = match name {
                "lower" => Lower,
                "upper" => Upper,
                "initcap" => Initcap,
                "reverse" => Reverse,
                "md5" => Md5,
                _ => QuoteIdent,
            };
            (f, T::Text, text_args(1))
        }
        "substring" | "substr" => {
            arity(2, 3)?;
            string_arg(args[0])?;
            let mut v = vec![T::Text, T::Int4];
            if n == 3 {
                v.push(T::Int4);
            }
            (Substring, T::Text, v)
        }
        "btrim" | "trim" | "ltrim" | "rtrim" => {
            arity(1, 2)?;
            string_arg(args[0])?;
            let f = match name {
                "ltrim" => LTrim,
                "rtrim" => RTrim,
                _ => Trim,
            };
            (f, T::Text, text_args(n))
        }
        "concat" => (
            Concat,
            T::Text,
            args.iter()
                .map(|t| if *t == T::Unknown { T::Text } else { *t })
                .collect(),
        ),
        "concat_ws" => {
            if n == 0 {
                return Err(no_function(name, args));
            }
            let mut v: Vec<DataType> = args
                .iter()
                .map(|t| if *t == T::Unknown { T::Text } else { *t })
                .collect();
            v[0] = T::Text;
            (ConcatWs, T::Text, v)
        }
        "replace" => {
            arity(3, 3)?;
            (Replace, T::Text, text_args(3))
        }
        "strpos" | "position" => {
            arity(2, 2)?;
            (Position, T::Int4, text_args(2))
        }
        "left" | "right" => {
            arity(2, 2)?;
            (
                if name == "left" { Left } else { Right },
                T::Text,
                vec![T::Text, T::Int4],
            )
        }
        "repeat" => {
            arity(2, 2)?;
            (Repeat, T::Text, vec![T::Text, T::Int4])
        }
        "lpad" | "rpad" => {
            arity(2, 3)?;
            let mut v = vec![T::Text, T::Int4];
            if n == 3 {
                v.push(T::Text);
            }
            (if name == "lpad" { Lpad } else { Rpad }, T::Text, v)
        }
        "split_part" => {
            arity(3, 3)?;
            (SplitPart, T::Text, vec![T::Text, T::Text, T::Int4])
        }
        "chr" => {
            arity(1, 1)?;
            (Chr, T::Text, vec![T::Int4])
        }
        "ascii" => {
            arity(1, 1)?;
            (Ascii, T::Int4, text_args(1))
        }
        "starts_with" => {
            arity(2, 2)?;
            (StartsWith, T::Bool, text_args(2))
        }
        "to_hex" => {
            arity(1, 1)?;
            (ToHex, T::Text, vec![T::Int8])
        }
        "now"
        | "current_timestamp"
        | "transaction_timestamp"
        | "statement_timestamp"
        | "localtimestamp" => {
            arity(0, 0)?;
            (
                Now,
                if name == "localtimestamp" {
                    T::Timestamp
                } else {
                    T::TimestampTz
                },
                vec![],
            )
        }
        "clock_timestamp" => {
            arity(0, 0)?;
            (ClockTimestamp, T::TimestampTz, vec![])
        }
        "current_date" => {
            arity(0, 0)?;
            (CurrentDate, T::Date, vec![])
        }
        "date_part" => {
            arity(2, 2)?;
            let t = if args[1] == T::Unknown {
                T::Timestamp
            } else {
                args[1]
            };
            (Extract, T::Float8, vec![T::Text, t])
        }
        "date_trunc" => {
            arity(2, 2)?;
            let t = if args[1] == T::Unknown {
                T::Timestamp
            } else {
                args[1]
            };
            (DateTrunc, t, vec![T::Text, t])
        }
        "version" => {
            arity(0, 0)?;
            (Version, T::Text, vec![])
        }
        "current_database" | "current_catalog" => {
            arity(0, 0)?;
            (CurrentDatabase, T::Name, vec![])
        }
        "current_schema" => {
            arity(0, 0)?;
            (CurrentSchema, T::Name, vec![])
        }
        "current_user" | "session_user" | "user" | "current_role" => {
            arity(0, 0)?;
            (CurrentUser, T::Name, vec![])
        }
        "current_setting" => {
            arity(1, 2)?;
            let mut v = vec![T::Text];
            if n == 2 {
                v.push(T::Bool);
            }
            (CurrentSetting, T::Text, v)
        }
        "set_config" => {
            arity(3, 3)?;
            (SetConfig, T::Text, vec![T::Text, T::Text, T::Bool])
        }
        "pg_backend_pid" => {
            arity(0, 0)?;
            (BackendPid, T::Int4, vec![])
        }
        "gen_random_uuid" | "uuid_generate_v4" => {
            arity(0, 0)?;
            (GenRandomUuid, T::Uuid, vec![])
        }
        "nextval" | "currval" => {
            arity(1, 1)?;
            (
                if name == "nextval" { NextVal } else { CurrVal },
                T::Int8,
                vec![T::Text],
            )
        }
        "setval" => {
            arity(2, 3)?;
            let mut v = vec![T::Text, T::Int8];
            if n == 3 {
                v.push(T::Bool);
            }
            (SetVal, T::Int8, v)
        }
        "unique_rowid" => {
            arity(0, 0)?;
            (UniqueRowId, T::Int8, vec![])
        }
        "pg_table_is_visible" | "pg_type_is_visible" | "pg_function_is_visible" => {
            arity(1, 1)?;
            (TableIsVisible, T::Bool, vec![T::Oid])
        }
        "pg_get_userbyid" => {
            arity(1, 1)?;
            (GetUserById, T::Name, vec![T::Oid])
        }
        "format_type" => {
            arity(2, 2)?;
            (FormatType, T::Text, vec![T::Oid, T::Int4])
        }
        "pg_get_expr" => {
            arity(2, 3)?;
            let mut v = vec![T::Text, T::Oid];
            if n == 3 {
                v.push(T::Bool);
            }
            (GetExpr, T::Text, v)
        }
        "pg_get_indexdef" => {
            arity(1, 3)?;
            let mut v = vec![T::Oid];
            if n >= 2 {
                v.push(T::Int4);
            }
            if n == 3 {
                v.push(T::Bool);
            }
            (GetIndexDef, T::Text, v)
        }
        "pg_get_constraintdef" => {
            arity(1, 2)?;
            let mut v = vec![T::Oid];
            if n == 2 {
                v.push(T::Bool);
            }
            (GetConstraintDef, T::Text, v)
        }
        "obj_description" | "col_description" | "shobj_description" => {
            arity(1, 2)?;
            let mut v = vec![T::Oid];
            if n == 2 {
                v.push(if name == "col_description" {
                    T::Int4
                } else {
                    T::Text
                });
            }
            (ObjDescription, T::Text, v)
        }
        "pg_encoding_to_char" => {
            arity(1, 1)?;
            (EncodingToChar, T::Name, vec![T::Int4])
        }
        "has_table_privilege"
        | "has_schema_privilege"
        | "has_database_privilege"
        | "has_column_privilege" => (
            HasPrivilege,
            T::Bool,
            args.iter()
                .map(|t| if *t == T::Unknown { T::Text } else { *t })
                .collect(),
        ),
        "pg_get_serial_sequence" => {
            arity(2, 2)?;
            (GetSerialSequence, T::Text, text_args(2))
        }
        // A set-returning function in PostgreSQL; with no partitioned
        // tables, its one row is the relation itself (see the binder's
        // table function of the same name).
        "pg_partition_ancestors" => {
            arity(1, 1)?;
            (PartitionAncestors, T::RegClass, vec![T::RegClass])
        }
        "array_to_string" => {
            arity(2, 3)?;
            let a = if args[0] == T::Unknown {
                T::TextArray
            } else {
                args[0]
            };
            let mut v = vec![a, T::Text];
            if n == 3 {
                v.push(T::Text);
            }
            (ArrayToString, T::Text, v)
        }
        "array_length" => {
            arity(2, 2)?;
            (ArrayLength, T::Int4, vec![args[0], T::Int4])
        }
        "pg_relation_size" | "pg_total_relation_size" | "pg_table_size" | "pg_indexes_size" => {
            arity(1, 2)?;
            (
                RelationSize,
                T::Int8,
                args.iter()
                    .map(|t| if *t == T::Unknown { T::Text } else { *t })
                    .collect(),
            )
        }
        "pg_size_pretty" => {
            arity(1, 1)?;
            (SizePretty, T::Text, vec![T::Int8])
        }
        "current_schemas" => {
            arity(1, 1)?;
            (CurrentSchemas, T::TextArray, vec![T::Bool])
        }
        "array_element" => {
            arity(2, 2)?;
            let elem = if args[0] == T::IntArray {
                T::Int8
            } else {
                T::Text
            };
            (ArrayElement, elem, vec![args[0], T::Int4])
        }
        "array_upper" | "array_lower" => {
            arity(2, 2)?;
            (
                if name == "array_upper" {
                    ArrayUpper
                } else {
                    ArrayLength
                },
                T::Int4,
                vec![args[0], T::Int4],
            )
        }
        "pg_get_statisticsobjdef_columns"
        | "pg_get_triggerdef"
        | "pg_get_viewdef"
        | "pg_get_functiondef" => (NullText, T::Text, args.to_vec()),
        "pg_relation_is_publishable" => (False, T::Bool, args.to_vec()),
        "to_char" => {
            arity(1, 2)?;
            (
                ToChar,
                T::Text,
                args.iter()
                    .map(|t| if *t == T::Unknown { T::Text } else { *t })
                    .collect(),
            )
        }
        _ => return Err(no_function(name, args)),
    })
}

fn text(v: &Value) -> Option<&str> {
    v.as_str()
}

fn bad_arg(msg: impl Into<String>) -> SqlError {
    SqlError::new(code::INVALID_PARAMETER_VALUE, msg)
}

fn decimal_to_value(d: Option<Decimal>) -> SqlResult<Value> {
    d.map(Value::Numeric)
        .ok_or_else(|| SqlError::out_of_range("value overflows numeric format"))
}

/// Calls `func`. Arguments are expressions so that COALESCE can stop early.
pub fn call(
    func: Func,
    arg_exprs: &[Expr],
    ty: DataType,
    row: &[Value],
    env: &Env,
) -> SqlResult<Value> {
    use Func::*;
    if func == Coalesce {
        for e in arg_exprs {
            let v = e.eval(row, env)?;
            if !v.is_null() {
                return Ok(v);
            }
        }
        return Ok(Value::Null);
    }
    let args: Vec<Value> = arg_exprs
        .iter()
        .map(|e| e.eval(row, env))
        .collect::<SqlResult<_>>()?;
    // Strict functions return NULL on any NULL argument.
    let strict = !matches!(
        func,
        Concat
            | ConcatWs
            | Greatest
            | Least
            | NullIf
            | CurrentSetting
            | SetConfig
            | ObjDescription
            | HasPrivilege
            | GetExpr
            | FormatType
            | ArrayToString
    );
    if strict && args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    let ctx = env.ctx;
    Ok(match func {
        Abs => match &args[0] {
            Value::Int(i) => {
                let (_, max, name) = crate::types::int_range(ty);
                match i.checked_abs() {
                    Some(a) if a <= max => Value::Int(a),
                    _ => return Err(SqlError::out_of_range(format!("{name} out of range"))),
                }
            }
            Value::Float(f) => Value::Float(f.abs()),
            Value::Numeric(d) => Value::Numeric(d.abs()),
            _ => Value::Null,
        },
        Round | Trunc => {
            let strategy = if func == Round {
                RoundingStrategy::MidpointAwayFromZero
            } else {
                RoundingStrategy::ToZero
            };
            match (&args[0], args.get(1)) {
                (Value::Float(f), None) => Value::Float(if func == Round {
                    f.round_ties_even()
                } else {
                    f.trunc()
                }),
                (v, digits) => {
                    let d = v.as_decimal()?;
                    let places = match digits {
                        Some(p) => p.as_i64()?,
                        None => 0,
                    };
                    if places >= 0 {
                        let mut r = d.round_dp_with_strategy(places.min(28) as u32, strategy);
                        r.rescale(places.min(28) as u32);
                        Value::Numeric(r)
                    } else {
                        let factor =
                            Decimal::from_i128_with_scale(10i128.pow((-places).min(27) as u32), 0);
                        let r = (d / factor).round_dp_with_strategy(0, strategy) * factor;
                        Value::Numeric(r.trunc())
                    }
                }
            }
        }
        Ceil | Floor => match &args[0] {
            Value::Float(f) => Value::Float(if func == Ceil { f.ceil() } else { f.floor() }),
            v => {
                let d = v.as_decimal()?;
                Value::Numeric(if func == Ceil { d.ceil() } else { d.floor() })
            }
        },
        Sign => match &args[0] {
            Value::Float(f) => Value::Float(if *f > 0.0 {
                1.0
            } else if *f < 0.0 {
                -1.0
            } else {
                0.0
            }),
            v => {
                let d = v.as_decimal()?;
                Value::Numeric(if d.is_zero() {
                    Decimal::ZERO
                } else if d.is_sign_negative() {
                    Decimal::NEGATIVE_ONE
                } else {
                    Decimal::ONE
                })
            }
        },
        Mod => crate::expr::arith(
            crate::expr::ArithOp::Mod,
            args[0].clone(),
            args[1].clone(),
            ty,
        )?,
        Power => crate::expr::arith(
            crate::expr::ArithOp::Pow,
            args[0].clone(),
            args[1].clone(),
            ty,
        )?,
        Sqrt | Exp | Ln | Log10 => {
            let x = args[0].as_f64()?;
            let r = match func {
                Sqrt => {
                    if x < 0.0 {
                        return Err(SqlError::new(
                            "2201F",
                            "cannot take square root of a negative number",
                        ));
                    }
                    x.sqrt()
                }
                Exp => x.exp(),
                Ln | Log10 => {
                    if x == 0.0 {
                        return Err(SqlError::new("2201E", "cannot take logarithm of zero"));
                    }
                    if x < 0.0 {
                        return Err(SqlError::new(
                            "2201E",
                            "cannot take logarithm of a negative number",
                        ));
                    }
                    if func == Ln {
                        x.ln()
                    } else {
                        x.log10()
                    }
                }
                _ => unreachable!("covered above"),
            };
            if matches!(ty, DataType::Numeric(_)) {
                decimal_to_value(Decimal::from_f64(r).map(|d| d.round_dp(16)))?
            } else {
                Value::Float(r)
            }
        }
        Random => Value::Float(ctx.random()),
        Greatest | Least => {
            let mut best = Value::Null;
            for v in args {
                if v.is_null() {
                    continue;
                }
                let better = best.is_null() || {
                    let o = compare(&v, &best);
                    if func == Greatest {
                        o == std::cmp::Ordering::Greater
                    } else {
                        o == std::cmp::Ordering::Less
                    }
                };
                if better {
                    best = v;
                }
            }
            best
        }
        NullIf => {
            if !args[0].is_null()
                && !args[1].is_null()
                && compare(&args[0], &args[1]) == std::cmp::Ordering::Equal
            {
                Value::Null
            } else {
                args[0].clone()
            }
        }
        Length => Value::Int(text(&args[0]).map(|s| s.chars().count()).unwrap_or(0) as i64),
        OctetLength => Value::Int(match &args[0] {
            Value::Bytea(b) => b.len(),
            Value::Text(s) => s.len(),
            _ => 0,
        } as i64),
        Lower => Value::Text(text(&args[0]).unwrap_or("").to_lowercase()),
        Upper => Value::Text(text(&args[0]).unwrap_or("").to_uppercase()),
        Initcap => {
            let mut out = String::new();
            let mut start = true;
            for c in text(&args[0]).unwrap_or("").chars() {
                if c.is_alphanumeric() {
                    if start {
                        out.extend(c.to_uppercase());
                    } else {
                        out.extend(c.to_lowercase());
                    }
                    start = false;
                } else {
                    out.push(c);
                    start = true;
                }
            }
            Value::Text(out)
        }
        Reverse => Value::Text(text(&args[0]).unwrap_or("").chars().rev().collect()),
        Md5 => Value::Text(md5_hex(text(&args[0]).unwrap_or("").as_bytes())),
        QuoteIdent => Value::Text(quote_ident(text(&args[0]).unwrap_or(""))),
        Substring => {
            let s: Vec<char> = text(&args[0]).unwrap_or("").chars().collect();
            let start = args[1].as_i64()?;
            let (from, to) = match args.get(2) {
                Some(len) => {
                    let len = len.as_i64()?;
                    if len < 0 {
                        return Err(SqlError::new(
                            "22011",
                            "negative substring length not allowed",
                        ));
                    }
                    (start, start.saturating_add(len))
                }
                None => (start, i64::MAX),
            };
            let from = (from.max(1) - 1) as usize;
            let to = (to.max(1) - 1).min(s.len() as i64) as usize;
            Value::Text(if from >= to || from >= s.len() {
                String::new()
            } else {
                s[from..to].iter().collect()
            })
        }
        Trim | LTrim | RTrim => {
            let s = text(&args[0]).unwrap_or("");
            let chars: Vec<char> = match args.get(1) {
                Some(v) => text(v).unwrap_or("").chars().collect(),
                None => vec![' '],
            };
            let pred = |c: char| chars.contains(&c);
            Value::Text(match func {
                LTrim => s.trim_start_matches(pred).to_string(),
                RTrim => s.trim_end_matches(pred).to_string(),
                _ => s.trim_matches(pred).to_string(),
            })
        }
        Concat => {
            let mut out = String::new();
            for (v, e) in args.iter().zip(arg_exprs) {
                if let Some(s) = v.to_pg_text(expr_type_hint(e)) {
                    out.push_str(&s);
                }
            }
            Value::Text(out)
        }
        ConcatWs => {
            let Some(sep) = args[0].to_pg_text(DataType::Text) else {
                return Ok(Value::Null);
            };
            let parts: Vec<String> = args[1..]
                .iter()
                .filter_map(|v| v.to_pg_text(DataType::Float8))
                .collect();
            Value::Text(parts.join(&sep))
        }
        Replace => {
            let (s, from, to) = (
                text(&args[0]).unwrap_or(""),
                text(&args[1]).unwrap_or(""),
                text(&args[2]).unwrap_or(""),
            );
            Value::Text(if from.is_empty() {
                s.to_string()
            } else {
                s.replace(from, to)
            })
        }
        Position => {
            let (s, sub) = (text(&args[0]).unwrap_or(""), text(&args[1]).unwrap_or(""));
            Value::Int(match s.find(sub) {
                Some(i) => s[..i].chars().count() as i64 + 1,
                None => 0,
            })
        }
        Left | Right => {
            let s: Vec<char> = text(&args[0]).unwrap_or("").chars().collect();
            let n = args[1].as_i64()?;
            let len = s.len() as i64;
            let take = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
            Value::Text(if func == Left {
                s[..take].iter().collect()
            } else {
                s[s.len() - take..].iter().collect()
            })
        }
        Repeat => {
            let n = args[1].as_i64()?.max(0) as usize;
            let s = text(&args[0]).unwrap_or("");
            if s.len().saturating_mul(n) > 64 << 20 {
                return Err(SqlError::new(
                    code::PROGRAM_LIMIT_EXCEEDED,
                    "requested length too large",
                ));
            }
            Value::Text(s.repeat(n))
        }
        Lpad | Rpad => {
            let s: Vec<char> = text(&args[0]).unwrap_or("").chars().collect();
            let n = args[1].as_i64()?.max(0) as usize;
            if n > 10 << 20 {
                return Err(SqlError::new(
                    code::PROGRAM_LIMIT_EXCEEDED,
                    "requested length too large",
                ));
            }
            let fill: Vec<char> = match args.get(2) {
                Some(f) => text(f).unwrap_or("").chars().collect(),
                None => vec![' '],
            };
            if s.len() >= n || fill.is_empty() {
                Value::Text(s[..n.min(s.len())].iter().collect())
            } else {
                let pad: String = fill.iter().cycle().take(n - s.len()).collect();
                let s: String = s.iter().collect();
                Value::Text(if func == Lpad { pad + &s } else { s + &pad })
            }
        }
        SplitPart => {
            let (s, delim) = (text(&args[0]).unwrap_or(""), text(&args[1]).unwrap_or(""));
            let n = args[2].as_i64()?;
            if n == 0 {
                return Err(bad_arg("field position must not be zero"));
            }
            let parts: Vec<&str> = if delim.is_empty() {
                vec![s]
            } else {
                s.split(delim).collect()
            };
            let idx = if n > 0 { n - 1 } else { parts.len() as i64 + n };
            Value::Text(
                parts
                    .get(idx.max(-1) as usize)
                    .filter(|_| idx >= 0)
                    .unwrap_or(&"")
                    .to_string(),
            )
        }
        Chr => {
            let c = args[0].as_i64()?;
            match u32::try_from(c).ok().and_then(char::from_u32) {
                Some(ch) if c != 0 => Value::Text(ch.to_string()),
                _ => {
                    return Err(bad_arg(format!(
                        "requested character not valid for encoding: {c}"
                    )))
                }
            }
        }
        Ascii => Value::Int(
            text(&args[0])
                .and_then(|s| s.chars().next())
                .map(|c| c as i64)
                .unwrap_or(0),
        ),
        StartsWith => Value::Bool(
            text(&args[0])
                .unwrap_or("")
                .starts_with(text(&args[1]).unwrap_or("")),
        ),
        ToHex => Value::Text(format!("{:x}", args[0].as_i64()?)),
        Now => match ty {
            DataType::Timestamp => Value::Timestamp(ctx.now.naive_utc()),
            _ => Value::TimestampTz(ctx.now),
        },
        ClockTimestamp => Value::TimestampTz(Utc::now()),
        CurrentDate => Value::Date(ctx.now.date_naive()),
        Extract => {
            let field = text(&args[0]).unwrap_or("").to_ascii_lowercase();
            let ts = match &args[1] {
                Value::Timestamp(t) => *t,
                Value::TimestampTz(t) => t.naive_utc(),
                Value::Date(d) => d.and_hms_opt(0, 0, 0).expect("midnight"),
                _ => return Err(bad_arg("extract needs a date or timestamp")),
            };
            let v = match field.as_str() {
                "year" => ts.year() as f64,
                "month" => ts.month() as f64,
                "day" => ts.day() as f64,
                "hour" => ts.hour() as f64,
                "minute" => ts.minute() as f64,
                "second" => ts.second() as f64 + ts.nanosecond() as f64 / 1e9,
                "dow" => ts.weekday().num_days_from_sunday() as f64,
                "doy" => ts.ordinal() as f64,
                "epoch" => ts.and_utc().timestamp_micros() as f64 / 1e6,
                "quarter" => ((ts.month() - 1) / 3 + 1) as f64,
                "week" => ts.iso_week().week() as f64,
                _ => {
                    return Err(SqlError::new(
                        code::FEATURE_NOT_SUPPORTED,
                        format!("unit \"{field}\" not supported for type timestamp"),
                    ))
                }
            };
            Value::Float(v)
        }
        DateTrunc => {
            let field = text(&args[0]).unwrap_or("").to_ascii_lowercase();
            let (ts, tz) = match &args[1] {
                Value::Timestamp(t) => (*t, false),
                Value::TimestampTz(t) => (t.naive_utc(), true),
                Value::Date(d) => (d.and_hms_opt(0, 0, 0).expect("midnight"), false),
                _ => return Err(bad_arg("date_trunc needs a timestamp")),
            };
            let d = ts.date();
            let t = match field.as_str() {
                "year" => d
                    .with_month(1)
                    .and_then(|d| d.with_day(1))
                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight")),
                "month" => d
                    .with_day(1)
                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight")),
                "day" => d.and_hms_opt(0, 0, 0),
                "hour" => d.and_hms_opt(ts.hour(), 0, 0),
                "minute" => d.and_hms_opt(ts.hour(), ts.minute(), 0),
                "second" => d.and_hms_opt(ts.hour(), ts.minute(), ts.second()),
                _ => {
                    return Err(SqlError::new(
                        code::FEATURE_NOT_SUPPORTED,
                        format!("unit \"{field}\" not recognized for type timestamp"),
                    ))
                }
            }
            .ok_or_else(|| bad_arg("date_trunc out of range"))?;
            if tz {
                Value::TimestampTz(t.and_utc())
            } else {
                Value::Timestamp(t)
            }
        }
        Version => Value::Text(format!(
            "PostgreSQL {} on x86_64-pc-linux-gnu, compiled by rustc (Tessera {}), 64-bit",
            crate::vars::SERVER_VERSION,
            env!("CARGO_PKG_VERSION")
        )),
        CurrentDatabase => Value::Text(ctx.database.to_string()),
        CurrentSchema => Value::Text("public".into()),
        CurrentUser => Value::Text(ctx.user.to_string()),
        CurrentSetting => {
            let name = text(&args[0]).unwrap_or("");
            let missing_ok = matches!(args.get(1), Some(Value::Bool(true)));
            match ctx.setting(name) {
                Some(v) => Value::Text(v),
                None if missing_ok => Value::Null,
                None => {
                    return Err(SqlError::new(
                        code::UNDEFINED_OBJECT,
                        format!("unrecognized configuration parameter \"{name}\""),
                    ))
                }
            }
        }
        SetConfig => {
            let name = text(&args[0]).unwrap_or("").to_string();
            let value = args[1].to_pg_text(DataType::Text).unwrap_or_default();
            ctx.defer_set(name, value.clone());
            Value::Text(value)
        }
        BackendPid => Value::Int(std::process::id() as i64),
        GenRandomUuid => Value::Uuid(uuid::Uuid::new_v4()),
        NextVal | CurrVal | SetVal => {
            let name = text(&args[0]).unwrap_or("");
            let seq = ctx.sequence(name)?;
            match func {
                NextVal => {
                    let v = ctx.engine.catalog.next_value(&seq)?;
                    ctx.note_sequence_value(seq.oid, v);
                    Value::Int(v)
                }
                CurrVal => Value::Int(ctx.current_sequence_value(&seq)?),
                _ => {
                    let v = args[1].as_i64()?;
                    let called = !matches!(args.get(2), Some(Value::Bool(false)));
                    let stored = if called { v } else { v - seq.increment };
                    ctx.engine.catalog.set_value(&seq, stored)?;
                    if called {
                        ctx.note_sequence_value(seq.oid, v);
                    }
                    Value::Int(v)
                }
            }
        }
        UniqueRowId => Value::Int(ctx.engine.unique_rowid()),
        TableIsVisible => Value::Bool(true),
        GetUserById => Value::Text(ctx.user.to_string()),
        FormatType => match &args[0] {
            Value::Null => Value::Null,
            v => {
                let oid = v.as_i64()? as u32;
                match args.get(1) {
                    Some(Value::Int(m)) => Value::Text(format_type(oid, *m as i32)),
                    // Without a modifier, bpchar is just "character".
                    _ if oid == 1042 => Value::Text("character".into()),
                    _ => Value::Text(format_type(oid, -1)),
                }
            }
        },
        GetExpr => match &args[0] {
            Value::Text(s) => Value::Text(s.clone()),
            _ => Value::Null,
        },
        GetIndexDef => crate::pg_catalog::index_def(env, args[0].as_i64()? as u32)?,
        GetConstraintDef => crate::pg_catalog::constraint_def(env, args[0].as_i64()? as u32)?,
        ObjDescription => Value::Null,
        EncodingToChar => Value::Text(
            if args[0].as_i64()? == 6 {
                "UTF8"
            } else {
                "SQL_ASCII"
            }
            .into(),
        ),
        HasPrivilege => Value::Bool(true),
        PartitionAncestors => args[0].clone(),
        GetSerialSequence => {
            let table = text(&args[0]).unwrap_or("");
            let column = text(&args[1]).unwrap_or("");
            crate::pg_catalog::serial_sequence(env, table, column)?
        }
        ArrayToString => match &args[0] {
            Value::Array(items) => {
                let sep = text(&args[1]).unwrap_or("");
                let null = args.get(2).and_then(|v| v.as_str());
                let parts: Vec<String> = items
                    .iter()
                    .filter_map(|v| {
                        v.to_pg_text(DataType::Text)
                            .or_else(|| null.map(str::to_string))
                    })
                    .collect();
                Value::Text(parts.join(sep))
            }
            _ => Value::Null,
        },
        ArrayLength => match &args[0] {
            Value::Array(items) if args[1].as_i64()? == 1 && !items.is_empty() => {
                Value::Int(items.len() as i64)
            }
            _ => Value::Null,
        },
        RelationSize => Value::Int(0),
        SizePretty => Value::Text(format!("{} bytes", args[0].as_i64()?)),
        CurrentSchemas => Value::Array(vec![
            Value::Text("pg_catalog".into()),
            Value::Text("public".into()),
        ]),
        Unnest => return Err(SqlError::unsupported("unnest is only supported in FROM")),
        Coalesce => unreachable!("COALESCE returns before evaluating its arguments"),
        ToChar => Value::Text(args[0].to_pg_text(DataType::Float8).unwrap_or_default()),
        ArrayElement => match &args[0] {
            Value::Array(items) => {
                let k = args[1].as_i64()?;
                if k >= 1 {
                    items.get(k as usize - 1).cloned().unwrap_or(Value::Null)
                } else {
                    Value::Null
                }
            }
            _ => Value::Null,
        },
        ArrayUpper => match &args[0] {
            Value::Array(items) if args[1].as_i64()? == 1 && !items.is_empty() => {
                Value::Int(items.len() as i64)
            }
            _ => Value::Null,
        },
        NullText => Value::Null,
        False => Value::Bool(false),
        DateAddDays => match &args[0] {
            Value::Date(d) => d
                .checked_add_signed(chrono::Duration::days(args[1].as_i64()?))
                .map(Value::Date)
                .ok_or_else(|| SqlError::new(code::DATETIME_FIELD_OVERFLOW, "date out of range"))?,
            _ => Value::Null,
        },
        DateDiff => match (&args[0], &args[1]) {
            (Value::Date(a), Value::Date(b)) => Value::Int((*a - *b).num_days()),
            _ => Value::Null,
        },
    })
}

fn expr_type_hint(_e: &Expr) -> DataType {
    DataType::Float8
}

/// Quotes an identifier when it needs quotes.
pub fn quote_ident(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// format_type(oid, typmod).
pub fn format_type(oid: u32, typmod: i32) -> String {
    match DataType::from_oid(oid) {
        Some(DataType::Numeric(_)) if typmod >= 4 => {
            let m = (typmod - 4) as u32;
            format!("numeric({},{})", m >> 16, m & 0xffff)
        }
        Some(DataType::Varchar(_)) if typmod >= 4 => format!("character varying({})", typmod - 4),
        Some(DataType::Char(_)) => {
            format!("character({})", if typmod >= 4 { typmod - 4 } else { 1 })
        }
        Some(t) => t.sql_name(),
        None => "???".into(),
    }
}

/// MD5 as lower-case hex (RFC 1321), for md5().
pub fn md5_hex(data: &[u8]) -> String {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
        .collect();
    let (mut a0, mut b0, mut c0, mut d0) =
        (0x67452301u32, 0xefcdab89u32, 0x98badcfeu32, 0x10325476u32);
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    [a0, b0, c0, d0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Applies `cast` to an argument if its type differs from the target.
pub fn coerce_arg(e: Expr, from: DataType, to: DataType) -> Expr {
    if from == to || (from.base() == to.base() && !matches!(to, DataType::Numeric(Some(_)))) {
        return e;
    }
    if let Expr::Const(v) = &e {
        if let Ok(c) = cast(v.clone(), from, to, true) {
            return Expr::Const(c);
        }
    }
    Expr::Cast {
        expr: Box::new(e),
        from,
        to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_known_values() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn format_type_names() {
        assert_eq!(format_type(1700, ((10 << 16) | 2) + 4), "numeric(10,2)");
        assert_eq!(format_type(1043, 14), "character varying(10)");
    }
}
