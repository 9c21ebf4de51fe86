//! A PostgreSQL server to compare Tessera with: the one named by
//! `TESSERA_PG_URL`, or a throwaway one started from the local installation
//! (initdb into a temporary directory, `pg_ctl start` on a free port, stopped
//! and removed on drop).
//!
//! The throwaway server uses the C locale, UTF-8 and `TimeZone=UTC`, so that
//! sorting and time output do not depend on the machine. As root, initdb and
//! the server run as the `postgres` user (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::free_port;

/// A PostgreSQL server that tests may create databases on.
pub struct Postgres {
    /// Connection URL of the `postgres` maintenance database, for example
    /// `postgresql://postgres@127.0.0.1:5999/postgres`.
    pub url: String,
    /// The major version and where it came from, for notices.
    pub description: String,
    owned: Option<OwnedServer>,
}

/// A server this process started.
struct OwnedServer {
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<String>,
    // Removed on drop, after the server is stopped.
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// The server named by `TESSERA_PG_URL`, else a throwaway one. `Err`
    /// says why there is none (not installed, cannot start), for a "skipped"
    /// notice.
    pub fn from_env_or_start() -> Result<Self, String> {
        match std::env::var("TESSERA_PG_URL") {
            Ok(url) if !url.is_empty() => Ok(Self {
                description: format!("PostgreSQL at TESSERA_PG_URL={url}"),
                url,
                owned: None,
            }),
            _ => Self::start(),
        }
    }

    /// Starts a throwaway server from the local installation: the bin dir in
    /// `TESSERA_PG_BIN`, else `/usr/lib/postgresql/<version>/bin` (15
    /// preferred, else the newest), else `initdb` on the `PATH`.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin_dir().ok_or_else(|| {
            "no PostgreSQL installation found (set TESSERA_PG_BIN to its bin dir, \
             or TESSERA_PG_URL to a running server)"
                .to_string()
        })?;
        let run_as = if is_root() {
            Some("postgres".to_string())
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("tessera-pg")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        if let Some(user) = &run_as {
            let chown = Command::new("chown")
                .arg(format!("{user}:{user}"))
                .arg(dir.path())
                .output()
                .map_err(|e| format!("chown: {e}"))?;
            check(&chown, "chown of the PostgreSQL directory")?;
        }
        let data = dir.path().join("data");
        let initdb = run(
            &run_as,
            &bin.join("initdb"),
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        check(&initdb, "initdb")?;

        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c TimeZone=UTC \
             -c max_connections=200",
            path_str(dir.path())?
        );
        let log = dir.path().join("postgres.log");
        let started = run(
            &run_as,
            &bin.join("pg_ctl"),
            &[
                "-D",
                path_str(&data)?,
                "-l",
                path_str(&log)?,
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        )?;
        if let Err(err) = check(&started, "pg_ctl start") {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("{err}\nserver log:\n{log}"));
        }
        let version = std::fs::read_to_string(data.join("PG_VERSION")).unwrap_or_default();
        Ok(Self {
            url: format!("postgresql://postgres@127.0.0.1:{port}/postgres"),
            description: format!(
                "throwaway PostgreSQL {} from {} on port {port}",
                version.trim(),
                bin.display()
            ),
            owned: Some(OwnedServer {
                bin,
                data,
                run_as,
                _dir: dir,
            }),
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(server) = &self.owned {
            if let Some(data) = server.data.to_str() {
                let _ = run(
                    &server.run_as,
                    &server.bin.join("pg_ctl"),
                    &["-D", data, "-m", "immediate", "-w", "stop"],
                );
            }
        }
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("TESSERA_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    fn has_initdb(dir: &Path) -> bool {
        dir.join("initdb").exists() && dir.join("pg_ctl").exists()
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .collect();
    // 15 first (the version the suites are checked against), then newest.
    versions.sort_by_key(|(v, _)| (*v != 15, std::cmp::Reverse(*v)));
    if let Some((_, bin)) = versions.into_iter().next() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| has_initdb(dir)))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// Runs `program args`, as `user` through runuser when one is given.
fn run(user: &Option<String>, program: &Path, args: &[&str]) -> Result<Output, String> {
    let mut command = match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    };
    command
        .args(args)
        // The server inherits the working directory; the postgres user may
        // not be allowed into ours.
        .current_dir("/")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))
}

fn check(output: &Output, what: &str) -> Result<(), String> {
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}
