#!/usr/bin/env bash
# Maintenance stalls under a large backlog: fills BACKLOG messages (default 2,000,000 x
# 100 B), then pushes with wrk for DURATION seconds while checkpoints run every
# CHECKPOINT bytes of log, and prints wrk's latency distribution (its max is the longest
# any push waited) and the time the checkpoint held the state lock.
#
#   scripts/stall.sh [BIN]        (BIN defaults to target/release/godwit)
#
# Environment: BACKLOG, DURATION (20), CONNECTIONS (32), CHECKPOINT (16MiB), FSYNC (never).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target/release/godwit}
BACKLOG=${BACKLOG:-2000000}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-32}
CHECKPOINT=${CHECKPOINT:-16MiB}
FSYNC=${FSYNC:-never}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/godwit-stall.XXXXXX")
pid=""
trap '[[ -n $pid ]] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --data-dir "$work/data" --http "127.0.0.1:$port" --redis off --memcache off \
    --fsync "$FSYNC" --checkpoint-bytes "$CHECKPOINT" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
echo "filling $BACKLOG messages"
"$ROOT/target/release/godwit" bench --url "http://127.0.0.1:$port" --scenario backlog \
    --messages "$BACKLOG" --size 100 --connections 8 | tail -3
printf 'wrk.method = "POST"\nwrk.body = string.rep("m", 100)\n' >"$work/post.lua"
echo "pushing for ${DURATION}s with $CONNECTIONS connections, checkpoint every $CHECKPOINT"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" \
    "http://127.0.0.1:$port/v1/queues/stall/messages" | sed -n '/Latency/,/Requests\/sec/p'

curl -s "http://127.0.0.1:$port/metrics" | grep -E '^godwit_checkpoint_lock_seconds' || true
