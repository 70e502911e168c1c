#!/usr/bin/env bash
# Push tail latency under --fsync always against redis-server with appendfsync always,
# in one run: wrk --latency on Godwit's single-message HTTP push, redis-benchmark LPUSH
# on Redis, same connection count and value size. Prints throughput, p50, p99 of each
# and the p99 ratio. Two load tools on a small machine: compare ratios within one run.
#
#   scripts/tail.sh [BIN]        (BIN defaults to target/release/godwit)
#
# Environment: CONNECTIONS (64), DURATION (s, 10), SIZE (100), REQUESTS (redis, 600000),
# THREADS (load-tool threads, 1): both tools run with the same number of threads
# (wrk -t, redis-benchmark --threads), so each server shares the two cores with a load
# generator of the same shape.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target/release/godwit}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
SIZE=${SIZE:-100}
REQUESTS=${REQUESTS:-600000}
THREADS=${THREADS:-1}
for tool in wrk redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk redis-server redis-tools)" >&2; exit 2; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/godwit-tail.XXXXXX")
pid=""
rport=""
cleanup() {
    [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
    [[ -n $rport ]] && redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

port=$(free_port)
"$BIN" serve --data-dir "$work/data" --http "127.0.0.1:$port" --redis off --memcache off \
    --fsync always >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
printf 'wrk.method = "POST"\nwrk.body = string.rep("m", %d)\n' "$SIZE" >"$work/post.lua"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" \
    "http://127.0.0.1:$port/v1/queues/q/messages" >"$work/wrk.out"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

rport=$(free_port)
mkdir "$work/redis"
redis-server --port "$rport" --dir "$work/redis" --appendonly yes --appendfsync always \
    --save "" --daemonize yes >/dev/null
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis_threads=()
[[ $THREADS -gt 1 ]] && redis_threads=(--threads "$THREADS")
redis-benchmark -p "$rport" "${redis_threads[@]}" -c "$CONNECTIONS" -n "$REQUESTS" -d "$SIZE" -t lpush >"$work/redis.out" 2>&1

python3 - "$work/wrk.out" "$work/redis.out" <<'PY'
import re, sys
wrk, redis = (open(p).read() for p in sys.argv[1:])
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
def pct(p):
    m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)$", wrk, re.M)
    return ms(*m.groups())
g_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
g50, g99 = pct(50), pct(99)
r_rps = float(re.search(r"throughput summary: ([\d.]+)", redis).group(1))
row = re.search(r"avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d.\s]+)", redis).group(1).split()
r50, r99 = float(row[2]), float(row[4])
print(f"{'server':42} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
print(f"{'godwit --fsync always (wrk)':42} {g_rps:9.0f} {g50:8.2f} {g99:8.2f}")
print(f"{'redis-server appendfsync always (redis-benchmark)':42} {r_rps:9.0f} {r50:8.2f} {r99:8.2f}")
print(f"godwit p99 / redis p99 = {g99 / r99:.2f}x")
PY
