#!/usr/bin/env bash
# Sets up the build, then runs every test: unit, golden, in-process cluster
# and end-to-end (real processes on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera-target}"
# Always the whole workspace with all its test targets: selecting packages or
# targets changes the resolved feature set, and with it RocksDB's C++ build.
cargo test --workspace -- --test-threads 2
