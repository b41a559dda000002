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
# shellcheck source=benches/load/common.sh
source benches/load/common.sh

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

VARIANTS=(metrics-on metrics-off access-log)
for r in $(seq "$REPEATS"); do
  for v in "${VARIANTS[@]}"; do
    P=$(port); A=$(port)
    variant_config "$v" "$P" "$A" > "$TMP/$v.toml"
    measure "$r" "$v" "$TMP/$v.toml" "$P" -H 'X-User-ID: u1'
  done
done
report metrics-on "${VARIANTS[@]}"
