# shellcheck shell=bash
# Sourced by the benchmark scripts: builds the release binary and starts a
# 3-node cluster (`tessera demo`, three nodes in one process on 127.0.0.1,
# RocksDB with fsync) with gRPC on 17433.. and SQL on 15433.., stopped and
# removed when the script exits (DEMO_ARGS adds flags to `tessera demo`;
# TESSERA_BIN, a prebuilt `tessera` binary, skips the build).
# Sets T (the binary), DATA (its directory),
# PORT, SQL_PORT and DEMO (its pid), and defines `demo_stop` (stops the
# cluster and removes its directory: what the exit trap does), `percentile`
# and `transfer_script`.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera-target}"
if [ -n "${TESSERA_BIN:-}" ]; then
    [ -x "$TESSERA_BIN" ] || { echo "TESSERA_BIN=$TESSERA_BIN is not an executable file" >&2; exit 1; }
    T="$TESSERA_BIN"
else
    bash scripts/setup.sh
    cargo build --release -p tessera-server
    T="$CARGO_TARGET_DIR/release/tessera"
fi

DATA="$(mktemp -d)"
PORT=17433
SQL_PORT=15433
# shellcheck disable=SC2086 # DEMO_ARGS: more flags for `tessera demo`, split on spaces
"$T" demo --nodes 3 --data-dir "$DATA" --base-port "$PORT" --sql-base-port "$SQL_PORT" ${DEMO_ARGS:-} >"$DATA/demo.log" 2>&1 &
DEMO=$!
demo_stop() {
    if [ -n "${DEMO:-}" ]; then
        kill "$DEMO" 2>/dev/null || true
        wait "$DEMO" 2>/dev/null || true
        DEMO=""
    fi
    rm -rf "$DATA"
}
trap demo_stop EXIT
for _ in $(seq 1 100); do
    grep -q "Ctrl-C stops" "$DATA/demo.log" && break
    sleep 0.2
done
grep -q "Ctrl-C stops" "$DATA/demo.log" || { cat "$DATA/demo.log"; exit 1; }

# The p-th percentile (ms) of the transaction latencies (us, 3rd field) of
# pgbench's per-transaction logs.
percentile() { # p, log files...
    local p="$1"
    shift
    cat "$@" | awk '{print $3}' | sort -n |
        awk -v p="$p" '{v[NR] = $1} END {i = int(NR * p / 100 + 0.5); if (i < 1) i = 1; printf "%.2f", v[i] / 1000}'
}

# Writes a pgbench script that moves a random amount from account :a to
# account :b of `acct (id, bal)` in one transaction.
transfer_script() { # file, range of :a ("lo, hi"), range of :b
    cat >"$1" <<SQL
\\set a random($2)
\\set b random($3)
\\set amount random(1, 100)
BEGIN;
UPDATE acct SET bal = bal - :amount WHERE id = :a;
UPDATE acct SET bal = bal + :amount WHERE id = :b;
END;
SQL
}
