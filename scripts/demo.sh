#!/usr/bin/env bash
# Sets up the build, then starts the 3-node demo cluster (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera-target}"
cargo build --release -p tessera-server
exec "$CARGO_TARGET_DIR/release/tessera" demo --nodes 3 "$@"
