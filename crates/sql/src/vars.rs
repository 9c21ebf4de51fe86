//! Session variables: SET, SHOW, RESET and what ParameterStatus reports.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::{code, SqlError, SqlResult};

/// The version string drivers parse: PostgreSQL-compatible first.
pub const SERVER_VERSION: &str = "15.4";
/// server_version_num for the same version.
pub const SERVER_VERSION_NUM: &str = "150004";

/// Variables the server reports to the client when they change.
const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "integer_datetimes",
    "IntervalStyle",
    "is_superuser",
    "server_encoding",
    "server_version",
    "session_authorization",
    "standard_conforming_strings",
    "TimeZone",
];

/// A session's variables. Names are case-insensitive; the canonical spelling
/// is kept for SHOW and ParameterStatus.
pub struct Vars {
    values: BTreeMap<String, (String, String)>,
    /// How many times a variable was set (see [`Vars::changes`]).
    changes: u64,
    database: String,
    /// When the current statement started, for statement_timeout.
    pub(crate) statement_start: Option<Instant>,
}

fn defaults(database: &str, user: &str) -> Vec<(&'static str, String)> {
    vec![
        ("application_name", String::new()),
        ("client_encoding", "UTF8".into()),
        ("DateStyle", "ISO, MDY".into()),
        ("default_transaction_isolation", "read committed".into()),
        ("extra_float_digits", "1".into()),
        ("integer_datetimes", "on".into()),
        ("IntervalStyle", "postgres".into()),
        ("is_superuser", "on".into()),
        ("search_path", "\"$user\", public".into()),
        ("server_encoding", "UTF8".into()),
        ("server_version", SERVER_VERSION.into()),
        ("server_version_num", SERVER_VERSION_NUM.into()),
        ("session_authorization", user.into()),
        ("standard_conforming_strings", "on".into()),
        ("statement_timeout", "0".into()),
        ("lock_timeout", "0".into()),
        ("idle_in_transaction_session_timeout", "0".into()),
        ("TimeZone", "UTC".into()),
        ("transaction_isolation", "read committed".into()),
        ("default_transaction_read_only", "off".into()),
        ("transaction_read_only", "off".into()),
        ("max_identifier_length", "63".into()),
        ("bytea_output", "hex".into()),
        ("client_min_messages", "notice".into()),
        ("row_security", "on".into()),
        ("synchronous_commit", "on".into()),
        ("enable_seqscan", "on".into()),
        // Tessera's own: scans run their filters, projections and partial
        // aggregates at the ranges' leaders (the name CockroachDB uses).
        ("distsql", "on".into()),
        ("current_user", user.into()),
        ("database", database.into()),
    ]
}

impl Vars {
    /// Defaults for a session of `user` on `database`.
    pub fn new(database: &str, user: &str) -> Self {
        let mut values = BTreeMap::new();
        for (name, value) in defaults(database, user) {
            values.insert(name.to_ascii_lowercase(), (name.to_string(), value));
        }
        Self {
            values,
            changes: 0,
            database: database.to_string(),
            statement_start: None,
        }
    }

    /// The current database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The session user.
    pub fn user(&self) -> String {
        self.get("session_authorization").unwrap_or_default()
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(|(_, v)| v.clone())
    }

    /// Every variable, for SHOW ALL.
    pub fn all(&self) -> Vec<(String, String)> {
        self.values
            .values()
            .filter(|(n, _)| n != "database" && n != "current_user")
            .cloned()
            .collect()
    }

    /// SET name = value. Returns the canonical name if it is reported to the
    /// client (so the frontend sends ParameterStatus).
    pub fn set(&mut self, name: &str, value: &str) -> SqlResult<Option<String>> {
        let key = name.to_ascii_lowercase();
        let value = self.validate(&key, value)?;
        let canonical = match self.values.get(&key) {
            Some((n, _)) => n.clone(),
            None => {
                // Custom variables must be qualified, as in PostgreSQL.
                if !key.contains('.') {
                    return Err(SqlError::new(
                        code::UNDEFINED_OBJECT,
                        format!("unrecognized configuration parameter \"{name}\""),
                    ));
                }
                key.clone()
            }
        };
        if key == "server_version" || key == "server_version_num" || key == "server_encoding" {
            return Err(SqlError::new(
                "55P02",
                format!("parameter \"{name}\" cannot be changed"),
            ));
        }
        if key == "transaction_isolation" {
            self.values.insert(
                "transaction_isolation".into(),
                ("transaction_isolation".into(), value.clone()),
            );
        }
        self.values.insert(key, (canonical.clone(), value));
        self.changes += 1;
        Ok(REPORTED
            .iter()
            .find(|r| r.eq_ignore_ascii_case(&canonical))
            .map(|r| r.to_string()))
    }

    /// RESET name: back to the default.
    pub fn reset(&mut self, name: &str) -> SqlResult<Option<String>> {
        let user = self.user();
        let default = defaults(&self.database, &user)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .unwrap_or_default();
        self.set(name, &default)
    }

    /// RESET ALL.
    pub fn reset_all(&mut self) {
        let user = self.user();
        for (name, value) in defaults(&self.database, &user) {
            self.values
                .insert(name.to_ascii_lowercase(), (name.to_string(), value));
        }
    }

    fn validate(&self, key: &str, value: &str) -> SqlResult<String> {
        let invalid = |hint: &str| {
            SqlError::new(
                code::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"{key}\": \"{value}\""),
            )
            .with_detail(hint.to_string())
        };
        Ok(match key {
            "client_encoding" => {
                let v = value.to_ascii_uppercase().replace('-', "");
                if v != "UTF8" && v != "UNICODE" {
                    return Err(invalid("Only UTF8 is supported."));
                }
                "UTF8".into()
            }
            "extra_float_digits" => {
                let n: i32 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("An integer is required."))?;
                if !(-15..=3).contains(&n) {
                    return Err(invalid("Must be between -15 and 3."));
                }
                n.to_string()
            }
            "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
                format_duration_ms(parse_duration_ms(value).ok_or_else(|| {
                    invalid("A duration such as 100, '5s' or '1min' is required.")
                })?)
            }
            "transaction_isolation" | "default_transaction_isolation" => {
                let v = value.to_ascii_lowercase();
                match v.as_str() {
                    "read committed" | "repeatable read" | "read uncommitted" => v,
                    // Transactions run under snapshot isolation, which allows
                    // write skew: refuse rather than be silently weaker.
                    "serializable" => {
                        return Err(SqlError::new(
                            code::FEATURE_NOT_SUPPORTED,
                            "SERIALIZABLE isolation is not supported",
                        )
                        .with_detail(
                            "Transactions run under snapshot isolation, which allows write \
                             skew; use REPEATABLE READ.",
                        ))
                    }
                    _ => {
                        return Err(invalid(
                            "Use read committed, repeatable read or serializable.",
                        ))
                    }
                }
            }
            "distsql" => match value.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => "on".into(),
                "off" | "false" | "0" => "off".into(),
                _ => return Err(invalid("Use on or off.")),
            },
            "standard_conforming_strings" => {
                let v = value.to_ascii_lowercase();
                if v != "on" && v != "true" {
                    return Err(invalid("Only on is supported."));
                }
                "on".into()
            }
            "datestyle" => {
                let mut style = "ISO";
                let mut order = "MDY";
                for part in value.split(',').map(|p| p.trim().to_ascii_lowercase()) {
                    match part.as_str() {
                        "iso" => style = "ISO",
                        "mdy" | "us" | "noneuropean" => order = "MDY",
                        "dmy" | "european" => order = "DMY",
                        "ymd" => order = "YMD",
                        "postgres" | "sql" | "german" => {
                            return Err(invalid("Only the ISO output style is supported."))
                        }
                        _ => return Err(invalid("Unrecognized key word.")),
                    }
                }
                format!("{style}, {order}")
            }
            "timezone" => {
                let v = value.trim();
                if [
                    "utc",
                    "gmt",
                    "etc/utc",
                    "z",
                    "zulu",
                    "universal",
                    "+00",
                    "0",
                    "00:00",
                    "etc/gmt",
                ]
                .contains(&v.to_ascii_lowercase().as_str())
                {
                    "UTC".into()
                } else {
                    // Without a time zone database only UTC is known.
                    return Err(invalid("Only UTC is supported as the time zone."));
                }
            }
            _ => value.to_string(),
        })
    }

    /// How many times a variable was set since the session began: while it
    /// stays the same, so do the values [`reported`](Self::reported) gives.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// ParameterStatus values at startup.
    pub fn reported(&self) -> Vec<(String, String)> {
        REPORTED
            .iter()
            .map(|name| (name.to_string(), self.get(name).unwrap_or_default()))
            .collect()
    }

    /// Marks the start of a statement for statement_timeout.
    pub(crate) fn start_statement(&mut self) {
        self.statement_start = Some(Instant::now());
    }

    /// How long a statement waits for a row lock: lock_timeout if set, else
    /// None (the store's default wait).
    pub(crate) fn lock_timeout(&self) -> Option<Duration> {
        self.get("lock_timeout")
            .and_then(|v| parse_duration_ms(&v))
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }

    /// Whether scans may run their work at the ranges' leaders (`distsql`).
    pub(crate) fn distsql(&self) -> bool {
        self.get("distsql").as_deref() != Some("off")
    }

    /// Whether the transaction runs under READ COMMITTED (READ UNCOMMITTED
    /// is READ COMMITTED, as in PostgreSQL): each statement of a block
    /// reads a fresh snapshot.
    pub(crate) fn read_committed(&self) -> bool {
        matches!(
            self.get("transaction_isolation").as_deref(),
            Some("read committed" | "read uncommitted") | None
        )
    }

    /// 57014 if the statement has run past statement_timeout.
    pub(crate) fn check_timeout(&self) -> SqlResult<()> {
        let ms: u64 = self
            .get("statement_timeout")
            .and_then(|v| parse_duration_ms(&v))
            .unwrap_or(0);
        if ms > 0 {
            if let Some(start) = self.statement_start {
                if start.elapsed() > Duration::from_millis(ms) {
                    return Err(SqlError::new(
                        code::QUERY_CANCELED,
                        "canceling statement due to statement timeout",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A duration as PostgreSQL shows it: the largest unit that divides it.
fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0".into();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// "100" (ms), "5s", "2min", "1h", "250ms".
fn parse_duration_ms(v: &str) -> Option<u64> {
    let v = v.trim().trim_matches('\'');
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(n * factor)
}
