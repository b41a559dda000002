#!/usr/bin/env bash
# TLS comparison: switchyard against nginx, both terminating TLS with the same
# certificate and proxying to the same backend (a one-worker nginx answering
# 200). Two measures, interleaved over rounds, medians reported as ratios:
#   handshakes/s  wrk with "Connection: close": every request is a new TCP
#                 connection and a full TLS handshake (neither wrk nor h2load
#                 resumes sessions), plus one proxied request;
#   keep-alive    wrk over long-lived TLS connections: requests/s.
# CPU of each server's process tree is read from /proc around every run, so
# CPU per handshake / per request is reported too (steadier than rates on a
# shared machine). Loopback only, bounded in time, every process it starts is
# stopped on exit (also on Ctrl-C or an error).
#
#   benches/load/tls.sh                          # 3 rounds of 10 s per measure
#   DURATION=5 REPEATS=1 benches/load/tls.sh     # quick look
#
# Environment (defaults in brackets):
#   SWITCHYARD   proxy binary [target/release/switchyard]
#   DURATION     seconds per wrk run [10]     REPEATS  interleaved rounds [3]
#   CONNECTIONS  wrk connections [50]         THREADS  wrk threads [2]
#   KEY          ecdsa (P-256) | rsa (2048) [ecdsa]
#   WORKERS      server workers, both [2]     KEEP_TMP=1  keep configs and logs
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SWITCHYARD=${SWITCHYARD:-$ROOT/target/release/switchyard}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
KEY=${KEY:-ecdsa}
WORKERS=${WORKERS:-2}
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[tls-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in nginx wrk openssl curl python3 pgrep; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian: nginx wrk openssl curl procps)"
done
[[ -x $SWITCHYARD ]] || die "$SWITCHYARD not found: cargo build --release"
case $KEY in ecdsa | rsa) ;; *) die "KEY must be ecdsa or rsa" ;; esac

# ------------------------------------------------------------------ cleanup
PIDS=()
TMP=$(mktemp -d)
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
cleanup() {
  local rc=$? p all=()
  trap - EXIT INT TERM
  set +e
  for p in "${PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || continue
    for c in $(tree_pids "$p"); do all+=("$c"); done
  done
  if ((${#all[@]})); then
    kill -TERM "${all[@]}" 2>/dev/null
    local deadline=$((SECONDS + 5))
    while ((SECONDS < deadline)); do
      local alive=0
      for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      ((alive)) || break
      sleep 0.1
    done
    for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
  fi
  if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_bg() { # NAME CMD...
  local name=$1
  shift
  setsid "$@" >"$TMP/$name.log" 2>&1 </dev/null &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

cpu_ticks() { # utime+stime of a process tree, in clock ticks
  local total=0 p line rest
  local -a f
  for p in $(tree_pids "$1"); do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    rest=${line##*) }
    read -ra f <<<"$rest"
    total=$((total + f[11] + f[12] + f[13] + f[14]))
  done
  echo "$total"
}

wait_up() { # PID URL
  local deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    kill -0 "$1" 2>/dev/null || die "a server exited; see $TMP/*.log"
    [[ $(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "$2" 2>/dev/null) == 200 ]] && return 0
    sleep 0.1
  done
  die "no 200 from $2"
}

read -r BPORT NPORT SPORT SPLAIN SADMIN <<<"$(python3 - <<'EOF'
import socket
socks = []
for _ in range(5):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)"

# ------------------------------------------------------------------ certificate
if [[ $KEY == ecdsa ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
else
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
fi

# ------------------------------------------------------------------ servers
nginx_common="pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }"
nginx_temp="access_log off;
  client_body_temp_path @DIR@/cb; proxy_temp_path @DIR@/px; fastcgi_temp_path @DIR@/fc;
  uwsgi_temp_path @DIR@/uw; scgi_temp_path @DIR@/sc;"

mkdir -p "$TMP/backend" "$TMP/nginx"
cat >"$TMP/backend/nginx.conf" <<EOF
worker_processes 1;
${nginx_common//@DIR@/$TMP/backend}
http {
  ${nginx_temp//@DIR@/$TMP/backend}
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server { listen 127.0.0.1:$BPORT; default_type application/json; location / { return 200 '{"ok":true}'; } }
}
EOF
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $WORKERS;
${nginx_common//@DIR@/$TMP/nginx}
http {
  ${nginx_temp//@DIR@/$TMP/nginx}
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  upstream be { server 127.0.0.1:$BPORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NPORT ssl;
    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
EOF
cat >"$TMP/switchyard.toml" <<EOF
[server]
listen = "127.0.0.1:$SPLAIN"
listen_tls = "127.0.0.1:$SPORT"
workers = $WORKERS

[admin]
listen = "127.0.0.1:$SADMIN"

[tls]
cert = "cert.pem"
key = "key.pem"

[pools.be]
backends = ["127.0.0.1:$BPORT"]
health = { enabled = false }

[[routes]]
name = "r"
split = { be = 100 }
EOF

start_bg backend nginx -p "$TMP/backend/" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf" -g 'daemon off;'
wait_up "$LAST_PID" "http://127.0.0.1:$BPORT/"
start_bg nginx nginx -p "$TMP/nginx/" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" -g 'daemon off;'
declare -A PID_OF PORT_OF
PID_OF[nginx]=$LAST_PID
PORT_OF[nginx]=$NPORT
wait_up "$LAST_PID" "https://127.0.0.1:$NPORT/"
start_bg switchyard env RUST_LOG=warn "$SWITCHYARD" run --config "$TMP/switchyard.toml"
PID_OF[switchyard]=$LAST_PID
PORT_OF[switchyard]=$SPORT
wait_up "$LAST_PID" "https://127.0.0.1:$SPORT/"
log "nginx $(nginx -v 2>&1 | sed 's/.*\///'), $KEY certificate, $WORKERS workers each, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $REPEATS round(s)"

# ------------------------------------------------------------------ runs
RESULTS=$TMP/results.tsv
: >"$RESULTS"
run() { # CONTENDER MEASURE ROUND
  local who=$1 what=$2 round=$3 before after out rps hdr=()
  [[ $what == handshake ]] && hdr=(-H "Connection: close")
  out=$TMP/wrk-$who-$what-$round.txt
  before=$(cpu_ticks "${PID_OF[$who]}")
  timeout --kill-after=5 $((DURATION + 20)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
    "${hdr[@]}" "https://127.0.0.1:${PORT_OF[$who]}/" >"$out" 2>&1 </dev/null || true
  after=$(cpu_ticks "${PID_OF[$who]}")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  local total errors
  total=$(awk '/requests in/ { print $1 }' "$out")
  errors=$(awk '/Non-2xx|Socket errors/ { print }' "$out" | tr '\n' ' ')
  [[ -n $rps && -n $total && $total -gt 0 ]] || die "wrk failed for $who $what: $(tail -n 3 "$out")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$who" "$what" "$round" "$rps" \
    "$(python3 -c "print(f'{($after - $before) / $CLK_TCK / $total * 1e6:.1f}')")" "$errors" >>"$RESULTS"
  log "round $round $who $what: $rps/s, $(tail -n 1 "$RESULTS" | cut -f5) µs CPU each ${errors:+($errors)}"
}
for ((r = 1; r <= REPEATS; r++)); do
  # Alternate the order so neither contender always runs on a warmer machine.
  if ((r % 2)); then order="nginx switchyard"; else order="switchyard nginx"; fi
  for what in handshake keepalive; do
    for who in $order; do run "$who" "$what" "$r"; done
  done
done

python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
med = {}
for who, what, _, rps, cpu, _ in rows:
    med.setdefault((who, what), ([], []))
    med[(who, what)][0].append(float(rps))
    med[(who, what)][1].append(float(cpu))
print()
print("| measure | nginx /s | switchyard /s | ratio | nginx µs CPU each | switchyard µs CPU each | ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for what, name in (("handshake", "new TLS connection + request"), ("keepalive", "request over TLS keep-alive")):
    n, s = med[("nginx", what)], med[("switchyard", what)]
    nr, sr = statistics.median(n[0]), statistics.median(s[0])
    nc, sc = statistics.median(n[1]), statistics.median(s[1])
    print(f"| {name} | {nr:,.0f} | {sr:,.0f} | {sr / nr:.2f} | {nc:.0f} | {sc:.0f} | {sc / nc:.2f} |")
print()
print("rates: higher is better; CPU: the server's own process tree, lower is better;")
print("medians of", len(rows) // 4, "interleaved round(s); individual runs:")
for r in rows:
    print("  ", " ".join(r[:5]), r[5] if len(r) > 5 else "")
EOF
