#!/usr/bin/env bash
# Sets up the build, then runs every test: unit, golden, in-process cluster
# and end-to-end (real processes on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera-target}"
# psycopg for the Python driver smoke test, in a virtualenv of its own
# (the test skips with a notice if this fails, e.g. offline).
if [ -z "${TESSERA_PYTHON:-}" ] && command -v python3 >/dev/null 2>&1; then
    venv="$HOME/.cache/tessera-venv"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import psycopg' 2>/dev/null ||
        { python3 -m venv "$venv" && "$venv/bin/pip" install -q 'psycopg[binary]>=3.1,<4'; }; then
        export TESSERA_PYTHON="$venv/bin/python"
    else
        echo "warning: could not install psycopg; the psycopg smoke test will be skipped" >&2
    fi
fi
# A test target rebuilt after its dependencies changed leaves a new
# executable (hundreds of MB in a debug build) beside the old ones in the
# shared target directory: keep only the newest of each name, or the disk
# fills up over many runs.
deps="$CARGO_TARGET_DIR/debug/deps"
if [ -d "$deps" ]; then
    find "$deps" -maxdepth 1 -type f -perm -u+x -regex '.*/[a-z0-9_]+-[0-9a-f]+' -printf '%T@ %f\n' |
        sort -rn | awk '{ name = $2; sub(/-[0-9a-f]+$/, "", name); if (seen[name]++) print $2 }' |
        while read -r stale; do rm -f "$deps/$stale" "$deps/$stale.d"; done
fi
# Always the whole workspace with all its test targets: selecting packages or
# targets changes the resolved feature set, and with it RocksDB's C++ build.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast -- --test-threads 2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The failures again, at the end where a truncated log still shows them:
# each binary's "failures:" section, up to its result line.
if [ "$status" -ne 0 ]; then
    awk '/^failures:$/ && !inside { inside = 1; print "\n== failures" }
         inside { print } /^test result:/ { inside = 0 }' "$log" | tail -n 200
fi
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
