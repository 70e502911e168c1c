#!/usr/bin/env bash
# Key/value sets and gets next to queue pushes and takes, as reported in docs/benchmarks.md.
#
# Builds the release binary (unless BIN is given), then for --fsync always and never starts
# `godwit serve` in a fresh temporary data directory on a free loopback port and runs the
# push, take, kv-set and kv-get scenarios of `godwit bench` with the same connections,
# size and duration; prints one table of all eight runs at the end.
#
#   scripts/kv.sh [BIN]        (BIN defaults to a fresh release build's target/release/godwit)
#
# Environment: DURATION (s per timed scenario, default 5), CONNECTIONS (64), SIZE (200),
# BATCH (100, messages per take request and per prefill batch), MESSAGES (200000, the take
# prefill; as in scripts/bench.sh), KEYS (10000, the key space of kv-set and kv-get).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-64}
SIZE=${SIZE:-200}
BATCH=${BATCH:-100}
MESSAGES=${MESSAGES:-200000}
KEYS=${KEYS:-10000}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${1:-}

work=$(mktemp -d "${TMPDIR:-/tmp}/godwit-kv.XXXXXX")
pid=""
cleanup() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if [[ -z $BIN ]]; then
    (cd "$ROOT" && cargo build --release -p godwit)
    BIN=$TARGET_DIR/release/godwit
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

echo "$(nproc) cores, $(uname -sr); $CONNECTIONS connections, $SIZE B, ${DURATION}s per scenario," \
    "take batch $BATCH over $MESSAGES messages, $KEYS keys"

for fsync in always never; do
    port=$(free_port)
    data=$work/data-$fsync
    "$BIN" serve --data-dir "$data" --http "127.0.0.1:$port" --redis off --memcache off \
        --fsync "$fsync" >"$work/server-$fsync.log" 2>&1 &
    pid=$!
    healthy=""
    for _ in $(seq 600); do
        if curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; then
            healthy=1
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $healthy ]]; then
        echo "server (--fsync $fsync) not healthy; log:" >&2
        cat "$work/server-$fsync.log" >&2
        exit 1
    fi
    for scenario in push take kv-set kv-get; do
        echo "== --fsync $fsync: $scenario" >&2
        # The bench prints a header and a table: keep the table's rows, prefixed with the
        # fsync mode, for the combined table below; progress and errors go to stderr.
        "$BIN" bench --url "http://127.0.0.1:$port" --scenario "$scenario" \
            --connections "$CONNECTIONS" --duration "$DURATION" --size "$SIZE" \
            --batch "$BATCH" --messages "$MESSAGES" --keys "$KEYS" |
            tee "$work/$fsync-$scenario.out" >&2
        awk -v f="$fsync" 'found && NF { printf "%-7s %s\n", f, $0 } /^-+$/ { found = 1 }' \
            "$work/$fsync-$scenario.out" >>"$work/rows"
    done
    kill -TERM "$pid"
    wait "$pid" || echo "server (--fsync $fsync) exited with status $?" >&2
    pid=""
done

echo
printf '%-7s %-24s %5s %10s %8s %12s %8s %8s %8s %7s\n' \
    fsync scenario conns messages secs msg/s MB/s "p50 ms" "p99 ms" errors
printf '%s\n' "$(printf -- '-%.0s' $(seq 108))"
cat "$work/rows"
