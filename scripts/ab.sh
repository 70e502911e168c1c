#!/usr/bin/env bash
# A/B of the push path: runs wrk against each given godwit binary in turn (ROUNDS times,
# alternating, so drift hits both alike) and prints pushes/s with p50/p99 for each run.
#
#   scripts/ab.sh BIN_A [BIN_B ...]
#
# Environment: FSYNC (never), SECONDS_EACH (5), CONNECTIONS (64), SIZE (100), ROUNDS (2).
set -euo pipefail
FSYNC=${FSYNC:-never}
SECONDS_EACH=${SECONDS_EACH:-5}
CONNECTIONS=${CONNECTIONS:-64}
SIZE=${SIZE:-100}
ROUNDS=${ROUNDS:-2}
[[ $# -ge 1 ]] || { echo "usage: scripts/ab.sh BIN_A [BIN_B ...]" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/godwit-ab.XXXXXX")
pid=""
trap '[[ -n $pid ]] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
printf 'wrk.method = "POST"\nwrk.body = string.rep("m", %d)\n' "$SIZE" >"$work/post.lua"
run() {
    local bin=$1 port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    rm -rf "$work/data"
    "$bin" serve --data-dir "$work/data" --http "127.0.0.1:$port" --redis off --memcache off \
        --fsync "$FSYNC" >"$work/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s "$work/post.lua" \
        "http://127.0.0.1:$port/v1/queues/q/messages" |
        awk -v b="$bin" -v f="$FSYNC" '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
            END {printf "%-40s --fsync %-6s %10s push/s  p50 %8s  p99 %8s\n", b, f, r, p50, p99}'
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}
for _ in $(seq "$ROUNDS"); do
    for bin in "$@"; do run "$bin"; done
done
