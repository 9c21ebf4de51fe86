//! Golden scripts for the MVCC layer (`tests/mvcc/*`): each runs Percolator
//! commands against an in-memory engine and records their results and the
//! engine's contents.
//!
//! A script is a sequence of blocks: `#` comments, command lines
//! (`name key=value ...`), a `---` line, and the expected output up to the
//! next blank line. Regenerate the expected output with
//! `UPDATE_GOLDENFILES=1 cargo test --workspace --test mvcc`.

use std::error::Error;
use std::fmt::Write as _;

use tessera_storage::mvcc::{
    commands, split_version_key, Lock, Mutation, MvccError, MvccReader, Op, Prewrite, TxnStatus,
    Write,
};
use tessera_storage::{Cf, Engine, MemoryEngine, WriteBatch};
use tessera_types::Timestamp;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

#[test]
fn scripts() {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        // As cargo gives it at run time: the path compiled in is that of
        // the checkout that built the binary (see crates/sql/tests/slt.rs).
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("tests/mvcc");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/mvcc")
        .map(|entry| entry.expect("dir entry").path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scripts in {}", dir.display());
    let update = std::env::var_os("UPDATE_GOLDENFILES").is_some_and(|v| v == "1");
    for path in paths {
        let script = std::fs::read_to_string(&path).expect("script");
        let actual = run_script(&script).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        if update {
            std::fs::write(&path, &actual).expect("write script");
        } else if actual != script {
            let (expected, got) = first_difference(&script, &actual);
            panic!(
                "{}: output differs (UPDATE_GOLDENFILES=1 regenerates it)\n--- expected\n{expected}\n--- actual\n{got}",
                path.display()
            );
        }
    }
}

/// The first block where two renderings of a script differ.
fn first_difference(expected: &str, actual: &str) -> (String, String) {
    let blocks = |s: &str| s.split("\n\n").map(str::to_string).collect::<Vec<_>>();
    let (expected, actual) = (blocks(expected), blocks(actual));
    for i in 0..expected.len().max(actual.len()) {
        let e = expected.get(i).cloned().unwrap_or_default();
        let a = actual.get(i).cloned().unwrap_or_default();
        if e != a {
            return (e, a);
        }
    }
    (String::new(), String::new())
}

/// One command line: a name and arguments, each `key=value` or a bare value.
struct Command {
    name: String,
    args: Vec<(Option<String>, String)>,
}

fn parse_command(line: &str) -> Result<Command> {
    let mut words = line.split_whitespace();
    let name = words.next().ok_or("empty command")?.to_string();
    let args = words
        .map(|word| match word.split_once('=') {
            Some((key, value)) => (Some(key.to_string()), value.to_string()),
            None => (None, word.to_string()),
        })
        .collect();
    Ok(Command { name, args })
}

/// Runs a script on a fresh engine and renders it with the actual output.
fn run_script(script: &str) -> Result<String> {
    let mut runner = MvccRunner::default();
    let mut out = String::new();
    let mut lines = script.lines().peekable();
    while lines.peek().is_some() {
        // Comments, blank lines and commands up to `---`.
        let mut commands = Vec::new();
        for line in lines.by_ref() {
            out.push_str(line);
            out.push('\n');
            if line == "---" {
                break;
            }
            if !line.is_empty() && !line.starts_with('#') {
                commands.push(parse_command(line)?);
            }
        }
        // Skip the old output, up to a blank line.
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
        }
        if commands.is_empty() {
            continue;
        }
        for command in &commands {
            out.push_str(&runner.run(command)?);
        }
        if lines.peek().is_some() {
            out.push('\n');
        }
    }
    Ok(out)
}

#[derive(Default)]
struct MvccRunner {
    engine: MemoryEngine,
}

/// Timestamps are written as a plain integer (the raw value) or as
/// `MS.LOGICAL` (a physical time in milliseconds, for TTLs).
fn parse_ts(s: &str) -> Result<Timestamp> {
    Ok(match s.split_once('.') {
        Some((ms, logical)) => Timestamp::new(ms.parse()?, logical.parse()?),
        None => Timestamp(s.parse()?),
    })
}

fn fmt_ts(ts: Timestamp) -> String {
    if ts.physical_ms() == 0 {
        ts.0.to_string()
    } else {
        ts.to_string()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fmt_lock(lock: &Lock) -> String {
    let mut out = format!(
        "{:?} start={} primary={} ttl={}",
        lock.kind,
        fmt_ts(lock.start_ts),
        text(&lock.primary),
        lock.ttl_ms
    );
    if !lock.for_update_ts.is_zero() {
        write!(out, " for_update={}", fmt_ts(lock.for_update_ts)).unwrap();
    }
    if let Some(value) = &lock.short_value {
        write!(out, " value={}", text(value)).unwrap();
    }
    if lock.is_async() {
        write!(out, " min_commit={}", fmt_ts(lock.min_commit_ts)).unwrap();
    }
    if !lock.secondaries.is_empty() {
        write!(out, " secondaries={}", fmt_keys(&lock.secondaries)).unwrap();
    }
    out
}

fn fmt_keys(keys: &[Vec<u8>]) -> String {
    keys.iter().map(|k| text(k)).collect::<Vec<_>>().join(",")
}

fn fmt_status(status: &TxnStatus) -> String {
    match status {
        TxnStatus::Committed(ts) => format!("committed at {}", fmt_ts(*ts)),
        TxnStatus::Locked {
            ttl_ms,
            min_commit_ts,
            secondaries,
        } => {
            let mut out = format!("Locked {{ ttl_ms: {ttl_ms} }}");
            if !min_commit_ts.is_zero() {
                write!(out, " min_commit={}", fmt_ts(*min_commit_ts)).unwrap();
            }
            if !secondaries.is_empty() {
                write!(out, " secondaries={}", fmt_keys(secondaries)).unwrap();
            }
            out
        }
        other => format!("{other:?}"),
    }
}

fn fmt_write(write: &Write) -> String {
    let mut out = format!("{:?} start={}", write.kind, fmt_ts(write.start_ts));
    if let Some(value) = &write.short_value {
        write!(out, " value={}", text(value)).unwrap();
    }
    if write.overlapped_rollback {
        out.push_str(" overlapped_rollback");
    }
    out
}

fn fmt_error(err: &MvccError) -> String {
    match err {
        MvccError::KeyIsLocked { key, lock } => {
            format!("KeyIsLocked {}: {}", text(key), fmt_lock(lock))
        }
        MvccError::WriteConflict {
            key,
            start_ts,
            conflict_start_ts,
            conflict_commit_ts,
        } => format!(
            "WriteConflict {}: txn {} lost to txn {} committed at {}",
            text(key),
            fmt_ts(*start_ts),
            fmt_ts(*conflict_start_ts),
            fmt_ts(*conflict_commit_ts)
        ),
        MvccError::TxnAborted { key, start_ts } => {
            format!("TxnAborted {}: txn {}", text(key), fmt_ts(*start_ts))
        }
        MvccError::AlreadyCommitted {
            key,
            start_ts,
            commit_ts,
        } => format!(
            "AlreadyCommitted {}: txn {} at {}",
            text(key),
            fmt_ts(*start_ts),
            fmt_ts(*commit_ts)
        ),
        MvccError::PessimisticLockNotFound { key, start_ts } => format!(
            "PessimisticLockNotFound {}: txn {}",
            text(key),
            fmt_ts(*start_ts)
        ),
        MvccError::TxnNotFound { key, start_ts } => {
            format!("TxnNotFound {}: txn {}", text(key), fmt_ts(*start_ts))
        }
        MvccError::NewerWrite { key } => format!("NewerWrite {}", text(key)),
        other => other.to_string(),
    }
}

/// Parsed arguments: named timestamps and keys, and mutations.
struct Args<'a> {
    command: &'a Command,
}

impl Args<'_> {
    /// A reader over `snapshot`: `latest=yes` makes it a latest reader.
    fn reader<'s>(&self, snapshot: &'s dyn tessera_storage::Snapshot) -> MvccReader<'s> {
        match self.get("latest") {
            Some("yes") => MvccReader::latest(snapshot),
            _ => MvccReader::new(snapshot),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.command
            .args
            .iter()
            .find(|(k, _)| k.as_deref() == Some(key))
            .map(|(_, value)| value.as_str())
    }

    fn ts(&self, key: &str) -> Result<Timestamp> {
        parse_ts(self.get(key).ok_or_else(|| format!("{key}= missing"))?)
    }

    fn ts_or(&self, key: &str, default: Timestamp) -> Result<Timestamp> {
        self.get(key).map_or(Ok(default), parse_ts)
    }

    fn bytes(&self, key: &str) -> Result<Vec<u8>> {
        Ok(self
            .get(key)
            .ok_or_else(|| format!("{key}= missing"))?
            .as_bytes()
            .to_vec())
    }

    fn keys(&self) -> Result<Vec<Vec<u8>>> {
        self.list("keys")
    }

    /// A comma-separated list of keys.
    fn list(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .get(name)
            .ok_or_else(|| format!("{name}= missing"))?
            .split(',')
            .map(|k| k.as_bytes().to_vec())
            .collect())
    }

    fn u64_or(&self, key: &str, default: u64) -> Result<u64> {
        Ok(self.get(key).map_or(Ok(default), str::parse)?)
    }

    /// `put=K:V`, `delete=K`, `lock=K`; `pessimistic=K1,K2` marks keys the
    /// transaction locked pessimistically.
    fn mutations(&self) -> Vec<Mutation> {
        let pessimistic: Vec<&str> = self
            .get("pessimistic")
            .map(|list| list.split(',').collect())
            .unwrap_or_default();
        let mut mutations = Vec::new();
        for (name, value) in &self.command.args {
            let (key, op) = match (name.as_deref(), value.split_once(':')) {
                (Some("put"), Some((key, value))) => (key, Op::Put(value.as_bytes().to_vec())),
                (Some("delete"), _) => (value.as_str(), Op::Delete),
                (Some("lock"), _) => (value.as_str(), Op::Lock),
                _ => continue,
            };
            mutations.push(Mutation {
                key: key.as_bytes().to_vec(),
                op,
                pessimistic: pessimistic.contains(&key),
            });
        }
        mutations
    }
}

impl MvccRunner {
    /// Writes a status check's effects and prints its outcome.
    fn status(
        &self,
        result: std::result::Result<(TxnStatus, WriteBatch), MvccError>,
    ) -> Result<String> {
        Ok(match result {
            Ok((status, batch)) => {
                self.engine.write(&batch, false)?;
                format!("{}\n", fmt_status(&status))
            }
            Err(err) => format!("{}\n", fmt_error(&err)),
        })
    }

    fn apply(&self, result: std::result::Result<WriteBatch, MvccError>) -> Result<String> {
        Ok(match result {
            Ok(batch) => {
                self.engine.write(&batch, false)?;
                "ok\n".into()
            }
            Err(err) => format!("{}\n", fmt_error(&err)),
        })
    }

    fn dump(&self) -> Result<String> {
        let mut out = String::new();
        for (key, value) in self
            .engine
            .scan(Cf::Lock, b"", b"")
            .collect::<std::result::Result<Vec<_>, _>>()?
        {
            writeln!(
                out,
                "lock {} → {}",
                text(&key),
                fmt_lock(&Lock::decode(&value)?)
            )?;
        }
        for (key, value) in self
            .engine
            .scan(Cf::Write, b"", b"")
            .collect::<std::result::Result<Vec<_>, _>>()?
        {
            let (key, ts) = split_version_key(&key)?;
            writeln!(
                out,
                "write {}@{} → {}",
                text(&key),
                fmt_ts(ts),
                fmt_write(&Write::decode(&value)?)
            )?;
        }
        for (key, value) in self
            .engine
            .scan(Cf::Default, b"", b"")
            .collect::<std::result::Result<Vec<_>, _>>()?
        {
            let (key, ts) = split_version_key(&key)?;
            writeln!(
                out,
                "data {}@{} → {} bytes",
                text(&key),
                fmt_ts(ts),
                value.len()
            )?;
        }
        Ok(out)
    }
}

impl MvccRunner {
    fn run(&mut self, command: &Command) -> Result<String> {
        let args = Args { command };
        let snapshot = self.engine.snapshot();
        let reader = MvccReader::new(snapshot.as_ref());
        match command.name.as_str() {
            // prewrite start=T primary=K [ttl=MS] [for_update=T] put=K:V delete=K lock=K [pessimistic=K,..]
            //   [min_commit=T secondaries=K,..] (an asynchronous commit)
            "prewrite" | "one_pc" => {
                let primary = args.bytes("primary")?;
                let mutations = args.mutations();
                let secondaries = match args.get("secondaries") {
                    Some(_) => args.list("secondaries")?,
                    None => Vec::new(),
                };
                let prewrite = Prewrite {
                    start_ts: args.ts("start")?,
                    primary: &primary,
                    ttl_ms: args.u64_or("ttl", 3000)?,
                    for_update_ts: args.ts_or("for_update", Timestamp::ZERO)?,
                    mutations: &mutations,
                    min_commit_ts: args.ts_or("min_commit", Timestamp::ZERO)?,
                    secondaries: &secondaries,
                };
                if command.name == "prewrite" {
                    let prewritten = commands::prewrite(&reader, &prewrite);
                    let answer = match &prewritten {
                        Ok((ts, _)) if !ts.is_zero() => format!(" (min commit {})", fmt_ts(*ts)),
                        _ => String::new(),
                    };
                    let out = self.apply(prewritten.map(|(_, batch)| batch))?;
                    Ok(out.replacen("ok\n", &format!("ok{answer}\n"), 1))
                } else {
                    let commit_ts = args.ts("commit")?;
                    let committed = commands::one_phase_commit(&reader, &prewrite, commit_ts);
                    let answer = committed.as_ref().map_or(String::new(), |(ts, _)| {
                        format!(" (committed at {})", fmt_ts(*ts))
                    });
                    let out = self.apply(committed.map(|(_, batch)| batch))?;
                    Ok(out.replacen("ok\n", &format!("ok{answer}\n"), 1))
                }
            }
            // commit start=T commit=T keys=K,..
            "commit" => self.apply(commands::commit(
                &reader,
                args.ts("start")?,
                args.ts("commit")?,
                &args.keys()?,
            )),
            // rollback start=T keys=K,..
            "rollback" => self.apply(commands::rollback(
                &reader,
                args.ts("start")?,
                &args.keys()?,
            )),
            // lock start=T for_update=T primary=K [ttl=MS] keys=K,..
            "lock" => self.apply(
                commands::acquire_pessimistic_locks(
                    &reader,
                    args.ts("start")?,
                    args.ts("for_update")?,
                    &args.bytes("primary")?,
                    args.u64_or("ttl", 3000)?,
                    &args.keys()?,
                    false,
                )
                .map(|(effects, _)| effects),
            ),
            // lock_read start=T for_update=T primary=K [ttl=MS] keys=K,..
            // (locks the keys that hold a value, and prints every value)
            "lock_read" => {
                let keys = args.keys()?;
                match commands::acquire_pessimistic_locks(
                    &reader,
                    args.ts("start")?,
                    args.ts("for_update")?,
                    &args.bytes("primary")?,
                    args.u64_or("ttl", 3000)?,
                    &keys,
                    true,
                ) {
                    Ok((batch, values)) => {
                        let mut out = self.apply(Ok(batch))?;
                        for (key, value) in keys.iter().zip(values) {
                            let value = value.map_or("none".into(), |v| text(&v));
                            writeln!(out, "{} → {value}", text(key))?;
                        }
                        Ok(out)
                    }
                    Err(err) => self.apply(Err(err)),
                }
            }
            // unlock start=T keys=K,..
            "unlock" => self.apply(commands::release_pessimistic_locks(
                &reader,
                args.ts("start")?,
                &args.keys()?,
            )),
            // resolve start=T [commit=T] keys=K,..
            "resolve" => {
                let commit_ts = args.get("commit").map(parse_ts).transpose()?;
                self.apply(commands::resolve_locks(
                    &reader,
                    args.ts("start")?,
                    commit_ts,
                    &args.keys()?,
                ))
            }
            // check_txn primary=K start=T now=T [rollback_if_missing=true]
            "check_txn" => {
                let result = commands::check_txn_status(
                    &reader,
                    &args.bytes("primary")?,
                    args.ts("start")?,
                    args.ts("now")?,
                    args.get("rollback_if_missing") == Some("true"),
                );
                self.status(result)
            }
            // check_secondaries start=T keys=K,..
            "check_secondaries" => {
                let result =
                    commands::check_secondary_locks(&reader, args.ts("start")?, &args.keys()?);
                self.status(result)
            }
            // heartbeat primary=K start=T ttl=MS
            "heartbeat" => {
                let result = commands::heartbeat(
                    &reader,
                    &args.bytes("primary")?,
                    args.ts("start")?,
                    args.u64_or("ttl", 3000)?,
                );
                Ok(match result {
                    Ok((ttl, batch)) => {
                        self.engine.write(&batch, false)?;
                        format!("ttl {ttl}\n")
                    }
                    Err(err) => format!("{}\n", fmt_error(&err)),
                })
            }
            // get key=K ts=T [latest=yes]
            "get" => {
                let key = args.bytes("key")?;
                let reader = args.reader(snapshot.as_ref());
                Ok(match reader.get(&key, args.ts("ts")?) {
                    Ok(Some(value)) => format!("{} → {}\n", text(&key), text(&value)),
                    Ok(None) => format!("{} → none\n", text(&key)),
                    Err(err) => format!("{}\n", fmt_error(&err)),
                })
            }
            // scan ts=T [from=K] [to=K] [limit=N] [latest=yes]
            "scan" => {
                let reader = args.reader(snapshot.as_ref());
                let from = args.get("from").unwrap_or("").as_bytes().to_vec();
                let to = args.get("to").unwrap_or("").as_bytes().to_vec();
                let limit = args.u64_or("limit", 0)? as usize;
                Ok(match reader.scan(&from, &to, args.ts("ts")?, limit) {
                    Ok((kvs, more)) => {
                        let mut out = String::new();
                        for (key, value) in kvs {
                            writeln!(out, "{} → {}", text(&key), text(&value))?;
                        }
                        if more {
                            out.push_str("(more)\n");
                        }
                        if out.is_empty() {
                            out.push_str("(empty)\n");
                        }
                        out
                    }
                    Err(err) => format!("{}\n", fmt_error(&err)),
                })
            }
            // gc safe_point=T [limit=N]
            "gc" => {
                let (outcome, batch) = commands::gc(
                    snapshot.as_ref(),
                    args.ts("safe_point")?,
                    b"",
                    b"",
                    args.u64_or("limit", u64::MAX)? as usize,
                )?;
                self.engine.write(&batch, false)?;
                Ok(format!(
                    "examined {} removed {}{}\n",
                    outcome.examined,
                    outcome.removed,
                    outcome
                        .resume_key
                        .map(|key| format!(" resume at {}", text(&key)))
                        .unwrap_or_default()
                ))
            }
            // dump: every lock, write record and long value
            "dump" => self.dump(),
            name => Err(format!("unknown command {name}").into()),
        }
    }
}
