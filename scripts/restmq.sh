#!/usr/bin/env bash
# The RestMQ face under load, as reported in docs/benchmarks.md: RestMQ's own producer and
# consumer routes driven by wrk, and its Comet live consumers driven by a small Python
# client.
#
# Builds the release binary (unless BIN is given), then for --fsync never and always starts
# `godwit serve` in a fresh temporary data directory on a free loopback port and runs
#   - wrk, keep-alive, CONNS (10 and 50) connections, DURATION s each:
#     `POST /q/bench` with the form body `value=<SIZE bytes>`, then `GET /q/bench` (the
#     hard get) on the same queue topped up to PREFILL messages first (with native
#     `POST /v1/queues/bench/batch` requests), checked not to have run dry;
#   - Comet (`GET /c/<q>`), by the Python client below (RestMQ Comet is not in
#     `godwit bench`): publish-to-Comet latency (one consumer, RATE single
#     `POST /q/<q>`/s for DURATION s) and fan-out (CONSUMERS broadcast Comet consumers,
#     FANOUT messages posted by 4 keep-alive producers), every line checked in order;
# and prints one table of every row.
#
#   scripts/restmq.sh [BIN]    (BIN defaults to a fresh release build's target/release/godwit)
#
# Environment: DURATION (s per wrk row, default 5), CONNS ("10 50"), SIZE (100, value
# bytes), PREFILL (600000), THREADS (wrk threads, 2), RATE (1000), CONSUMERS (100),
# FANOUT (2000).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-5}
CONNS=${CONNS:-10 50}
SIZE=${SIZE:-100}
PREFILL=${PREFILL:-600000}
THREADS=${THREADS:-2}
RATE=${RATE:-1000}
CONSUMERS=${CONSUMERS:-100}
FANOUT=${FANOUT:-2000}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${1:-}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/godwit-restmq.XXXXXX")
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

value=$(printf 'x%.0s' $(seq "$SIZE"))
cat >"$work/post.lua" <<EOF
wrk.method = "POST"
wrk.body = "value=$value"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
EOF

# Tops queue bench up to PREFILL messages with native batches of 1000 (keep-alive).
cat >"$work/prefill.py" <<'EOF'
import http.client, json, sys
port, want, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
def length():
    c.request("GET", "/stats/bench")
    return json.loads(c.getresponse().read())["len"]
have = length()
batch = json.dumps({"messages": [{"body": "x" * size}] * 1000})
while have < want:
    c.request("POST", "/v1/queues/bench/batch?durability=written", batch,
              {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status in (200, 201), r.status
    have += 1000
print(length())
EOF

# RestMQ Comet: publish-to-Comet latency and fan-out; prints table rows.
cat >"$work/comet.py" <<'EOF'
import asyncio, sys, time

PORT = int(sys.argv[2])
MODE = sys.argv[1]

async def open_conn():
    return await asyncio.open_connection("127.0.0.1", PORT)

async def comet(queue, sink, ready):
    """One Comet consumer: decodes the chunked body and records (key id, arrival)."""
    r, w = await open_conn()
    w.write(f"GET /c/{queue} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
    head = await r.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"chunked" in head.lower() and b"text/plain" in head, head
    ready.set_result(None)
    buf = b""
    while True:
        size = int((await r.readline()).strip(), 16)
        if size == 0:
            return
        buf += await r.readexactly(size)
        await r.readexactly(2)
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            now = time.perf_counter()
            # {"key": "q:N", "value": "..."}
            n = int(line.split(b'"', 4)[3].rsplit(b":", 1)[1])
            sink.append((n, now))

async def post(r, w, queue, body):
    w.write((f"POST /q/{queue} HTTP/1.1\r\nHost: b\r\nContent-Type: "
             f"application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
             ).encode() + body)
    head = await r.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    reply = await r.readexactly(length)
    return int(reply.strip().rsplit(b":", 1)[1])

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] * 1000

async def start_consumers(queue, n):
    sinks, tasks, readies = [], [], []
    for _ in range(n):
        sink, ready = [], asyncio.get_running_loop().create_future()
        tasks.append(asyncio.create_task(comet(queue, sink, ready)))
        sinks.append(sink); readies.append(ready)
    await asyncio.gather(*readies)
    return sinks, tasks

async def latency(rate, duration, size):
    sinks, tasks = await start_consumers("lat", 1)
    r, w = await open_conn()
    sent = {}
    body = b"value=" + b"y" * size
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < duration:
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t = time.perf_counter()
        n = await post(r, w, "lat", body)
        sent[n] = t
        i += 1
    deadline = time.perf_counter() + 10
    while len(sinks[0]) < len(sent) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    got = sinks[0]
    errors = len(sent) - len(got) + sum(1 for a, b in zip(got, got[1:]) if b[0] <= a[0])
    lat = [t - sent[n] for n, t in got if n in sent]
    secs = time.perf_counter() - start
    print(f"comet-latency (1 consumer, {rate}/s) | 1 | {len(got)} | {len(got) / secs:.0f} "
          f"| {pct(lat, 50):.2f} | {pct(lat, 99):.2f} | {errors}")
    for t in tasks: t.cancel()

async def fanout(consumers, messages, size, producers=4):
    sinks, tasks = await start_consumers("fan", consumers)
    sent = {}
    body = b"value=" + b"z" * size
    async def producer(k):
        r, w = await open_conn()
        for _ in range(messages // producers):
            t = time.perf_counter()
            sent[await post(r, w, "fan", body)] = t
    start = time.perf_counter()
    await asyncio.gather(*(producer(k) for k in range(producers)))
    pushed = time.perf_counter() - start
    total = len(sent) * consumers
    deadline = time.perf_counter() + 30
    while sum(map(len, sinks)) < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    last = max((s[-1][1] for s in sinks if s), default=start)
    got = sum(map(len, sinks))
    want = sorted(sent)
    errors = total - got + sum(1 for s in sinks if [n for n, _ in s] != want[: len(s)])
    lat = [t - sent[n] for s in sinks for n, t in s]
    print(f"comet-fanout push ({producers} producers) | {producers} | {len(sent)} "
          f"| {len(sent) / pushed:.0f} | - | - | 0")
    print(f"comet-fanout recv ({consumers} consumers) | {consumers} | {got} "
          f"| {got / (last - start):.0f} | {pct(lat, 50):.2f} | {pct(lat, 99):.2f} | {errors}")
    for t in tasks: t.cancel()

if MODE == "latency":
    asyncio.run(latency(int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])))
else:
    asyncio.run(fanout(int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
EOF

# wrk's "50%   1.23ms" → milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.2f", n }'
}

# One wrk row: label, connections, then wrk's arguments after the options.
wrk_row() {
    local label=$1 conns=$2
    shift 2
    wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --latency "$@" >"$work/wrk.out" 2>&1
    cat "$work/wrk.out" >&2
    local rps p50 p99 errors
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$work/wrk.out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$work/wrk.out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$work/wrk.out")")
    errors=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) n += $i } END { print n + 0 }' "$work/wrk.out")
    printf '%s | %s | %s | %s | %s | %s | %s\n' "$label" "$conns" \
        "$(awk '/requests in/ { print $1 }' "$work/wrk.out")" "$rps" "$p50" "$p99" "$errors"
}

echo "$(nproc) cores, $(uname -sr); wrk -t$THREADS, keep-alive, ${DURATION}s per row," \
    "$SIZE B values; Comet: $RATE posts/s latency, $CONSUMERS consumers x $FANOUT messages"

for fsync in never always; do
    port=$(free_port)
    url=http://127.0.0.1:$port
    "$BIN" serve --data-dir "$work/data-$fsync" --http "127.0.0.1:$port" --redis off \
        --memcache off --fsync "$fsync" >"$work/server-$fsync.log" 2>&1 &
    pid=$!
    healthy=""
    for _ in $(seq 600); do
        if curl -sf -o /dev/null "$url/healthz"; then
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
    for c in $CONNS; do
        echo "== --fsync $fsync: POST /q/bench, $c connections" >&2
        wrk_row "POST /q/bench" "$c" -s "$work/post.lua" "$url/q/bench" |
            sed "s/^/$fsync | /" >>"$work/rows"
    done
    for c in $CONNS; do
        echo "== --fsync $fsync: GET /q/bench, $c connections (prefill)" >&2
        python3 "$work/prefill.py" "$port" "$PREFILL" "$SIZE" >&2
        wrk_row "GET /q/bench" "$c" "$url/q/bench" | sed "s/^/$fsync | /" >>"$work/rows"
        left=$(curl -s "$url/stats/bench" | python3 -c 'import json,sys; print(json.load(sys.stdin)["len"])')
        echo "messages left in bench: $left" >&2
        if [[ $left -eq 0 ]]; then
            echo "GET /q/bench ran dry (some answers were 204): raise PREFILL" >&2
            exit 1
        fi
    done
    echo "== --fsync $fsync: Comet latency and fan-out" >&2
    python3 "$work/comet.py" latency "$port" "$RATE" "$DURATION" "$SIZE" |
        sed "s/^/$fsync | /" >>"$work/rows"
    python3 "$work/comet.py" fanout "$port" "$CONSUMERS" "$FANOUT" "$SIZE" |
        sed "s/^/$fsync | /" >>"$work/rows"
    kill -TERM "$pid"
    wait "$pid" || echo "server (--fsync $fsync) exited with status $?" >&2
    pid=""
done

echo
echo "| fsync | row | conns | requests/messages | req/s (msg/s) | p50 ms | p99 ms | errors |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
sed 's/^/| /; s/$/ |/' "$work/rows"
