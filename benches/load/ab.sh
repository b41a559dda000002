#!/usr/bin/env bash
# A/B of two switchyard binaries under the same load, interleaved: for
# judging a data-plane change by proxy CPU per request and requests/s
# (round-to-round noise on a small machine is 5–25 %, so use ≥ 6 rounds and
# trust the ratio of medians, not one round).
#
#   cp target/release/switchyard /tmp/switchyard-before   # then change, rebuild
#   benches/load/ab.sh /tmp/switchyard-before target/release/switchyard
#   DURATION=5 REPEATS=8 benches/load/ab.sh A B
#   HTTP1_A=hyper HTTP1_B=lean benches/load/ab.sh BIN BIN   # the two HTTP/1 paths of one binary
set -euo pipefail
cd "$(dirname "$0")/../.."
A=${1:?usage: ab.sh BASELINE_BINARY CANDIDATE_BINARY}
B=${2:?usage: ab.sh BASELINE_BINARY CANDIDATE_BINARY}
# Unset: the binary's default (binaries older than server.http1 refuse the key).
HTTP1_A=${HTTP1_A:-}
HTTP1_B=${HTTP1_B:-}
DURATION=${DURATION:-5}
REPEATS=${REPEATS:-6}
CONNECTIONS=${CONNECTIONS:-50}
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
SWITCHYARD=$A
# shellcheck source=benches/load/common.sh
source benches/load/common.sh

# The same backends for both (the baseline binary's demo backend).
B1=$(port); B2=$(port); B3=$(port)
for b in "$B1" "$B2" "$B3"; do
  "$A" backend --listen 127.0.0.1:"$b" >/dev/null 2>&1 & PIDS+=($!)
  wait_port "$b"
done

for r in $(seq "$REPEATS"); do
  for v in A B; do
    P=$(port); M=$(port)
    if [ "$v" = A ]; then H=$HTTP1_A; else H=$HTTP1_B; fi
    if [ -n "$H" ]; then H="http1 = \"$H\""; fi
    printf '[server]\nlisten = "127.0.0.1:%s"\n'"$H"'\n[admin]\nlisten = "127.0.0.1:%s"\n[pools.blue]\nbackends = ["127.0.0.1:%s", "127.0.0.1:%s", "127.0.0.1:%s"]\nbalance = "round_robin"\n[[routes]]\nname = "all"\nsplit = { blue = 100 }\n' \
      "$P" "$M" "$B1" "$B2" "$B3" > "$TMP/$v.toml"
    if [ "$v" = A ]; then SWITCHYARD=$A; else SWITCHYARD=$B; fi
    measure "$r" "$v" "$TMP/$v.toml" "$P"
  done
done
report A A B
