#!/usr/bin/env bash
# Replicated puts per second and p50/p99 latency on a 3-node cluster (three
# nodes in one `tessera demo` process on 127.0.0.1, RocksDB with fsync), for
# 1 and 64 concurrent writers.
#
#   bash benches/kv-puts.sh [seconds per run, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-15}"
source benches/demo-cluster.sh
HOSTS="127.0.0.1:$PORT,127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2))"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
for c in 1 64; do
    "$T" bench kv --host "$HOSTS" --concurrency "$c" --duration "$SECONDS_PER_RUN" 2>/dev/null
done
