#!/usr/bin/env bash
# Instructions per request of each issue-14 feature, counted by callgrind, so
# an A/B does not depend on how busy the machine is (repeats agree within
# ~0.5 %). For each variant switchyard (one worker, health checks off) runs
# under valgrind twice, serving N1 and then N2 requests from one sequential
# keep-alive client; (Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of one
# request with start-up and shutdown cancelled out. The "proxy-protocol"
# variants open one connection per request (with and without a PROXY v2
# header from a trusted peer), so they show the per-connection cost.
#
#   benches/load/http_features_callgrind.sh
#   VARIANTS="plain strip" N1=200 N2=1200 benches/load/http_features_callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SWITCHYARD=${SWITCHYARD:-target/release/switchyard}
N1=${N1:-200}
N2=${N2:-1200}
HTTP1=${HTTP1:-}
VARIANTS=(${VARIANTS:-plain default body-limit strip rewrite req-headers resp-headers rate-limit real-ip mirror respond all per-conn proxy-protocol})
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
[ -x "$SWITCHYARD" ] || { echo "build first: cargo build --release" >&2; exit 1; }
# shellcheck source=benches/load/common.sh
source benches/load/common.sh
# http_features.sh's variant configs
eval "$(sed -n '/^server_keys() {/,/^}/p;/^route_keys() {/,/^}/p' benches/load/http_features.sh)"

B1=$(port); B2=$(port)
"$SWITCHYARD" backend --listen 127.0.0.1:"$B1" >/dev/null 2>&1 & PIDS+=($!)
"$SWITCHYARD" backend --listen 127.0.0.1:"$B2" >/dev/null 2>&1 & PIDS+=($!)
wait_port "$B1"; wait_port "$B2"

# The client: N requests, keep-alive (or one connection each), raw sockets.
cat > "$TMP/client.py" <<'EOF'
import socket, struct, sys
port, n, variant = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
path = "/api/v1/items" if variant in ("strip", "rewrite", "all") else "/"
extra = ""
if variant in ("real-ip", "all"):
    extra = "X-Forwarded-For: 203.0.113.7, 10.0.0.2\r\n"
body = b""
method = "GET"
if variant == "body-limit":
    method, body = "POST", b"x" * 1024
req = (f"{method} {path} HTTP/1.1\r\nHost: bench\r\n{extra}"
       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
def proxy_v2():
    addrs = bytes([203, 0, 113, 7, 127, 0, 0, 1]) + struct.pack("!HH", 40000, port)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) + addrs
def answer(f):
    length = None
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("connection closed")
        if line in (b"\r\n", b"\n"):
            break
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    f.read(length or 0)
per_conn = variant in ("per-conn", "proxy-protocol")
s = None
for i in range(n):
    if s is None or per_conn:
        if s is not None:
            s.close()
        s = socket.create_connection(("127.0.0.1", port))
        if variant == "proxy-protocol":
            s.sendall(proxy_v2())
        f = s.makefile("rb")
    s.sendall(req)
    answer(f)
s.close()
EOF

ir() { # variant n -> total instructions of a run serving n requests
  local v=$1 n=$2 p a cfg out pid
  p=$(port); a=$(port); cfg="$TMP/$v.toml"; out="$TMP/cg.$v.$n"
  local rv=$v; case "$v" in per-conn) rv=plain ;; proxy-protocol) rv=plain ;; esac
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\nworkers = 1\n%s' "$p" "$(server_keys "$rv")"
    [ "$v" = proxy-protocol ] && printf 'proxy_protocol = true\ntrusted_proxies = ["127.0.0.0/8"]\n'
    printf '\n[admin]\nlisten = "127.0.0.1:%s"\n[health]\nenabled = false\n' "$a"
    printf '[pools.blue]\nbackends = ["127.0.0.1:%s", "127.0.0.1:%s"]\n' "$B1" "$B2"
    [ "$v" = mirror ] && printf '[pools.green]\nbackends = ["127.0.0.1:%s", "127.0.0.1:%s"]\n' "$B1" "$B2"
    printf '[[routes]]\nname = "r"\n%s' "$(route_keys "$rv")"
  } > "$cfg"
  RUST_LOG=error valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$SWITCHYARD" run --config "$cfg" >/dev/null 2>&1 & pid=$!; PIDS+=("$pid")
  for _ in $(seq 600); do (echo >/dev/tcp/127.0.0.1/"$p") 2>/dev/null && break; sleep 0.1; done
  python3 "$TMP/client.py" "$p" "$n" "$v"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:/ {print $2}' "$out"
}

echo "| variant | instructions / request | vs plain |"
echo "| --- | ---: | ---: |"
base=""
for v in "${VARIANTS[@]}"; do
  a=$(ir "$v" "$N1"); b=$(ir "$v" "$N2")
  per=$(( (b - a) / (N2 - N1) ))
  [ -z "$base" ] && base=$per
  echo "| $v | $per | $(python3 -c "print(round($per/$base,3))") |"
done
