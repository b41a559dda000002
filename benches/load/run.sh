#!/usr/bin/env bash
# Load comparison: switchyard against nginx and haproxy, with wrk straight at a
# backend as the ceiling. Loopback only, bounded in time, and every process it
# starts is stopped on exit (also on Ctrl-C or an error). See README.md here.
#
#   benches/load/run.sh                       # defaults: 3 interleaved rounds of 10 s
#   DURATION=3 REPEATS=1 benches/load/run.sh  # quick look
#   H2=1 IDLE=1 benches/load/run.sh           # plus h2c and idle-connection memory
#
# Environment (defaults in brackets):
#   SWITCHYARD   proxy binary [target/release/switchyard]
#   BACKEND      switchyard | nginx [switchyard if `$SWITCHYARD backend` starts, else nginx]
#   CONTENDERS   which, in round order ["direct nginx haproxy switchyard"]; switchyard_hyper: server.http1 = "hyper"
#   DURATION     seconds (or 10s / 1m) per wrk run [10]
#   CONNECTIONS  wrk connections [50]     THREADS  wrk threads [2]
#   REPEATS      interleaved rounds [3]   WARMUP   seconds per contender before round 1 [2]
#   H2=1         h2load -c50 -m10 -n $H2_REQUESTS [200000] per contender, h2c prior knowledge
#   IDLE=1       memory per idle keep-alive connection, $IDLE_CONNS [5000] connections
#   OUT_DIR      results [target/bench-load]   NO_INSTALL=1  never run apt-get
#   KEEP_TMP=1   keep the temp dir (configs, logs) for inspection
#   WAIT_IDLE=N  first wait up to N seconds for the machine to be under 15% busy [0]
#   SWITCHYARD_LOG  RUST_LOG for switchyard (proxy and backends) [warn]
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

SWITCHYARD=${SWITCHYARD:-$ROOT/target/release/switchyard}
case $SWITCHYARD in /*) ;; */*) SWITCHYARD=$ROOT/$SWITCHYARD ;; esac
BACKEND_REQ=${BACKEND:-auto}
CONTENDERS=${CONTENDERS:-direct nginx haproxy switchyard}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
REPEATS=${REPEATS:-3}
WARMUP=${WARMUP:-2}
H2=${H2:-0}
H2_REQUESTS=${H2_REQUESTS:-200000}
IDLE=${IDLE:-0}
IDLE_CONNS=${IDLE_CONNS:-5000}
OUT_DIR=${OUT_DIR:-$ROOT/target/bench-load}
READY_TIMEOUT=${READY_TIMEOUT:-15}
# nginx and haproxy log nothing per request here; keep switchyard to warnings too.
SWITCHYARD_LOG=${SWITCHYARD_LOG:-warn}

case $BACKEND_REQ in
  auto | switchyard | nginx) ;;
  *) echo "BACKEND must be switchyard or nginx" >&2; exit 64 ;;
esac
case $DURATION in
  *[!0-9]*) ;;
  *) DURATION=${DURATION}s ;;
esac
case $DURATION in
  *m) DUR_S=$(( ${DURATION%m} * 60 )) ;;
  *s) DUR_S=${DURATION%s} ;;
  *) echo "DURATION must look like 10, 10s or 1m" >&2; exit 64 ;;
esac
case $WARMUP in *s) WARMUP=${WARMUP%s} ;; esac

CLK_TCK=$(getconf CLK_TCK)
SUMMARIZE=(python3 "$HERE/summarize.py")
RESULTS=$OUT_DIR/results.jsonl
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)-$$

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------ cleanup
PIDS=()
TMP=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  local p all=() c
  # Collect whole trees first (nginx workers, children of anything we started),
  # then TERM, wait a bounded time, then KILL what is left. Only our own PIDs.
  for p in "${PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || continue
    for c in $(tree_pids "$p"); do all+=("$c"); done
  done
  if ((${#all[@]})); then
    log "stopping ${#all[@]} process(es) we started"
    kill -TERM "${all[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + 5))
    while ((SECONDS < deadline)); do
      local alive=0
      for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      ((alive)) || break
      sleep 0.1
    done
    for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && { kill -KILL "$p" 2>/dev/null || true; }; done
    wait 2>/dev/null || true
  fi
  if [[ -n $TMP && -d $TMP ]]; then
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ /proc helpers
# The process and all its descendants (nginx master + workers).
tree_pids() {
  local out=("$1") queue=("$1") p c
  while ((${#queue[@]})); do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    for c in $(pgrep -P "$p" 2>/dev/null || true); do
      out+=("$c")
      queue+=("$c")
    done
  done
  echo "${out[@]}"
}

# utime+stime (+ cutime+cstime of reaped children) over a process tree, in
# clock ticks. /proc/PID/stat of a process already sums all of its threads.
# cpu_user_sys prints "USER SYS"; cpu_ticks prints their sum.
cpu_user_sys() {
  local user=0 sys=0 p line rest
  local -a f
  for p in $(tree_pids "$1"); do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    rest=${line##*) }   # the command name may contain spaces and parentheses
    read -ra f <<<"$rest"
    # After the name: f[0]=state(field 3) ... f[11]=utime(14) f[12]=stime(15)
    # f[13]=cutime(16) f[14]=cstime(17).
    user=$((user + f[11] + f[13]))
    sys=$((sys + f[12] + f[14]))
  done
  echo "$user $sys"
}
cpu_ticks() {
  local u s
  read -r u s <<<"$(cpu_user_sys "$1")"
  echo $((u + s))
}

# Sum of a /proc/PID/status field (kB) over a process tree: VmHWM or VmRSS.
mem_kb() {
  local field=$1 total=0 p v
  for p in $(tree_pids "$2"); do
    v=$(awk -v k="$field:" '$1 == k { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# "busy idle" jiffies of the whole machine, for a saturation figure per run.
machine_jiffies() {
  local -a f
  read -ra f </proc/stat
  # cpu user nice system idle iowait irq softirq steal
  echo "$((f[1] + f[2] + f[3] + f[6] + f[7] + f[8])) $((f[4] + f[5]))"
}

# TCP connections opened on the whole machine so far (ActiveOpens). Over a run,
# wrk opens CONNECTIONS; anything beyond is the proxy (re)connecting upstream.
tcp_active_opens() {
  awk '$1 == "Tcp:" { if (!hdr) { for (i = 2; i <= NF; i++) if ($i == "ActiveOpens") col = i; hdr = 1 }
    else { print $col; exit } }' /proc/net/snmp
}

# ------------------------------------------------------------------ setup helpers
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# start_bg NAME CMD... : run in the background, log to $TMP/NAME.log, remember the
# PID (in PIDS for cleanup, and in $LAST_PID). Must not be called in $(...).
# setsid: a Ctrl-C in the terminal reaches only this script and the load tool,
# and the servers are stopped in order by cleanup (not half-killed by the signal).
LAST_PID=
start_bg() {
  local name=$1
  shift
  setsid "$@" >"$TMP/$name.log" 2>&1 </dev/null &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# forget_pid PID : a process we waited for is gone; never signal its PID again
# (it may be reused by an unrelated process).
forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# run_tool OUT SECONDS CMD... : run a load tool with a hard time bound, output to
# OUT, and wait for it with the `wait` builtin, which a trapped Ctrl-C interrupts
# at once (a plain foreground command would let bash skip the trap when the tool
# itself exits 0 on SIGINT, as wrk does). Returns the tool's status.
run_tool() {
  local outfile=$1 bound=$2 pid rc=0
  shift 2
  timeout --kill-after=5 "$bound" "$@" >"$outfile" 2>&1 </dev/null &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}

# wait_http PID URL : poll until URL answers 200, the process dies, or the deadline.
# On failure WAIT_WHY says which.
WAIT_WHY=
wait_http() {
  local pid=$1 url=$2 deadline=$((SECONDS + READY_TIMEOUT)) code=000 rc
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rc=0
      wait "$pid" 2>/dev/null || rc=$?
      WAIT_WHY="it exited with status $rc"
      return 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null || true)
    [[ $code == 200 ]] && return 0
    sleep 0.1
  done
  WAIT_WHY="no 200 from $url within ${READY_TIMEOUT}s (last status ${code:-none})"
  return 1
}

# stop_pid PID : TERM a process tree we started, wait (bounded), then KILL.
stop_pid() {
  local all p deadline=$((SECONDS + 5))
  all=$(tree_pids "$1")
  # shellcheck disable=SC2086
  kill -TERM $all 2>/dev/null || true
  while ((SECONDS < deadline)); do
    local alive=0
    for p in $all; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in $all; do kill -0 "$p" 2>/dev/null && { kill -KILL "$p" 2>/dev/null || true; }; done
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

record() { "${SUMMARIZE[@]}" record "$RESULTS" "run_id=$RUN_ID" "$@"; }
note() {
  log "note: $*"
  record type=note "text=$*"
}

install_peers() {
  local missing=() need
  command -v nginx >/dev/null || missing+=(nginx)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v h2load >/dev/null || missing+=(nghttp2-client)
  command -v curl >/dev/null || missing+=(curl)
  command -v pgrep >/dev/null || missing+=(procps)
  command -v ss >/dev/null || missing+=(iproute2)
  ((${#missing[@]})) || return 0
  [[ ${NO_INSTALL:-0} == 1 ]] && die "missing: ${missing[*]} (NO_INSTALL=1)"
  ((EUID == 0)) || die "missing: ${missing[*]}; run as root or install them"
  log "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  for need in "${missing[@]}"; do
    if [[ $need == nginx ]]; then
      # nginx-light where the release still has it (Debian 12), else nginx.
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
    else
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$need" >/dev/null
    fi
  done
  # Debian may start a system nginx/haproxy service on install; it is not ours
  # and listens on fixed ports we never use, so we leave it alone.
}

# ------------------------------------------------------------------ backends
BACKEND_PIDS=()
BACKEND_PORTS=()

# start_backend KIND I : start backend I (0..2) of KIND, set BACKEND_PIDS[I];
# returns non-zero (WAIT_WHY says why) when it does not answer 200 on /health.
start_backend() {
  local kind=$1 i=$2 dir
  if [[ $kind == switchyard ]]; then
    [[ -x $SWITCHYARD ]] || { WAIT_WHY="$SWITCHYARD not found"; return 1; }
    start_bg "backend$i" env RUST_LOG="$SWITCHYARD_LOG" "$SWITCHYARD" backend --listen "127.0.0.1:${BACKEND_PORTS[i]}" --pool blue
  else
    dir=$TMP/nginx-backend$i
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections $NGINX_WORKER_CONNECTIONS; }
http {
  access_log off;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:${BACKEND_PORTS[i]};
    default_type application/json;
    location / { return 200 '{"ok":true}'; }
  }
}
EOF
    start_bg "backend$i" nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
  fi
  BACKEND_PIDS[i]=$LAST_PID
  if ! wait_http "$LAST_PID" "http://127.0.0.1:${BACKEND_PORTS[i]}/health"; then
    log "$kind backend $i did not come up ($WAIT_WHY); its log:"
    tail -n 5 "$TMP/backend$i.log" >&2 || true
    return 1
  fi
}

start_backends() { # KIND
  local i
  for i in 0 1 2; do start_backend "$1" "$i" || return 1; done
}

stop_backends() {
  local p
  for p in "${BACKEND_PIDS[@]}"; do stop_pid "$p"; done
  BACKEND_PIDS=()
}

# ------------------------------------------------------------------ contenders
declare -A PID_OF PORT_OF H2PORT_OF
ACTIVE=()

start_direct() {
  PID_OF[direct]=${BACKEND_PIDS[0]}
  PORT_OF[direct]=${BACKEND_PORTS[0]}
  H2PORT_OF[direct]=${BACKEND_PORTS[0]}
}

NGINX_H2_MODE=none
nginx_h2_mode() {
  # nginx >= 1.25.1 has `http2 on;`; older ones only `listen ... http2`, which
  # makes that port h2c-only (prior knowledge), so h2c always gets its own port.
  local dir=$TMP/nginx-probe port=$1
  mkdir -p "$dir"
  local try
  for try in "on" "listen"; do
    {
      echo "pid $dir/nginx.pid; error_log $dir/error.log; events {}"
      echo "http { access_log off; server {"
      if [[ $try == on ]]; then
        echo "listen 127.0.0.1:$port; http2 on;"
      else
        echo "listen 127.0.0.1:$port http2;"
      fi
      echo "return 200; } }"
    } >"$dir/nginx.conf"
    if nginx -t -q -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" >/dev/null 2>&1; then
      NGINX_H2_MODE=$try
      return
    fi
  done
}

start_nginx() {
  local dir=$TMP/nginx-proxy port=${PORT_OF[nginx]} h2port=${H2PORT_OF[nginx]} h2listen
  mkdir -p "$dir"
  nginx_h2_mode "$h2port"
  case $NGINX_H2_MODE in
    on) h2listen="listen 127.0.0.1:$h2port; http2 on;" ;;
    listen) h2listen="listen 127.0.0.1:$h2port http2;" ;;
    *) h2listen="" ;;
  esac
  cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections $NGINX_WORKER_CONNECTIONS; }
http {
  access_log off;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  # The default of 1000 requests per client connection would make wrk reconnect
  # during the run; the other contenders have no such limit.
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  upstream blue {
    server 127.0.0.1:${BACKEND_PORTS[0]};
    server 127.0.0.1:${BACKEND_PORTS[1]};
    server 127.0.0.1:${BACKEND_PORTS[2]};
    keepalive 256;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://blue;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
EOF
  if [[ -n $h2listen ]]; then
    cat >>"$dir/nginx.conf" <<EOF
  server {
    $h2listen
    location / {
      proxy_pass http://blue;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
EOF
  fi
  echo "}" >>"$dir/nginx.conf"
  start_bg nginx nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
  PID_OF[nginx]=$LAST_PID
  [[ -n $h2listen ]] || H2PORT_OF[nginx]=""
  wait_http "$LAST_PID" "http://127.0.0.1:$port/" || { tail -n 5 "$dir/error.log" >&2 || true; return 1; }
}

start_haproxy() {
  local dir=$TMP/haproxy port=${PORT_OF[haproxy]} h2port=${H2PORT_OF[haproxy]}
  mkdir -p "$dir"
  cat >"$dir/haproxy.cfg" <<EOF
global
  nbthread 2
  # haproxy wants 2 descriptors per connection plus some; fit under ulimit -n.
  maxconn $(( ($(ulimit -n) - 200) / 2 ))
  # no 'log' line: nothing is logged

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s

frontend fe
  bind 127.0.0.1:$port
  # h2c with prior knowledge on its own port, like nginx (the plain port may
  # also detect the HTTP/2 preface; a separate bind keeps the two comparable).
  bind 127.0.0.1:$h2port proto h2
  default_backend blue

backend blue
  balance roundrobin
  server b0 127.0.0.1:${BACKEND_PORTS[0]}
  server b1 127.0.0.1:${BACKEND_PORTS[1]}
  server b2 127.0.0.1:${BACKEND_PORTS[2]}
EOF
  start_bg haproxy haproxy -db -f "$dir/haproxy.cfg"
  PID_OF[haproxy]=$LAST_PID
  wait_http "$LAST_PID" "http://127.0.0.1:$port/" || { tail -n 5 "$TMP/haproxy.log" >&2 || true; return 1; }
}

# start_switchyard_as NAME HTTP1 ADMIN_PORT: switchyard with `server.http1 = HTTP1`
# ("lean" or "hyper") as contender NAME.
start_switchyard_as() {
  local name=$1 http1=$2 admin=$3 dir=$TMP/$1 port=${PORT_OF[$1]}
  mkdir -p "$dir"
  if [[ ! -x $SWITCHYARD ]]; then
    note "$name skipped: $SWITCHYARD not found (build it with cargo build --release)"
    return 1
  fi
  cat >"$dir/switchyard.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
http1 = "$http1"

[admin]
listen = "127.0.0.1:$admin"

[pools.blue]
backends = ["127.0.0.1:${BACKEND_PORTS[0]}", "127.0.0.1:${BACKEND_PORTS[1]}", "127.0.0.1:${BACKEND_PORTS[2]}"]
balance = "round_robin"

[[routes]]
name = "all"
split = { blue = 100 }
EOF
  start_bg "$name" env RUST_LOG="$SWITCHYARD_LOG" "$SWITCHYARD" run --config "$dir/switchyard.toml"
  PID_OF[$name]=$LAST_PID
  if ! wait_http "$LAST_PID" "http://127.0.0.1:$port/"; then
    local why
    why=$(tail -n 3 "$TMP/$name.log" 2>/dev/null | tr '\n' ' ' | cut -c1-300)
    note "$name skipped: \`switchyard run\` did not come up: $WAIT_WHY; log: ${why:-empty}"
    stop_pid "$LAST_PID"
    return 1
  fi
  H2PORT_OF[$name]=$port
}

# The default HTTP/1 path (SWITCHYARD_HTTP1 overrides it), and the hyper one.
start_switchyard() { start_switchyard_as switchyard "${SWITCHYARD_HTTP1:-lean}" "$SWITCHYARD_ADMIN_PORT"; }
start_switchyard_hyper() { start_switchyard_as switchyard_hyper hyper "$SWITCHYARD_HYPER_ADMIN_PORT"; }

# ------------------------------------------------------------------ measurements
run_wrk() { # contender round
  local c=$1 round=$2 pid=${PID_OF[$1]} port=${PORT_OF[$1]}
  local raw=$OUT_DIR/raw/$RUN_ID/wrk-$c-r$round.txt
  local u0 s0 u1 s1 b0 b1 m0 m1 o0 o1 rc=0
  read -r u0 s0 <<<"$(cpu_user_sys "$pid")"
  b0=$(backends_ticks)
  m0=$(machine_jiffies)
  o0=$(tcp_active_opens)
  run_tool "$raw" $((DUR_S + 30)) \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$port/" || rc=$?
  read -r u1 s1 <<<"$(cpu_user_sys "$pid")"
  b1=$(backends_ticks)
  m1=$(machine_jiffies)
  o1=$(tcp_active_opens)
  if ! kill -0 "$pid" 2>/dev/null; then
    note "$c r$round not recorded: the process died during the run (wrk status $rc)"
    return
  fi
  local busy
  busy=$(awk -v a="$m0" -v b="$m1" 'BEGIN { split(a, x, " "); split(b, y, " ");
    db = y[1] - x[1]; di = y[2] - x[2]; if (db + di > 0) printf "%.1f", 100 * db / (db + di); else print 0 }')
  record type=http1 contender="$c" round="$round" wrk="$raw" wrk_rc="$rc" \
    cpu_ticks=$((u1 + s1 - u0 - s0)) cpu_user_ticks=$((u1 - u0)) cpu_sys_ticks=$((s1 - s0)) \
    clk_tck="$CLK_TCK" backends_cpu_ticks=$((b1 - b0)) \
    machine_busy_pct="$busy" tcp_opens=$((o1 - o0)) rss_peak_kb="$(mem_kb VmHWM "$pid")" \
    duration="$DURATION" connections="$CONNECTIONS" threads="$THREADS" backend="$BACKEND_KIND"
  log "$(printf '%-10s r%s  %s' "$c" "$round" "$(tail -n 1 "$RESULTS" | python3 -c '
import json, sys
r = json.load(sys.stdin)
f = lambda k, s: "-" if r.get(k) is None else s.format(r[k])
print(f("rps", "{:.0f} req/s"), " p50", f("p50_ms", "{:.2f}ms"), " p99", f("p99_ms", "{:.2f}ms"),
      " cpu", f("cpu_us_per_req", "{:.1f}us/req"), " errors", r.get("errors"))')")"
}

backends_ticks() {
  local p t=0
  for p in "${BACKEND_PIDS[@]}"; do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}

run_h2() { # contender
  local c=$1 pid=${PID_OF[$1]} port=${H2PORT_OF[$1]:-}
  local raw=$OUT_DIR/raw/$RUN_ID/h2load-$c.txt t0 t1 rc=0
  if [[ -z $port ]]; then
    note "h2 skipped for $c: no h2c listener (nginx $NGINX_H2_MODE)"
    return
  fi
  t0=$(cpu_ticks "$pid")
  run_tool "$raw" 120 h2load -t"$THREADS" -c"$CONNECTIONS" -m10 -n"$H2_REQUESTS" \
    "http://127.0.0.1:$port/" || rc=$?
  t1=$(cpu_ticks "$pid")
  kill -0 "$pid" 2>/dev/null || { note "h2 $c not recorded: the process died during the run"; return; }
  local ok
  ok=$("${SUMMARIZE[@]}" parse-h2load "$raw" | python3 -c 'import json,sys; print(json.load(sys.stdin)["succeeded"] or 0)')
  if ((ok == 0)); then
    note "h2 skipped for $c: h2load got no successful h2c response (rc=$rc: $(grep -m1 -iE 'error|negotiat|fail' "$raw" | cut -c1-120))"
    return
  fi
  record type=h2 contender="$c" h2load="$raw" h2load_rc="$rc" cpu_ticks=$((t1 - t0)) \
    clk_tck="$CLK_TCK" connections="$CONNECTIONS" streams=10 backend="$BACKEND_KIND"
  log "h2 $c: $(grep -m1 '^finished' "$raw")"
}

run_idle() { # contender
  local c=$1 pid=${PID_OF[$1]} port=${PORT_OF[$1]}
  local ready=$TMP/idle-$c.ready before after held failed seen deadline
  rm -f "$ready"
  before=$(mem_kb VmRSS "$pid")
  start_bg "idle-$c" python3 "$HERE/idle_conns.py" 127.0.0.1 "$port" "$IDLE_CONNS" "$ready" 120
  local cpid=$LAST_PID
  deadline=$((SECONDS + 90))
  while [[ ! -s $ready ]] && kill -0 "$cpid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if [[ ! -s $ready ]]; then
    note "idle skipped for $c: client did not finish ($(tail -n 1 "$TMP/idle-$c.log" | cut -c1-120))"
    stop_pid "$cpid"
    return
  fi
  read -r held failed <"$ready"
  sleep 1 # let lazily-freed buffers settle; not a readiness wait
  after=$(mem_kb VmRSS "$pid")
  seen=$(ss -Htn state established "( sport = :$port )" | wc -l)
  stop_pid "$cpid"
  local per=0
  ((held > 0)) && per=$(awk -v a="$after" -v b="$before" -v n="$held" 'BEGIN { printf "%.3f", (a - b) / n }')
  record type=idle contender="$c" held="$held" failed="$failed" sockets_seen="$seen" \
    rss_before_kb="$before" rss_after_kb="$after" kb_per_conn="$per" backend="$BACKEND_KIND"
  log "idle $c: held $held (failed $failed), RSS ${before} -> ${after} kB = $per kB/conn"
  ((failed == 0)) || note "idle $c: $failed of $IDLE_CONNS connections failed (see $TMP/idle-$c.log)"
  sleep 1 # give the server a moment to close the 5,000 sockets before the next one
}

version_of() {
  case $1 in
    nginx) nginx -v 2>&1 | head -n 1 ;;
    haproxy) haproxy -v 2>/dev/null | head -n 1 ;;
    wrk) wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2 ;;
    h2load) h2load --version 2>/dev/null | head -n 1 ;;
    switchyard) [[ -x $SWITCHYARD ]] && { timeout 5 "$SWITCHYARD" --version 2>&1 | head -n 1 || true; } ;;
  esac
}

# ================================================================== main
install_peers
mkdir -p "$OUT_DIR/raw/$RUN_ID"
: >"$RESULTS"
TMP=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers run as an unprivileged user when started by root

# Enough descriptors for the idle test on both ends; everything started below inherits it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if ((IDLE == 1)) && (($(ulimit -n) < IDLE_CONNS + 1000)); then
  die "ulimit -n is $(ulimit -n); IDLE=1 needs more than $((IDLE_CONNS + 1000))"
fi

# Same nginx connection table whether or not IDLE=1, so peak RSS does not depend
# on the flag: one worker may end up holding every idle connection, plus upstreams.
NGINX_WORKER_CONNECTIONS=$((IDLE_CONNS + 2048))

# Ports: 3 backends, then per proxy a main and an h2c port, plus switchyard's admin.
read -r -a P <<<"$(free_ports 11)"
BACKEND_PORTS=("${P[0]}" "${P[1]}" "${P[2]}")
PORT_OF[nginx]=${P[3]}
H2PORT_OF[nginx]=${P[4]}
PORT_OF[haproxy]=${P[5]}
H2PORT_OF[haproxy]=${P[6]}
PORT_OF[switchyard]=${P[7]}
SWITCHYARD_ADMIN_PORT=${P[8]}
PORT_OF[switchyard_hyper]=${P[9]}
SWITCHYARD_HYPER_ADMIN_PORT=${P[10]}

BACKEND_KIND=
case $BACKEND_REQ in
  switchyard | nginx)
    start_backends "$BACKEND_REQ" || die "BACKEND=$BACKEND_REQ: the backends did not start"
    BACKEND_KIND=$BACKEND_REQ
    ;;
  auto)
    if start_backends switchyard; then
      BACKEND_KIND=switchyard
    else
      stop_backends
      start_backends nginx || die "the nginx backends did not start"
      BACKEND_KIND=nginx
      FALLBACK_NOTE="backend: nginx, because \`$SWITCHYARD backend\` is not available ($WAIT_WHY)"
    fi
    ;;
esac

# Is anything else using the CPU? (A compile running beside the bench makes every
# number noisy; the per-run machine busy % then reads high for all contenders.)
# WAIT_IDLE=N waits up to N seconds for the machine to fall under 15% busy.
busy_1s() {
  local j0b j0i j1b j1i
  read -r j0b j0i <<<"$(machine_jiffies)"
  sleep 1
  read -r j1b j1i <<<"$(machine_jiffies)"
  awk -v b=$((j1b - j0b)) -v i=$((j1i - j0i)) 'BEGIN { printf "%.0f", (b + i) ? 100 * b / (b + i) : 0 }'
}
BUSY_BEFORE=$(busy_1s)
if ((${WAIT_IDLE:-0} > 0 && BUSY_BEFORE > 15)); then
  log "machine ${BUSY_BEFORE}% busy; waiting up to ${WAIT_IDLE}s for it to go idle"
  idle_deadline=$((SECONDS + WAIT_IDLE))
  while ((BUSY_BEFORE > 15 && SECONDS < idle_deadline)); do BUSY_BEFORE=$(busy_1s); done
fi

record type=meta date="$(date -u '+%Y-%m-%d %H:%M:%S UTC')" nproc="$(nproc)" \
  cpu_model="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
  kernel="$(uname -r)" threads="$THREADS" connections="$CONNECTIONS" duration="$DURATION" \
  repeats="$REPEATS" backend="$BACKEND_KIND" contenders="$CONTENDERS" clk_tck="$CLK_TCK" \
  ver_nginx="$(version_of nginx)" ver_haproxy="$(version_of haproxy)" ver_wrk="$(version_of wrk)" \
  ver_h2load="$(version_of h2load)" ver_switchyard="$(version_of switchyard)" \
  busy_before_pct="$BUSY_BEFORE" loadavg="$(cut -d' ' -f1-3 /proc/loadavg)"
if ((BUSY_BEFORE > 15)); then
  note "the machine was ${BUSY_BEFORE}% busy before the bench started (load average $(cut -d' ' -f1-3 /proc/loadavg)): something else is running, expect noisy numbers"
fi
[[ -z ${FALLBACK_NOTE:-} ]] || note "$FALLBACK_NOTE"
log "backends ($BACKEND_KIND) on ${BACKEND_PORTS[*]}"

for c in $CONTENDERS; do
  case $c in
    direct | nginx | haproxy | switchyard | switchyard_hyper) ;;
    *) note "unknown contender '$c' ignored"; continue ;;
  esac
  if "start_$c"; then
    ACTIVE+=("$c")
    log "$c ready (pid ${PID_OF[$c]}, port ${PORT_OF[$c]})"
  elif [[ $c != switchyard* ]]; then
    note "$c skipped: it did not start: ${WAIT_WHY:-?} (see its log with KEEP_TMP=1)"
  fi
done
((${#ACTIVE[@]})) || die "no contender started"

if ((WARMUP > 0)); then
  for c in "${ACTIVE[@]}"; do
    log "warm-up $c (${WARMUP}s, not recorded)"
    run_tool /dev/null $((WARMUP + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" \
      "http://127.0.0.1:${PORT_OF[$c]}/" || true
  done
fi

for ((round = 1; round <= REPEATS; round++)); do
  for c in "${ACTIVE[@]}"; do
    kill -0 "${PID_OF[$c]}" 2>/dev/null || { note "$c died before round $round"; continue; }
    run_wrk "$c" "$round"
  done
done

if ((H2 == 1)); then
  for c in "${ACTIVE[@]}"; do run_h2 "$c"; done
fi
if ((IDLE == 1)); then
  # Fresh processes: after the load and h2 runs the allocators hold freed memory
  # that idle connections would reuse, hiding their cost. Restart every contender
  # (direct: backend 1), give it one second of the usual load, then measure.
  log "idle test: restarting the contenders"
  for c in "${ACTIVE[@]}"; do [[ $c == direct ]] || stop_pid "${PID_OF[$c]}"; done
  IDLE_READY=()
  for c in "${ACTIVE[@]}"; do
    if [[ $c == direct ]]; then
      stop_pid "${BACKEND_PIDS[0]}"
      start_backend "$BACKEND_KIND" 0 || { note "idle skipped for direct: backend restart failed ($WAIT_WHY)"; continue; }
      start_direct
    elif ! "start_$c"; then
      note "idle skipped for $c: restart failed (${WAIT_WHY:-?})"
      continue
    fi
    IDLE_READY+=("$c")
  done
  for c in "${IDLE_READY[@]}"; do
    run_tool /dev/null 31 wrk -t"$THREADS" -c"$CONNECTIONS" -d1s "http://127.0.0.1:${PORT_OF[$c]}/" || true
    run_idle "$c"
  done
fi

"${SUMMARIZE[@]}" report "$RESULTS" | tee "$OUT_DIR/summary.md"
log "raw output: $OUT_DIR/raw/$RUN_ID, results: $RESULTS, table: $OUT_DIR/summary.md"
