#!/usr/bin/env bash
# What switchyard's own features cost: the same load against switchyard with
# metrics on (default), metrics off, and metrics plus an access log to a
# file, interleaved, reporting requests/s and proxy CPU per request.
# Loopback only, bounded; every process started is stopped on exit.
#
#   benches/load/features.sh            # 3 rounds of 10 s per variant
#   DURATION=5 REPEATS=2 benches/load/features.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SWITCHYARD=${SWITCHYARD:-target/release/switchyard}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
CONNECTIONS=${CONNECTIONS:-50}
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
[ -x "$SWITCHYARD" ] || cargo build --release
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

B1=$(port); B2=$(port)
"$SWITCHYARD" backend --listen 127.0.0.1:"$B1" >/dev/null 2>&1 & PIDS+=($!)
"$SWITCHYARD" backend --listen 127.0.0.1:"$B2" >/dev/null 2>&1 & PIDS+=($!)
wait_port "$B1"; wait_port "$B2"

variant_config() { # name listen admin
  local extra=""
  case "$1" in
    metrics-off) extra=$'[admin]\nmetrics = false\nlisten = "127.0.0.1:'"$3"'"' ;;
    access-log) extra="access_log = \"$TMP/access.log\""$'\n[admin]\nlisten = "127.0.0.1:'"$3"'"' ;;
    *) extra=$'[admin]\nlisten = "127.0.0.1:'"$3"'"' ;;
  esac
  printf '[server]\nlisten = "127.0.0.1:%s"\n%s\n[pools.blue]\nbackends = ["127.0.0.1:%s", "127.0.0.1:%s"]\n[[routes]]\nname = "r"\nsplit = { blue = 100 }\nsticky = { header = "X-User-ID" }\n' \
    "$2" "$extra" "$B1" "$B2"
}

declare -A RPS CPU
VARIANTS=(metrics-on metrics-off access-log)
for r in $(seq "$REPEATS"); do
  for v in "${VARIANTS[@]}"; do
    P=$(port); A=$(port)
    variant_config "$v" "$P" "$A" > "$TMP/$v.toml"
    RUST_LOG=warn "$SWITCHYARD" run --config "$TMP/$v.toml" >/dev/null 2>&1 & pid=$!; PIDS+=($pid)
    wait_port "$P"
    wrk -t2 -c"$CONNECTIONS" -d2s http://127.0.0.1:"$P"/ >/dev/null   # warm-up
    t0=$(ticks "$pid")
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -H 'X-User-ID: u1' http://127.0.0.1:"$P"/)
    t1=$(ticks "$pid")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    cpu=$(python3 -c "print(round(($t1-$t0)/$HZ*1e6/$reqs,1))")
    RPS[$v]+="$rps "; CPU[$v]+="$cpu "
    echo "round $r $v: $rps req/s, $cpu us/req" >&2
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| variant | req/s median | CPU µs/req median | vs metrics-on (req/s) |"
echo "| --- | ---: | ---: | ---: |"
base=$(echo "${RPS[metrics-on]}" | median)
for v in "${VARIANTS[@]}"; do
  m=$(echo "${RPS[$v]}" | median); c=$(echo "${CPU[$v]}" | median)
  echo "| $v | $m | $c | $(python3 -c "print(round($m/$base,3))") |"
done
