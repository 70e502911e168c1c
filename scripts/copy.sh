#!/usr/bin/env bash
# Measures `godwit copy` of a generated ~100 MB file (empty, short, long and over-1-MiB
# lines, non-UTF-8 bytes, no trailing newline) under `--fsync never` and `--fsync always`,
# checks the copy is identical, and prints lines/s and MB/s for each.
#
#   scripts/copy.sh [BIN]        (default: target/release/godwit)
#
# Environment: MB (100), POLICIES ("never always").
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/godwit}
MB=${MB:-100}
POLICIES=${POLICIES:-never always}
[[ -x $BIN ]] || { echo "no binary at $BIN (cargo build --release -p godwit)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/godwit-copy.XXXXXX")
pid=""
trap '[[ -n $pid ]] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
python3 - "$work/in" "$MB" <<'PY'
import random, sys
path, mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(14)
pool = bytes(rng.randrange(32, 127) for _ in range(1 << 16)) * 64
junk = bytes(b for b in range(256) if b != 10)
target, written = mb * 1_000_000, 0
with open(path, "wb") as f:
    while written < target:
        k = rng.randrange(10000)
        n = 0 if k < 1000 else rng.randrange(200) if k < 9000 else rng.randrange(2000) if k < 9999 else 1_000_000 + rng.randrange(1_500_000)
        start = rng.randrange(len(pool) - n) if n < len(pool) else 0
        line = bytearray(pool[start:start + n])
        if n and k % 3 == 0:
            line[rng.randrange(n)] = junk[rng.randrange(len(junk))]
        line += b"\n"
        f.write(line)
        written += len(line)
    f.write(b"last line \xc3\x28 without newline")
PY
bytes=$(stat -c %s "$work/in")
echo "input: $bytes bytes, $(wc -l <"$work/in") newlines"
for policy in $POLICIES; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    rm -rf "$work/data" "$work/out"
    "$BIN" serve --data-dir "$work/data" --http "127.0.0.1:$port" --redis off --memcache off \
        --fsync "$policy" >"$work/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
    summary=$("$BIN" copy "$work/in" "$work/out" --server "http://127.0.0.1:$port" --json)
    cmp -s "$work/in" "$work/out" || { echo "fsync $policy: the copy differs" >&2; exit 1; }
    python3 -c '
import json, sys
s = json.loads(sys.argv[2])
print("fsync {:6}: {} lines, {} bytes in {:.2f} s: {:.0f} lines/s, {:.1f} MB/s (identical)".format(
    sys.argv[1], s["lines"], s["bytes"], s["seconds"], s["lines_per_sec"], s["mb_per_sec"]))' "$policy" "$summary"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
