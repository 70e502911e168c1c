#!/usr/bin/env bash
# What the value index costs a push: wrk against one Godwit, single-message pushes of
# distinct bodies without and with `unique=true` (alternating), and unique pushes that
# are all duplicates of one queued body (each compares the stored body).
#
#   scripts/unique.sh [BIN]        (BIN defaults to target/release/godwit)
#
# Environment: FSYNC (never), SECONDS_EACH (5), CONNECTIONS (64), ROUNDS (2).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target/release/godwit}
FSYNC=${FSYNC:-never}
SECONDS_EACH=${SECONDS_EACH:-5}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/godwit-unique.XXXXXX")
pid=""
trap '[[ -n $pid ]] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
# Distinct ~100-byte bodies: a per-thread prefix and a counter.
cat >"$work/distinct.lua" <<'LUA'
local n, prefix = 0, ""
function setup(thread) thread:set("id", tostring(math.random(1, 1e9))) end
function init() prefix = id .. "-" .. string.rep("m", 80) .. "-" end
function request()
  n = n + 1
  return wrk.format("POST", nil, nil, prefix .. n)
end
LUA
printf 'wrk.method = "POST"\nwrk.body = string.rep("d", 100)\n' >"$work/same.lua"
run() {
    local label=$1 script=$2 query=$3 port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    rm -rf "$work/data"
    "$BIN" serve --data-dir "$work/data" --http "127.0.0.1:$port" --redis off --memcache off \
        --fsync "$FSYNC" >"$work/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s "$work/$script" \
        "http://127.0.0.1:$port/v1/queues/q/messages$query" |
        awk -v l="$label" '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
            END {printf "%-34s %10.0f push/s  p50 %8s  p99 %8s\n", l, r, p50, p99}'
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}
for _ in $(seq "$ROUNDS"); do
    run "distinct bodies" distinct.lua ""
    run "distinct bodies, unique=true" distinct.lua "?unique=true"
    run "one body, unique=true (duplicates)" same.lua "?unique=true"
done
