#!/usr/bin/env bash
# The shipped Grafana dashboard against a real Prometheus (docs/operations.md, issue 14).
#
# Starts a split stack on free loopback ports — redis-server, `pfc jobs`, `pfc worker`,
# `pfc auth`, `pfc chat`, `pfc gateway` as separate processes, each with its own metrics
# listener (PFC_METRICS_ADDR) — puts a little load on it (REST submits including failing jobs,
# an SSE watch, chat logins, messages, a subscriber and presence), points Debian's `prometheus`
# at every role's /metrics (installed when missing), and checks through Prometheus' HTTP API that
# every target is up and every query of charts/pfc/dashboards/pfc.json returns data.
#
#   scripts/test-metrics.sh            builds the debug pfc unless PFC_BIN is set
# Env: PFC_BIN (a built pfc), KEEP=1 (leave the work dir, logs included, for a look)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v prometheus >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -z "${PFC_BIN:-}" ]; then
  cargo build -p pfc --locked
  PFC_BIN="$target_dir/debug/pfc"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/pfc-metrics.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# free ports: bind port 0 and read what the kernel gave (closed again before use)
read -r p_redis p_jobs p_worker p_auth p_chat p_http m_jobs m_worker m_auth m_chat m_gateway p_prom < <(
  python3 -c 'import socket
socks=[socket.socket() for _ in range(12)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

start() { # name, command...: runs it in the background with its log in the work dir
  local name="$1"; shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=("$!")
}
export PFC_LOG=warn
start redis redis-server --port "$p_redis" --bind 127.0.0.1 --save "" --appendonly no
start jobs env PFC_GRPC_ADDR="127.0.0.1:$p_jobs" PFC_REDIS_URL="redis://127.0.0.1:$p_redis" \
  PFC_METRICS_ADDR="127.0.0.1:$m_jobs" "$PFC_BIN" jobs
start worker env PFC_GRPC_ADDR="127.0.0.1:$p_worker" PFC_JOBS_URL="http://127.0.0.1:$p_jobs" \
  PFC_METRICS_ADDR="127.0.0.1:$m_worker" "$PFC_BIN" worker
start auth env PFC_GRPC_ADDR="127.0.0.1:$p_auth" PFC_METRICS_ADDR="127.0.0.1:$m_auth" "$PFC_BIN" auth
start chat env PFC_GRPC_ADDR="127.0.0.1:$p_chat" PFC_REDIS_URL="redis://127.0.0.1:$p_redis" \
  PFC_AUTH_URL="http://127.0.0.1:$p_auth" PFC_METRICS_ADDR="127.0.0.1:$m_chat" "$PFC_BIN" chat
start gateway env PFC_HTTP_ADDR="127.0.0.1:$p_http" PFC_JOBS_URL="http://127.0.0.1:$p_jobs" \
  PFC_AUTH_URL="http://127.0.0.1:$p_auth" PFC_CHAT_URL="http://127.0.0.1:$p_chat" \
  PFC_METRICS_ADDR="127.0.0.1:$m_gateway" "$PFC_BIN" gateway

cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: jobs
    static_configs: [{targets: ["127.0.0.1:$m_jobs"]}]
  - job_name: worker
    static_configs: [{targets: ["127.0.0.1:$m_worker"]}]
  - job_name: auth
    static_configs: [{targets: ["127.0.0.1:$m_auth"]}]
  - job_name: chat
    static_configs: [{targets: ["127.0.0.1:$m_chat"]}]
  - job_name: gateway
    static_configs: [{targets: ["127.0.0.1:$m_gateway"]}]
YAML
start prometheus prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$p_prom"

status=0
python3 - "$p_http" "$p_prom" "$repo/charts/pfc/dashboards/pfc.json" <<'PY' || status=$?
import json, sys, threading, time, urllib.parse, urllib.request

http, prom, dashboard = sys.argv[1], sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{http}"

def call(method, path, body=None, token=None, timeout=10):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
        return json.loads(raw) if raw else None

def wait(what, check, timeout=60):
    deadline = time.time() + timeout
    while True:
        try:
            if check():
                return
        except Exception as e:  # not up yet
            last = e
        if time.time() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.5)

wait("the gateway and the core", lambda: urllib.request.urlopen(base + "/readyz", timeout=2).status == 200)
wait("the worker", lambda: call("GET", "/api/v1/stats")["live_workers"] >= 1)

# a subscriber and an SSE watch stay open while the load runs
alice = call("POST", "/api/v1/auth/login", {"username": "alice"})["token"]
bob = call("POST", "/api/v1/auth/login", {"username": "bob"})["token"]
def follow(url):
    try:
        with urllib.request.urlopen(base + url, timeout=60) as r:
            while r.read(256):
                pass
    except Exception:
        pass
threading.Thread(target=follow, daemon=True,
                 args=(f"/api/v1/rooms/ops/events?access_token={bob}",)).start()
threading.Thread(target=follow, daemon=True, args=("/api/v1/events",)).start()

ids = []
for i in range(60):
    ids.append(call("POST", "/api/v1/jobs", {"kind": "uppercase", "text": f"job {i}"})["job_id"])
    if i % 10 == 0:
        call("POST", "/api/v1/jobs", {"kind": "fail", "text": "x", "max_attempts": 2})
        call("POST", "/api/v1/rooms/ops/messages", {"text": f"hello {i}"}, token=alice)
        call("POST", "/api/v1/rooms/ops/presence", token=alice)
    time.sleep(0.2)
call("GET", f"/api/v1/jobs/{ids[0]}")
wait("the jobs to finish", lambda: call("GET", f"/api/v1/jobs/{ids[-1]}")["status"] == "done")

def query(expr):
    q = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"http://127.0.0.1:{prom}/api/v1/query?{q}", timeout=10) as r:
        return json.loads(r.read())["data"]["result"]

wait("every target up", lambda: len([s for s in query("up") if s["value"][1] == "1"]) == 5)
exprs = []
for panel in json.load(open(dashboard))["panels"]:
    for t in panel.get("targets", []):
        exprs.append((panel["title"], t["expr"].replace("$__rate_interval", "1m")))
# samples of the load must be in Prometheus: allow a few scrapes after the last job
missing = exprs
deadline = time.time() + 60
while missing and time.time() < deadline:
    missing = [(t, e) for t, e in missing if not query(e)]
    if missing:
        time.sleep(2)
for t, e in missing:
    print(f"NO DATA  {t}: {e}")
print(f"dashboard: {len(exprs) - len(missing)}/{len(exprs)} queries return data")
sys.exit(1 if missing else 0)
PY
if [ "$status" != 0 ]; then
  for f in "$work"/*.log; do echo "--- $f"; tail -n 20 "$f"; done
  exit "$status"
fi
echo "metrics OK"
