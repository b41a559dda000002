# Shared by features.sh and health.sh (sourced, not run): temp dir and
# process cleanup, free ports, readiness, CPU ticks, and one measured run of
# switchyard under wrk. Callers set SWITCHYARD, DURATION and CONNECTIONS.

TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A RPS CPU
# measure ROUND VARIANT CONFIG PORT [wrk args...]: runs switchyard with
# CONFIG (listening on PORT), warms up, measures DURATION seconds and adds
# the run's requests/s and CPU µs/request to RPS[VARIANT] and CPU[VARIANT].
# PATH_SUFFIX (default /) is the path requested.
measure() {
  local round=$1 v=$2 config=$3 p=$4; shift 4
  RUST_LOG=warn "$SWITCHYARD" run --config "$config" >/dev/null 2>&1 & local pid=$!; PIDS+=("$pid")
  wait_port "$p"
  wrk -t2 -c"$CONNECTIONS" -d2s "$@" http://127.0.0.1:"$p""${PATH_SUFFIX:-/}" >/dev/null   # warm-up
  local t0 t1 out reqs rps cpu non2xx
  t0=$(ticks "$pid")
  out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "$@" http://127.0.0.1:"$p""${PATH_SUFFIX:-/}")
  t1=$(ticks "$pid")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  cpu=$(python3 -c "print(round(($t1-$t0)/$HZ*1e6/$reqs,1))")
  RPS[$v]+="$rps "; CPU[$v]+="$cpu "
  echo "round $round $v: $rps req/s, $cpu us/req, non-2xx ${non2xx:-0}" >&2
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# report BASELINE VARIANT...: a Markdown table of medians, ratios to BASELINE.
report() {
  local base_name=$1; shift
  local base m c
  echo "| variant | req/s median | CPU µs/req median | vs $base_name (req/s) |"
  echo "| --- | ---: | ---: | ---: |"
  base=$(echo "${RPS[$base_name]}" | median)
  for v in "$@"; do
    m=$(echo "${RPS[$v]}" | median); c=$(echo "${CPU[$v]}" | median)
    echo "| $v | $m | $c | $(python3 -c "print(round($m/$base,3))") |"
  done
}
