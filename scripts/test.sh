#!/usr/bin/env bash
# Sets up the build, then runs every test: unit, golden, in-process cluster
# and end-to-end (real processes on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera-target}"
# Always the whole workspace with all its test targets: selecting packages or
# targets changes the resolved feature set, and with it RocksDB's C++ build.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace -- --test-threads 2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
