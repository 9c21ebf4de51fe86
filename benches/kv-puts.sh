#!/usr/bin/env bash
# Replicated puts per second and p50/p99 latency on a 3-node cluster (three
# nodes in one `tessera demo` process on 127.0.0.1, RocksDB with fsync), for
# 1 and 64 concurrent writers.
#
#   bash benches/kv-puts.sh [seconds per run, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-15}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera-target}"
bash scripts/setup.sh
cargo build --release -p tessera-server
T="$CARGO_TARGET_DIR/release/tessera"

DATA="$(mktemp -d)"
PORT=17433
HOSTS="127.0.0.1:$PORT,127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2))"
"$T" demo --nodes 3 --data-dir "$DATA" --base-port "$PORT" >"$DATA/demo.log" 2>&1 &
DEMO=$!
trap 'kill $DEMO 2>/dev/null; wait $DEMO 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
    grep -q "Ctrl-C stops" "$DATA/demo.log" && break
    sleep 0.2
done
grep -q "Ctrl-C stops" "$DATA/demo.log" || { cat "$DATA/demo.log"; exit 1; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
for c in 1 64; do
    "$T" bench kv --host "$HOSTS" --concurrency "$c" --duration "$SECONDS_PER_RUN" 2>/dev/null
done
