#!/usr/bin/env bash
# httpmq's own speed script (`testbench.speed(n)`, spec 5.2) against Godwit, as reported
# in docs/benchmarks.md next to the original's 525 operations/s.
#
# Builds the release binary (unless BIN is given), then for --fsync never and always starts
# `godwit serve` in a fresh temporary data directory with the dialect on its own listener
# (`--httpmq-listen`, a free loopback port) and runs the original's loop with a small
# Python client over one keep-alive connection, as the original's driver did:
# subscribe u1…u4 to t1; then N times: subscribe u4 again (a no-op), publish str(i), and
# each of u1…u4 fetches it, checked to be exactly str(i). It prints elapsed seconds and
# N*5/elapsed operations/s (the original's formula: the re-subscribe is not counted, the
# publish and the four fetches are), then the same with CLIENTS such loops at once, each
# on its own topic.
#
#   scripts/httpmq.sh [BIN]    (BIN defaults to a fresh release build's target/release/godwit)
#
# Environment: N (iterations per loop, default 2000; the original ran 100), CLIENTS (4).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-2000}
CLIENTS=${CLIENTS:-4}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${1:-}

work=$(mktemp -d "${TMPDIR:-/tmp}/godwit-httpmq.XXXXXX")
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

cat >"$work/speed.py" <<'EOF_PY'
import http.client, sys, threading, time

host, port, n, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def call(conn, method, path, body=None):
    conn.request(method, path, body=body)
    resp = conn.getresponse()
    return resp.status, resp.read()

def speed(topic, errors):
    conn = http.client.HTTPConnection(host, port)
    users = ["u1", "u2", "u3", "u4"]
    for u in users:
        assert call(conn, "POST", f"/{topic}/{u}")[0] == 200
    for i in range(n):
        assert call(conn, "POST", f"/{topic}/u4") == (200, b"Subscription succeeded")
        assert call(conn, "POST", f"/{topic}", str(i).encode())[0] == 200
        for u in users:
            got = call(conn, "GET", f"/{topic}/{u}")
            if got != (200, str(i).encode()):
                errors.append(f"{topic}/{u} #{i}: {got}")
                return
    conn.close()

for k in (1, clients):
    errors = []
    threads = [threading.Thread(target=speed, args=(f"t{k}-{c}", errors)) for c in range(k)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        sys.exit("wrong reply: " + errors[0])
    print(f"{k}\t{n}\t{elapsed:.2f}\t{k * n * 5 / elapsed:.0f}")
EOF_PY

printf 'fsync\tclients\tn\telapsed_s\toperations/s\n'
for fsync in never always; do
    port=$(free_port)
    own=$(free_port)
    "$BIN" serve --data-dir "$work/data-$fsync" --http "127.0.0.1:$port" --redis off \
        --memcache off --fsync "$fsync" --httpmq-listen "127.0.0.1:$own" \
        >"$work/server-$fsync.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
        sleep 0.05
    done
    if ! curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; then
        echo "server (--fsync $fsync) not healthy; log:" >&2
        cat "$work/server-$fsync.log" >&2
        exit 1
    fi
    python3 "$work/speed.py" 127.0.0.1 "$own" "$N" "$CLIENTS" | sed "s/^/$fsync\t/"
    kill -TERM "$pid"
    wait "$pid" || echo "server (--fsync $fsync) exited with status $?" >&2
    pid=""
done
