//! The `tessera` command line: usage and configuration errors are reported
//! clearly, with a non-zero exit and no panic.

use std::process::{Command, Output};

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_the_subcommands() {
    let output = tessera(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in ["start", "init", "demo", "kv", "admin", "bench"] {
        assert!(text.contains(command), "missing {command} in:\n{text}");
    }
}

#[test]
fn a_config_file_with_an_unknown_key_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, "node_id = 1\nlisten = \"127.0.0.1:1\"\n").unwrap();
    let output = tessera(&["start", "--config", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("invalid config") && err.contains("listen"),
        "{err}"
    );
}

#[test]
fn a_missing_config_file_is_reported() {
    let output = tessera(&["start", "--config", "/nonexistent/tessera.toml"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot read config"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn node_id_zero_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let output = tessera(&[
        "start",
        "--node-id",
        "0",
        "--listen-addr",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("node_id must be at least 1"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn init_against_nothing_fails_cleanly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = tessera(&["init", "--host", &format!("127.0.0.1:{port}")]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot reach"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn kv_against_nothing_gives_up_with_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The client retries for a while; a closed port fails each try at once.
    let output = tessera(&["kv", "--host", &format!("127.0.0.1:{port}"), "get", "k"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("unavailable"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
