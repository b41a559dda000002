#!/usr/bin/env bash
# The FastAPI example without Docker: blue (3), green (3) and canary (1)
# uvicorns on loopback and switchyard in front of them, configured like
# config/compose.toml (the same route `api`, health checks on /ready, the
# same walkthrough: README, "Without Docker"). Ctrl-C stops everything it
# started.
#
#   examples/fastapi/run-local.sh
#
# Environment (all optional):
#   PORT, ADMIN_PORT    proxy and admin ports (8080, 9901)
#   BLUE_PORTS, GREEN_PORTS, CANARY_PORTS
#                       the apps' ports ("8101 8102 8103", "8111 8112 8113", "8121")
#   PYTHON              a python with requirements.txt installed; default: a
#                       virtualenv made in examples/fastapi/.venv on first run
#   SWITCHYARD          the binary; default ./target/release/switchyard (built
#                       with cargo when missing)
#   CONFIG              where to write the configuration
#                       (examples/fastapi/local.toml, git-ignored)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

PORT=${PORT:-8080}
ADMIN_PORT=${ADMIN_PORT:-9901}
BLUE_PORTS=${BLUE_PORTS:-8101 8102 8103}
GREEN_PORTS=${GREEN_PORTS:-8111 8112 8113}
CANARY_PORTS=${CANARY_PORTS:-8121}
CONFIG=${CONFIG:-$here/local.toml}

if [ -z "${PYTHON:-}" ]; then
  if [ ! -x "$here/.venv/bin/python" ]; then
    echo "== preparing examples/fastapi/.venv (pinned FastAPI + uvicorn)"
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$here/requirements.txt"
  fi
  PYTHON="$here/.venv/bin/python"
fi
if [ -z "${SWITCHYARD:-}" ]; then
  SWITCHYARD="$root/target/release/switchyard"
  [ -x "$SWITCHYARD" ] || (cd "$root" && cargo build --release --bin switchyard)
fi

pids=()
stop() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# "8101 8102" -> "127.0.0.1:8101", "127.0.0.1:8102"
backends() {
  local out="" p
  for p in $1; do out="$out${out:+, }\"127.0.0.1:$p\""; done
  echo "$out"
}

start_app() { # colour version port
  (cd "$here" && APP_COLOR=$1 APP_VERSION=$2 exec "$PYTHON" -m uvicorn app:app \
    --host 127.0.0.1 --port "$3" --log-level warning --no-access-log) &
  pids+=($!)
}
for p in $BLUE_PORTS; do start_app blue 1.0.0 "$p"; done
for p in $GREEN_PORTS; do start_app green 1.1.0 "$p"; done
for p in $CANARY_PORTS; do start_app canary 1.2.0-rc1 "$p"; done

# Each app answers /ready before switchyard starts (FastAPI takes seconds
# to import on a busy machine), so its first health checks pass.
"$PYTHON" - $BLUE_PORTS $GREEN_PORTS $CANARY_PORTS <<'WAIT'
import sys, time, urllib.request
deadline = time.monotonic() + 120
for port in sys.argv[1:]:
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"run-local.sh: the app on port {port} is not ready after 120 s")
            time.sleep(0.2)
WAIT

# config/compose.toml with loopback addresses; the rollout section is on.
sed -e "s|^listen = \"0.0.0.0:8080\"|listen = \"127.0.0.1:$PORT\"|" \
    -e "s|^listen = \"0.0.0.0:9901\"|listen = \"127.0.0.1:$ADMIN_PORT\"|" \
    -e '/^token_env = /d' \
    -e "s|^backends = \[\"blue:8000\"\]|backends = [$(backends "$BLUE_PORTS")]|" \
    -e "s|^backends = \[\"green:8000\"\]|backends = [$(backends "$GREEN_PORTS")]|" \
    -e "s|^backends = \[\"canary:8000\"\]|backends = [$(backends "$CANARY_PORTS")]|" \
    -e 's|^# \(\[routes.rollout\]\)|\1|' \
    -e 's/^# \(canary\|stable\|steps\|step_interval\|min_requests\|max_error_rate\|max_p99_latency\) = /\1 = /' \
    "$root/config/compose.toml" > "$CONFIG"

cat <<GUIDE
switchyard in front of FastAPI (uvicorn): proxy http://127.0.0.1:$PORT, admin
http://127.0.0.1:$ADMIN_PORT (console: open it in a browser)
config: $CONFIG
apps: blue $BLUE_PORTS, green $GREEN_PORTS, canary $CANARY_PORTS

try (another terminal):
  export SWITCHYARD_ADMIN=http://127.0.0.1:$ADMIN_PORT
  curl -s -H 'X-User-ID: alice' http://127.0.0.1:$PORT/api/data
  $SWITCHYARD ctl flip api green
  $SWITCHYARD ctl rollback api
  $SWITCHYARD ctl rollout start api && $SWITCHYARD ctl rollout watch api
GUIDE

"$SWITCHYARD" run --config "$CONFIG" &
pids+=($!)
# Until switchyard (or an app) exits, or a signal arrives.
wait -n
