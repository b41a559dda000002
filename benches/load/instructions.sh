#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: the
# A/B measure that does not depend on what else the machine is doing
# (repeats agree within ~0.5 %; wrk timings on a shared 2-core box do not).
#
#   cargo build --release
#   benches/load/instructions.sh                        # lean, hyper, nginx, haproxy
#   CONTENDERS="lean hyper" REQUESTS=20000 benches/load/instructions.sh
#   benches/load/instructions.sh /tmp/before target/release/switchyard   # A/B two builds
#
# Each contender runs alone under `valgrind --tool=callgrind` (one worker /
# thread / process), with instrumentation switched on only for the
# measured load: `h2load --h1 -n REQUESTS -c CONNECTIONS` over keep-alive
# connections to three `switchyard backend` instances (not instrumented).
# Contenders: lean and hyper (the two server.http1 paths of $SWITCHYARD),
# nginx, haproxy, and bin:PATH (the binary at PATH on its default path);
# BINARY arguments are bin: contenders. Switchyard runs with metrics on
# (the default) and health checks off; ACCESS_LOG=1 adds an access log.
#
# The table gives instructions per request of the whole process and of its
# busiest thread (switchyard's worker: the data plane without the control
# runtime's timers), and the whole-process ratios to nginx and haproxy.
# Results also go to target/bench-load/instructions.jsonl. Kernel work
# (about two thirds of every proxy's CPU) is not counted. KEEP_TMP=1 keeps
# the callgrind files (callgrind_annotate them to see where the
# instructions go).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SWITCHYARD=${SWITCHYARD:-$ROOT/target/release/switchyard}
CONTENDERS=${CONTENDERS:-lean hyper nginx haproxy}
if (($#)); then CONTENDERS=$(printf 'bin:%s ' "$@"); fi
REQUESTS=${REQUESTS:-20000}
CONNECTIONS=${CONNECTIONS:-50}
ACCESS_LOG=${ACCESS_LOG:-0}
# FEATURES="plain strip ...": instead of CONTENDERS, the lean engine once
# per issue-14 feature (http_features.sh's variants: plain default
# body-limit strip rewrite req-headers resp-headers rate-limit real-ip
# mirror respond all), each reported as a ratio to the first.
FEATURES=${FEATURES:-}
if [[ -n $FEATURES ]]; then
  CONTENDERS=$(printf 'feature:%s ' $FEATURES)
  HTTP1=""
  eval "$(sed -n '/^server_keys() {/,/^}/p;/^route_keys() {/,/^}/p' benches/load/http_features.sh)"
fi
# MIRROR=PCT: switchyard's route also mirrors PCT % of requests to a pool
# `green` on the same backends (shadow traffic, issue 15; 0 = no mirror).
MIRROR=${MIRROR:-0}
OUT=${OUT:-$ROOT/target/bench-load/instructions.jsonl}
for tool in valgrind callgrind_control h2load curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install valgrind nghttp2-client curl)" >&2; exit 1; }
done
[[ -x $SWITCHYARD ]] || { echo "$SWITCHYARD not found: cargo build --release" >&2; exit 1; }

TMP=$(mktemp -d /tmp/switchyard-instr.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n ${KEEP_TMP:-} ]]; then echo "callgrind files kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ok() { # url, deadline in s
  local end=$((SECONDS + ${2:-60}))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    ((SECONDS < end)) || { echo "no answer from $1" >&2; return 1; }
    sleep 0.2
  done
}

B=()
for i in 0 1 2; do
  B[i]=$(port)
  "$SWITCHYARD" backend --listen 127.0.0.1:"${B[i]}" --pool blue >/dev/null 2>&1 &
  PIDS+=($!)
  wait_ok "http://127.0.0.1:${B[i]}/health" 15
done

dir_of() { echo "$TMP/${1//[^A-Za-z0-9_]/_}"; }

config() { # name port
  local dir p=$2 bin=$SWITCHYARD http1="" log="" mirror="" green=""
  dir=$(dir_of "$1")
  mkdir -p "$dir"
  case $1 in
    lean | hyper | bin:*)
      if [[ $1 == bin:* ]]; then bin=${1#bin:}; else http1="http1 = \"$1\""; fi
      [[ $ACCESS_LOG == 1 ]] && log="access_log = \"$dir/access.log\""
      if [[ $MIRROR != 0 ]]; then
        mirror="mirror = { pool = \"green\", percent = $MIRROR }"
        green="[pools.green]
backends = [\"127.0.0.1:${B[0]}\", \"127.0.0.1:${B[1]}\", \"127.0.0.1:${B[2]}\"]"
      fi
      cat >"$dir/cfg" <<EOF
[server]
listen = "127.0.0.1:$p"
workers = 1
$http1
$log
[admin]
listen = "127.0.0.1:$(port)"
[health]
enabled = false
[pools.blue]
backends = ["127.0.0.1:${B[0]}", "127.0.0.1:${B[1]}", "127.0.0.1:${B[2]}"]
balance = "round_robin"
$green
[[routes]]
name = "all"
split = { blue = 100 }
$mirror
EOF
      # No `env VAR=.. prog` wrapper here: valgrind would instrument `env`,
      # whose exec of switchyard leaves valgrind behind (no --trace-children),
      # so the proxy ran natively and counted 0. RUST_LOG is set on valgrind.
      echo "$bin" run --config "$dir/cfg" ;;
    feature:*)
      local v=${1#feature:}
      [[ $v == mirror ]] && green="[pools.green]
backends = [\"127.0.0.1:${B[0]}\", \"127.0.0.1:${B[1]}\", \"127.0.0.1:${B[2]}\"]"
      cat >"$dir/cfg" <<EOF
[server]
listen = "127.0.0.1:$p"
workers = 1
$(server_keys "$v")
[admin]
listen = "127.0.0.1:$(port)"
[health]
enabled = false
[pools.blue]
backends = ["127.0.0.1:${B[0]}", "127.0.0.1:${B[1]}", "127.0.0.1:${B[2]}"]
balance = "round_robin"
$green
[[routes]]
name = "r"
$(route_keys "$v")
EOF
      echo "$bin" run --config "$dir/cfg" ;;
    nginx)
      cat >"$dir/cfg" <<EOF
daemon off; master_process off; worker_processes 1; error_log $dir/error.log; pid $dir/pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  upstream b { server 127.0.0.1:${B[0]}; server 127.0.0.1:${B[1]}; server 127.0.0.1:${B[2]}; keepalive 256; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$p; location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF
      echo nginx -c "$dir/cfg" -p "$dir" ;;
    haproxy)
      cat >"$dir/cfg" <<EOF
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  option http-keep-alive
  http-reuse always
frontend f
  bind 127.0.0.1:$p
  default_backend b
backend b
  balance roundrobin
  server b0 127.0.0.1:${B[0]}
  server b1 127.0.0.1:${B[1]}
  server b2 127.0.0.1:${B[2]}
EOF
      echo haproxy -db -f "$dir/cfg" ;;
    *) echo "unknown contender $1" >&2; return 1 ;;
  esac
}

measure() { # name; prints "name process_ir busiest_thread_ir"
  local name=$1 dir p cmd pid out
  dir=$(dir_of "$name")
  p=$(port)
  read -r -a cmd <<<"$(config "$name" "$p")"
  out=$dir/callgrind.out
  RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes --callgrind-out-file="$out" \
    "${cmd[@]}" >"$dir/stdout" 2>"$dir/valgrind.log" &
  pid=$!
  PIDS+=("$pid")
  # A feature's request: its path, and a header or body it reads.
  local path=/ extra=()
  case $name in
    feature:strip | feature:rewrite | feature:all) path=/api/v1/items ;;
    feature:body-limit)
      head -c 1024 /dev/zero | tr '\0' x >"$dir/body"
      extra=(-d "$dir/body") ;;
    feature:real-ip) extra=(-H "X-Forwarded-For: 203.0.113.7, 10.0.0.2") ;;
  esac
  wait_ok "http://127.0.0.1:$p$path" 120
  # Warm the upstream pools, then count exactly the measured requests.
  h2load --h1 -n 2000 -c "$CONNECTIONS" -t 1 "${extra[@]}" "http://127.0.0.1:$p$path" >/dev/null
  # callgrind_control talks to the valgrind in process $pid; if the program
  # runs natively (an exec it did not follow), nothing answers and the count
  # would silently be 0.
  callgrind_control -i on "$pid" >"$dir/control.log" 2>&1 ||
    { echo "$name: callgrind_control -i on $pid failed: $(tail -n 2 "$dir/control.log")" >&2; }
  h2load --h1 -n "$REQUESTS" -c "$CONNECTIONS" -t 1 "${extra[@]}" "http://127.0.0.1:$p$path" >"$dir/h2load.txt"
  callgrind_control -i off "$pid" >>"$dir/control.log" 2>&1 || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  grep -q "status codes: $REQUESTS 2xx" "$dir/h2load.txt" ||
    { echo "$name: not every request succeeded:" >&2; grep "status codes" "$dir/h2load.txt" >&2; }
  # One dump file per thread: the sum, and the largest.
  local counted
  counted=$(cat "$out"* | awk -v n="$name" '/^(summary|totals):/ {s += $2; if ($2 > m) m = $2} END {printf "%s %d %d\n", n, s, m}')
  if [[ ${counted#* } == "0 0" ]]; then
    echo "$name: callgrind counted nothing (instrumentation never switched on); see $dir (KEEP_TMP=1)" >&2
    return 1
  fi
  echo "$counted"
}

mkdir -p "$(dirname "$OUT")"
: >"$OUT"
declare -A IR THREAD
MEASURED=()
for c in $CONTENDERS; do
  line=$(measure "$c") || { echo "$c: not measured" >&2; continue; }
  read -r name ir busiest <<<"$line"
  MEASURED+=("$name")
  IR[$name]=$ir
  THREAD[$name]=$busiest
  printf '{"contender":"%s","requests":%s,"instructions":%s,"per_request":%s,"busiest_thread_per_request":%s}\n' \
    "$name" "$REQUESTS" "$ir" "$((ir / REQUESTS))" "$((busiest / REQUESTS))" >>"$OUT"
done
ratio() { # contender reference: whole-process ratio, or - without the reference
  if [[ -n ${IR[$2]:-} ]]; then python3 -c "print(f'{${IR[$1]}/${IR[$2]}:.3f}')"; else echo -; fi
}
if [[ -n $FEATURES ]]; then
  echo "| feature | instructions / request | vs ${MEASURED[0]#feature:} |"
  echo "| --- | ---: | ---: |"
  for c in "${MEASURED[@]}"; do
    echo "| ${c#feature:} | $((IR[$c] / REQUESTS)) | $(ratio "$c" "${MEASURED[0]}") |"
  done
  exit 0
fi
echo "| contender | instructions / request | busiest thread / request | vs nginx | vs haproxy |"
echo "| --- | ---: | ---: | ---: | ---: |"
for c in "${MEASURED[@]}"; do
  echo "| $c | $((IR[$c] / REQUESTS)) | $((THREAD[$c] / REQUESTS)) | $(ratio "$c" nginx) | $(ratio "$c" haproxy) |"
done
