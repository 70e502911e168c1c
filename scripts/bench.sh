#!/usr/bin/env bash
# Godwit's benchmark run, as reported in docs/benchmarks.md.
#
# Builds the release binary, then for --fsync always and never starts `godwit serve` in a
# fresh data directory on a free loopback port and runs the push, batch and take scenarios;
# fills a backlog (default 1,000,000 x 200 B) and reports idle vs filled RSS, restart time
# with that backlog after SIGTERM and after SIGKILL; measures the disk's bare O_DSYNC write
# rate; with wrk installed, compares push with /healthz (same HTTP stack, no storage); and,
# when redis-server and redis-benchmark are installed, runs redis LPUSH/RPOP
# for reference. Every step is bounded.
#
# Environment: DURATION (s per timed scenario, default 5), CONNECTIONS (8), SIZE (200),
# BATCH (100), BACKLOG (1000000), BENCH_DIR (scratch dir on the disk to measure; default
# target/bench-scratch).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-8}
SIZE=${SIZE:-200}
BATCH=${BATCH:-100}
BACKLOG=${BACKLOG:-1000000}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_DIR=${BENCH_DIR:-$TARGET_DIR/bench-scratch}
BIN=$TARGET_DIR/release/godwit

SERVER_PID=""
PORT=""
DATA=""

log() { printf '\n== %s\n' "$*"; }

cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$BENCH_DIR"
}
trap cleanup EXIT

free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "no free port found" >&2
    exit 1
}

now_ms() { date +%s%3N; }

# wait_healthy: polls /healthz every 10 ms for at most 60 s; prints the ms it took since $1.
wait_healthy() {
    local start=$1
    for _ in $(seq 1 6000); do
        if curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz"; then
            echo $(($(now_ms) - start))
            return
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server exited; log:" >&2
            cat "$DATA.log" >&2
            exit 1
        fi
        sleep 0.01
    done
    echo "server not healthy within 60 s" >&2
    exit 1
}

# start_server FSYNC [reuse]: starts godwit serve; a fresh data dir unless "reuse".
# Sets STARTUP_MS to the time from spawn until /healthz answered 200.
start_server() {
    local fsync=$1
    if [[ "${2:-}" != reuse ]]; then
        DATA=$BENCH_DIR/data-$fsync-$RANDOM
        PORT=$(free_port)
    fi
    local start
    start=$(now_ms)
    "$BIN" serve --data-dir "$DATA" --http "127.0.0.1:$PORT" --redis off --memcache off \
        --fsync "$fsync" 2>>"$DATA.log" &
    SERVER_PID=$!
    STARTUP_MS=$(wait_healthy "$start")
}

stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || echo "server exited with status $?"
    SERVER_PID=""
}

crash_server() {
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

rss_mib() { awk '/VmRSS/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

bench() {
    "$BIN" bench --url "http://127.0.0.1:$PORT" --connections "$CONNECTIONS" \
        --duration "$DURATION" --size "$SIZE" --batch "$BATCH" "$@"
}

log "machine"
echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)"
mkdir -p "$BENCH_DIR"
echo "scratch dir: $BENCH_DIR ($(df -h --output=source,fstype "$BENCH_DIR" | tail -1 | xargs))"

log "build"
(cd "$ROOT" && cargo build --release -p godwit)

log "disk: bare O_DSYNC 512 B writes (dd oflag=dsync, 2000 writes)"
DD_OUT=$(dd if=/dev/zero of="$BENCH_DIR/dd-test" bs=512 count=2000 oflag=dsync 2>&1 | tail -1)
echo "$DD_OUT"
echo "$DD_OUT" | awk -F, '{ gsub(/ s/, "", $3); printf "= %.0f synced writes/s\n", 2000 / $3 }'
rm -f "$BENCH_DIR/dd-test"

for fsync in always never; do
    log "godwit --fsync $fsync: push, batch, take ($CONNECTIONS connections, ${DURATION}s each)"
    start_server "$fsync"
    bench --scenario push
    bench --scenario batch
    bench --scenario take --messages 200000
    if command -v wrk >/dev/null; then
        # wrk is lighter than the Rust load generator, and /healthz (no storage, same
        # HTTP stack and middleware) is the ceiling the push path is compared with.
        printf 'body = string.rep("x", %d)\nwrk.method = "POST"\nwrk.body = body\n' "$SIZE" \
            >"$BENCH_DIR/post.lua"
        for conns in "$CONNECTIONS" 64; do
            echo "wrk, $conns connections, GET /healthz (no storage):"
            wrk -t2 -c"$conns" -d"${DURATION}s" "http://127.0.0.1:$PORT/healthz" | grep -E 'Requests/sec'
            echo "wrk, $conns connections, POST one $SIZE B message (acknowledged):"
            wrk -t2 -c"$conns" -d"${DURATION}s" -s "$BENCH_DIR/post.lua" \
                "http://127.0.0.1:$PORT/v1/queues/wrk-$fsync/messages" | grep -E 'Latency|Requests/sec'
        done
    fi
    stop_server
done

log "backlog: $BACKLOG x $SIZE B, --fsync always"
start_server always
echo "startup (empty data dir): ${STARTUP_MS} ms; idle RSS: $(rss_mib)"
BATCH=500 bench --scenario backlog --messages "$BACKLOG" --pid "$SERVER_PID"
echo "data dir size: $(du -sh "$DATA" | cut -f1)"
stop_server
start_server always reuse
echo "restart after SIGTERM with the backlog: ${STARTUP_MS} ms to /healthz 200; RSS: $(rss_mib)"
curl -s "http://127.0.0.1:$PORT/v1/queues" | head -c 300
echo
crash_server
start_server always reuse
echo "restart after SIGKILL with the backlog: ${STARTUP_MS} ms to /healthz 200; RSS: $(rss_mib)"
stop_server

if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    for mode in "appendfsync always" "appendfsync everysec" "no persistence"; do
        log "redis reference: LPUSH/RPOP, $CONNECTIONS clients, $SIZE B values ($mode)"
        rport=$(free_port)
        rdir=$BENCH_DIR/redis-$RANDOM
        mkdir -p "$rdir"
        case $mode in
        "no persistence") persist=(--appendonly no --save '') ;;
        *) persist=(--appendonly yes --${mode% *} "${mode#* }" --save '') ;;
        esac
        redis-server --port "$rport" --dir "$rdir" --daemonize no "${persist[@]}" \
            >"$rdir/log" 2>&1 &
        rpid=$!
        for _ in $(seq 1 500); do
            redis-cli -p "$rport" ping >/dev/null 2>&1 && break
            sleep 0.01
        done
        # Synced appends are slow: fewer requests keep that mode bounded.
        n=200000
        [[ $mode == "appendfsync always" ]] && n=20000
        # -q still draws progress with carriage returns; keep the final lines only.
        redis-benchmark -p "$rport" -c "$CONNECTIONS" -n "$n" -d "$SIZE" -t lpush,rpop -q |
            tr '\r' '\n' | grep 'requests per second'
        redis-benchmark -p "$rport" -c "$CONNECTIONS" -n 200000 -d "$SIZE" -t lpush -P 100 -q |
            tr '\r' '\n' | grep 'requests per second' | sed 's/^ */pipelined x100: /'
        kill -TERM "$rpid"
        wait "$rpid" 2>/dev/null || true
    done
else
    log "redis-server/redis-benchmark not installed: skipping the redis reference"
fi
