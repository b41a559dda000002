#!/usr/bin/env bash
# What each of the nginx-replacement features costs when it is on (issue 14),
# and that a route using none of them costs nothing: the same wrk load against
# switchyard with one route configured per variant, interleaved, reporting
# requests/s and proxy CPU per request (medians, ratio to "plain").
# Loopback only, bounded; every process started is stopped on exit.
#
#   benches/load/http_features.sh                     # 6 rounds of 5 s per variant
#   VARIANTS="plain strip headers" REPEATS=3 benches/load/http_features.sh
#   HTTP1=hyper benches/load/http_features.sh         # the hyper HTTP/1 path
#
# Variants (each one route, two backends, sticky off):
#   plain        max_body_bytes = 0, nothing else: the baseline
#   default      the defaults (the 10 MiB body limit is on): must equal plain
#   body-limit   max_body_bytes = "1MiB" on the route, POSTs of 1 KiB
#   strip        path_prefix = "/api", strip_prefix = true (GET /api/x)
#   rewrite      rewrite = { from = "^/api/v1/(.*)", to = "/v2/$1" }
#   req-headers  request_headers: set a constant, add "$remote_addr $request_id", remove one
#   resp-headers response_headers: set a constant and "$request_id", remove Server
#   rate-limit   rate_limit at 10^6/s (never refuses; the bucket bookkeeping only)
#   real-ip      trusted_proxies = ["127.0.0.0/8"], X-Forwarded-For with three hops
#   respond      respond = { status = 200 } (no backend: what a fixed answer costs)
#   all          strip + rewrite + both header rules + rate limit + real IP
#   mirror       mirror = { pool = "green", percent = 10 } (green: the same
#                two backends; each copy is a second upstream request)
#
# The PROXY protocol costs once per connection (one peek and one read), which
# keep-alive load does not show; it is measured by the callgrind script.
set -euo pipefail
cd "$(dirname "$0")/../.."
SWITCHYARD=${SWITCHYARD:-target/release/switchyard}
DURATION=${DURATION:-5}
REPEATS=${REPEATS:-6}
CONNECTIONS=${CONNECTIONS:-50}
HTTP1=${HTTP1:-}
VARIANTS=(${VARIANTS:-plain default body-limit strip rewrite req-headers resp-headers rate-limit real-ip mirror respond all})
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
[ -x "$SWITCHYARD" ] || { echo "build first: cargo build --release" >&2; exit 1; }
# shellcheck source=benches/load/common.sh
source benches/load/common.sh

B1=$(port); B2=$(port)
"$SWITCHYARD" backend --listen 127.0.0.1:"$B1" >/dev/null 2>&1 & PIDS+=($!)
"$SWITCHYARD" backend --listen 127.0.0.1:"$B2" >/dev/null 2>&1 & PIDS+=($!)
wait_port "$B1"; wait_port "$B2"

cat > "$TMP/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF

# route_keys VARIANT: the route's keys (and [server] keys, before the route)
server_keys() {
  local s=""
  [ -n "$HTTP1" ] && s+="http1 = \"$HTTP1\""$'\n'
  case "$1" in
    default) ;;
    real-ip|all) s+=$'max_body_bytes = 0\ntrusted_proxies = ["127.0.0.0/8"]\n' ;;
    *) s+=$'max_body_bytes = 0\n' ;;
  esac
  printf '%s' "$s"
}
route_keys() {
  local strip=$'path_prefix = "/api"\nstrip_prefix = true\n'
  local rewrite=$'rewrite = { from = "^/api/v1/(.*)", to = "/v2/$1" }\n'
  local req=$'request_headers = { set = { X-Env = "prod" }, add = { X-Client = "$remote_addr $request_id" }, remove = ["X-Debug"] }\n'
  local resp=$'response_headers = { set = { X-Frame-Options = "DENY", X-Request-Id = "$request_id" }, remove = ["Server"] }\n'
  local rl=$'rate_limit = { rate = "1000000/s", burst = 1000000, key = "ip" }\n'
  local split=$'split = { blue = 100 }\n'
  case "$1" in
    plain|default|real-ip) printf '%s' "$split" ;;
    body-limit) printf '%s%s' "$split" $'max_body_bytes = "1MiB"\n' ;;
    strip) printf '%s%s' "$split" "$strip" ;;
    rewrite) printf '%s%s' "$split" "$rewrite" ;;
    req-headers) printf '%s%s' "$split" "$req" ;;
    resp-headers) printf '%s%s' "$split" "$resp" ;;
    rate-limit) printf '%s%s' "$split" "$rl" ;;
    mirror) printf '%s%s' "$split" $'mirror = { pool = "green", percent = 10 }\n' ;;
    respond) printf 'respond = { status = 200, body = "{\\"ok\\":true}" }\n' ;;
    all) printf '%s%s%s%s%s' "$split" "$req" "$resp" "$rl" $'rewrite = { from = "^/v1/(.*)", to = "/v2/$1" }\npath_prefix = "/api"\nstrip_prefix = true\n' ;;
  esac
}
# wrk_args VARIANT: sets WRK (extra wrk arguments) and URL_PATH.
wrk_args() {
  WRK=(); URL_PATH=/
  case "$1" in
    strip|rewrite|all) URL_PATH=/api/v1/items ;;
    body-limit) WRK=(-s "$TMP/post.lua") ;;
    real-ip) WRK=(-H "X-Forwarded-For: 203.0.113.7, 10.0.0.2") ;;
  esac
}

for r in $(seq "$REPEATS"); do
  for v in "${VARIANTS[@]}"; do
    P=$(port); A=$(port)
    {
      printf '[server]\nlisten = "127.0.0.1:%s"\n%s' "$P" "$(server_keys "$v")"
      printf '\n[admin]\nlisten = "127.0.0.1:%s"\n' "$A"
      printf '[pools.blue]\nbackends = ["127.0.0.1:%s", "127.0.0.1:%s"]\n' "$B1" "$B2"
      [ "$v" = mirror ] && printf '[pools.green]\nbackends = ["127.0.0.1:%s", "127.0.0.1:%s"]\n' "$B1" "$B2"
      printf '[[routes]]\nname = "r"\n%s' "$(route_keys "$v")"
    } > "$TMP/$v.toml"
    wrk_args "$v"
    PATH_SUFFIX=$URL_PATH measure "$r" "$v" "$TMP/$v.toml" "$P" "${WRK[@]}"
  done
done
report plain "${VARIANTS[@]}"
