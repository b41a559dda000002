#!/usr/bin/env bash
# What health tracking costs the request path: switchyard in front of one
# pool of 100 backends, with active probes every 1 s versus probes off,
# interleaved, reporting requests/s and proxy CPU per request (the probes'
# own CPU included, as it would be in production). The 100 backends are
# one nginx listening on 100 loopback ports. Bounded; cleans up.
#
#   benches/load/health.sh            # 3 rounds of 10 s per variant
#   DURATION=5 REPEATS=2 benches/load/health.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SWITCHYARD=${SWITCHYARD:-target/release/switchyard}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
BACKENDS=${BACKENDS:-100}
CONNECTIONS=${CONNECTIONS:-50}
for t in wrk nginx; do command -v "$t" >/dev/null || { echo "$t is missing (apt-get install wrk nginx-light)" >&2; exit 1; }; done
[ -x "$SWITCHYARD" ] || cargo build --release
# shellcheck source=benches/load/common.sh
source benches/load/common.sh

# Distinct free ports: held open together while they are chosen.
mapfile -t PORTS < <(python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$BACKENDS")
mkdir -p "$TMP/nginx/logs"
{
  echo "worker_processes 1; pid $TMP/nginx/nginx.pid; error_log $TMP/nginx/error.log;"
  echo "events { worker_connections 4096; }"
  echo "http { access_log off; keepalive_requests 1000000;"
  echo "  client_body_temp_path $TMP/nginx; proxy_temp_path $TMP/nginx; fastcgi_temp_path $TMP/nginx; uwsgi_temp_path $TMP/nginx; scgi_temp_path $TMP/nginx;"
  echo "  server {"
  for p in "${PORTS[@]}"; do echo "    listen 127.0.0.1:$p;"; done
  echo "    location / { return 200 '{\"ok\":true}'; } } }"
} > "$TMP/nginx/nginx.conf"
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g "daemon off;" 2>"$TMP/nginx/stderr" & PIDS+=($!)
wait_port "${PORTS[0]}" || { cat "$TMP/nginx/stderr" "$TMP/nginx/error.log" >&2; exit 1; }

list=$(printf '"127.0.0.1:%s", ' "${PORTS[@]}"); list=${list%, }
config() { # variant listen admin
  local health
  case "$1" in
    probes-1s) health=$'[health]\ninterval = "1s"\ntimeout = "500ms"\npath = "/health"' ;;
    probes-off) health=$'[health]\nenabled = false' ;;
  esac
  printf '[server]\nlisten = "127.0.0.1:%s"\n[admin]\nlisten = "127.0.0.1:%s"\n%s\n[pools.big]\nbackends = [%s]\n[[routes]]\nname = "r"\nsplit = { big = 100 }\n' \
    "$2" "$3" "$health" "$list"
}

VARIANTS=(probes-1s probes-off)
for r in $(seq "$REPEATS"); do
  for v in "${VARIANTS[@]}"; do
    P=$(port); A=$(port)
    config "$v" "$P" "$A" > "$TMP/$v.toml"
    measure "$r" "$v" "$TMP/$v.toml" "$P"
  done
done
report probes-off "${VARIANTS[@]}"
