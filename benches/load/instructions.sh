#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: deterministic
# (repeats within a fraction of a percent) and independent of what else the
# machine is doing, so it is the A/B measure for a data-plane change on a
# shared machine. wrk ratios against nginx (run.sh) need a quiet machine.
#
#   benches/load/instructions.sh [BINARY...]     # default target/release/switchyard
#   N1=200 N2=1200 CONNS=4 benches/load/instructions.sh /tmp/before target/release/switchyard
#
# For each binary: three demo backends (run natively), then the proxy under
# valgrind --tool=callgrind with one worker, health checks off, metrics on,
# one round-robin pool and one route; N1 and then N2 requests from
# requests.py (keep-alive, CONNS connections). Reported: (Ir(N2) - Ir(N1)) /
# (N2 - N1) for the worker thread alone (the data plane) and for the whole
# process (adds the control runtime's timers, which scale with wall time,
# not requests). ACCESS_LOG=1 adds an access log to a file.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
N1=${N1:-200}
N2=${N2:-1200}
CONNS=${CONNS:-1}
ACCESS_LOG=${ACCESS_LOG:-0}
[ $# -gt 0 ] || set -- target/release/switchyard
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_http PORT SECONDS: until a request through PORT answers 200.
wait_http() {
  local deadline=$((SECONDS + $2))
  until python3 benches/load/requests.py 127.0.0.1 "$1" 1 >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "port $1 never answered 200" >&2; return 1; }
    sleep 0.2
  done
}

B1=$(port); B2=$(port); B3=$(port)
for b in "$B1" "$B2" "$B3"; do
  "$1" backend --listen 127.0.0.1:"$b" >/dev/null 2>&1 & PIDS+=($!)
  wait_http "$b" 20
done

# ir FILE: the instruction total of a callgrind output file.
ir() { awk '/^(summary|totals):/ {print $2; exit}' "$1"; }

# count BINARY N: runs the proxy under callgrind for N requests (plus the
# readiness request); prints "worker_ir total_ir".
count() {
  local bin=$1 n=$2 p m log=""
  p=$(port); m=$(port)
  [ "$ACCESS_LOG" = 1 ] && log="access_log = \"$TMP/access.log\""
  printf '[server]\nlisten = "127.0.0.1:%s"\nworkers = 1\n%s\n[admin]\nlisten = "127.0.0.1:%s"\n[health]\nenabled = false\n[pools.blue]\nbackends = ["127.0.0.1:%s", "127.0.0.1:%s", "127.0.0.1:%s"]\nbalance = "round_robin"\n[[routes]]\nname = "all"\nsplit = { blue = 100 }\n' \
    "$p" "$log" "$m" "$B1" "$B2" "$B3" > "$TMP/proxy.toml"
  rm -f "$TMP"/cg.out*
  RUST_LOG=warn valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$TMP/cg.out" \
    "$bin" run --config "$TMP/proxy.toml" >"$TMP/proxy.log" 2>&1 & local pid=$!
  PIDS+=("$pid")
  wait_http "$p" 120
  python3 benches/load/requests.py 127.0.0.1 "$p" "$n" "$CONNS"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  local worker total=0 f
  # One file per thread; the worker thread is named switchyard-w0, but
  # callgrind names files by thread number: the worker is the file whose
  # functions include the proxy's request handler.
  worker=$(grep -l 'Proxy::handle\|proxy::Proxy' "$TMP"/cg.out-* | head -1)
  for f in "$TMP"/cg.out-*; do total=$((total + $(ir "$f"))); done
  echo "$(ir "$worker") $total"
}

echo "| binary | worker Ir/request | process Ir/request |"
echo "| --- | ---: | ---: |"
for bin in "$@"; do
  read -r w1 t1 < <(count "$bin" "$N1")
  read -r w2 t2 < <(count "$bin" "$N2")
  d=$((N2 - N1))
  echo "| $bin | $(( (w2 - w1) / d )) | $(( (t2 - t1) / d )) |"
done
