#!/usr/bin/env bash
# Tests of the Python and TypeScript SDKs: `scripts/test-sdks.sh` (called by scripts/test.sh).
#
# Installs what they need when missing, idempotently: redis-server (Debian), a Python venv
# under the cargo target dir with `pip install sdks/python` + its test tools, the TypeScript
# SDK's npm dependencies (`npm ci`) and its build (`tsc`: dist/ is not committed). Builds
# `pfc` (or takes PFC_BIN), starts redis-server, `pfc jobs` on it and `pfc dev` on free
# loopback ports, then runs the suites with pytest and `node --test`: unit tests (codecs, the
# worker's side of the protocol against a scripted server, fresh generated stubs) and
# end-to-end tests with real SDK worker processes against both servers (docs/workers.md).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
work="$target_dir/sdk-tests"
mkdir -p "$work"

SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v redis-server >/dev/null; then
  echo "installing redis-server (Debian package) for the SDK tests"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi

# Debian's python3 needs python3-venv for `python3 -m venv`.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "installing python3-venv (Debian package) for the Python SDK tests"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi

# --- pfc -------------------------------------------------------------------------------
if [ -z "${PFC_BIN:-}" ]; then
  cargo build -p pfc --locked
  PFC_BIN="$target_dir/debug/pfc"
fi
export PFC_BIN

# --- Python: a venv with the SDK installed as a user would (pip install sdks/python) ----------
venv="$work/venv"
py_stamp="$(cat sdks/python/pyproject.toml sdks/python/requirements-dev.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$venv/.pfc-stamp" 2>/dev/null)" != "$py_stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check ./sdks/python -r sdks/python/requirements-dev.txt
  echo "$py_stamp" > "$venv/.pfc-stamp"
fi
# Always the SDK as it is in the tree (its dependencies are already there).
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall ./sdks/python

# --- TypeScript: npm ci + tsc, then installed into a scratch project as a user would ----------
ts=sdks/typescript
if [ ! -d "$ts/node_modules/@connectrpc/connect-node" ] || [ "$ts/package-lock.json" -nt "$ts/node_modules/.package-lock.json" ]; then
  (cd "$ts" && npm ci --no-audit --no-fund --loglevel=error)
fi
rm -rf "$ts/dist"
(cd "$ts" && npx tsc -p tsconfig.json)
app="$work/ts-app"
mkdir -p "$app"
[ -f "$app/package.json" ] || echo '{"name":"pfc-sdk-test-app","private":true,"type":"module"}' > "$app/package.json"
(cd "$app" && npm install --no-audit --no-fund --loglevel=error --install-links "$repo/$ts" >/dev/null)
export PFC_TS_APP="$app"

# --- servers ---------------------------------------------------------------------------
pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # host:port name log
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not listen on $1; its log:" >&2; cat "$3" >&2; exit 1
}
logs="$work/logs"; rm -rf "$logs"; mkdir -p "$logs"

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  >"$logs/redis.log" 2>&1 &
pids+=($!)
wait_port "127.0.0.1:$redis_port" redis-server "$logs/redis.log"

jobs_addr="127.0.0.1:$(free_port)"
PFC_LOG=warn "$PFC_BIN" jobs --grpc-addr "$jobs_addr" --redis-url "redis://127.0.0.1:$redis_port" \
  >"$logs/pfc-jobs.log" 2>&1 &
pids+=($!)
dev_addr="127.0.0.1:$(free_port)"
dev_http="127.0.0.1:$(free_port)"
PFC_LOG=warn PFC_GRPC_ADDR="$dev_addr" PFC_HTTP_ADDR="$dev_http" "$PFC_BIN" dev \
  >"$logs/pfc-dev.log" 2>&1 &
pids+=($!)
wait_port "$jobs_addr" "pfc jobs" "$logs/pfc-jobs.log"
wait_port "$dev_addr" "pfc dev" "$logs/pfc-dev.log"
wait_port "$dev_http" "pfc dev (HTTP)" "$logs/pfc-dev.log"

export PFC_TEST_JOBS_ADDR="$jobs_addr" PFC_TEST_DEV_ADDR="$dev_addr" PFC_TEST_DEV_HTTP="http://$dev_http"
export PFC_SDK_E2E=required PFC_SDK_LOGS="$logs"

status=0
echo "--- Python SDK (pytest)"
(cd sdks/python && "$venv/bin/python" -m pytest -q -p no:cacheprovider tests) || status=1
echo "--- TypeScript SDK (node --test)"
(cd "$ts" && node --test --test-concurrency=1 test/*.test.mjs) || status=1
cat "$logs"/*kill9*.txt 2>/dev/null || true   # kill -9 redelivery times (docs/benchmarks.md)
if [ "$status" != 0 ]; then
  echo "SDK tests failed; server logs in $logs" >&2
  tail -n 30 "$logs"/pfc-*.log >&2 || true
fi
exit "$status"
