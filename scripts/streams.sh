#!/usr/bin/env bash
# Live streams, as reported in docs/benchmarks.md: fan-out to many broadcast SSE consumers
# and publish-to-consumer latency over SSE and WebSocket.
#
# Builds the release binary (unless BIN is given), then for --fsync never and always starts
# `godwit serve` in a fresh temporary data directory on a free loopback port and runs the
# fanout scenario (CONSUMERS SSE consumers, batched pushes from CONNECTIONS pushers) and the
# stream-latency scenario (one consumer, RATE single pushes/s, SSE then WebSocket) of
# `godwit bench`; prints one table of every row, the scenarios' notes (delivery checks,
# latency percentiles up to max) and the CPU seconds server and bench each used.
#
#   scripts/streams.sh [BIN]   (BIN defaults to a fresh release build's target/release/godwit)
#
# Environment: DURATION (s per timed scenario, default 5), CONSUMERS (100), CONNECTIONS (8,
# fan-out pushers), BATCH (100, messages per fan-out push), SIZE (200), RATE (1000).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-5}
CONSUMERS=${CONSUMERS:-100}
CONNECTIONS=${CONNECTIONS:-8}
BATCH=${BATCH:-100}
SIZE=${SIZE:-200}
RATE=${RATE:-1000}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${1:-}

work=$(mktemp -d "${TMPDIR:-/tmp}/godwit-streams.XXXXXX")
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

# CPU seconds (user + system) a process has used so far.
cpu_secs() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

echo "$(nproc) cores, $(uname -sr); $CONSUMERS consumers, $CONNECTIONS pushers x $BATCH/req," \
    "$SIZE B, ${DURATION}s per scenario, latency at $RATE pushes/s"

for fsync in never always; do
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
    for scenario in fanout stream-latency; do
        echo "== --fsync $fsync: $scenario" >&2
        before=$(cpu_secs "$pid")
        # The bench prints a header, a table and notes: keep the table's rows and the
        # notes, prefixed with the fsync mode; progress and errors go to stderr.
        /usr/bin/time -f '%U %S' -o "$work/time" \
            "$BIN" bench --url "http://127.0.0.1:$port" --scenario "$scenario" \
            --consumers "$CONSUMERS" --connections "$CONNECTIONS" --batch "$BATCH" \
            --size "$SIZE" --duration "$DURATION" --rate "$RATE" |
            tee "$work/$fsync-$scenario.out" >&2
        after=$(cpu_secs "$pid")
        awk -v f="$fsync" '
            /^-+$/ { table = 1; next }
            table && !NF { table = 0; notes = 1; next }
            table { printf "%-7s %s\n", f, $0 }
            notes && NF { print f ": " $0 > "/dev/stderr" }
        ' "$work/$fsync-$scenario.out" >>"$work/rows" 2>>"$work/notes"
        read -r user sys <"$work/time"
        printf '%s: %s: server used %.1f CPU s, bench %.1f CPU s\n' "$fsync" "$scenario" \
            "$(echo "$after - $before" | bc)" "$(echo "$user + $sys" | bc)" >>"$work/notes"
    done
    kill -TERM "$pid"
    wait "$pid" || echo "server (--fsync $fsync) exited with status $?" >&2
    if grep -qiE 'warn|error' "$work/server-$fsync.log"; then
        echo "server (--fsync $fsync) log warnings:" >&2
        grep -iE 'warn|error' "$work/server-$fsync.log" | head -20 >&2
    fi
    pid=""
done

echo
printf '%-7s %-24s %5s %10s %8s %12s %8s %8s %8s %7s\n' \
    fsync scenario conns messages secs msg/s MB/s "p50 ms" "p99 ms" errors
printf '%s\n' "$(printf -- '-%.0s' $(seq 108))"
cat "$work/rows"
echo
cat "$work/notes"
