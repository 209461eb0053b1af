#!/usr/bin/env bash
# End-to-end test of the Helm chart without a cluster: render charts/pfc with values-local.yaml
# (--skip-tests), run it in real containers with podman kube play (scripts/ci/kube-play.sh),
# wait until every role is healthy, then do a job round trip through the gateway's REST API:
# POST /jobs {"text":"bonjour le monde"} -> GET /jobs/{id} until done with "BONJOUR LE MONDE";
# also the helm test script, a chat login/post/list, gRPC health and a gRPC job round trip.
#
# Images (no registry here, everything is local):
#   localhost/pfc:test        the host-built binary (BINARY, default target/release/pfc, built
#                             with `cargo build --release --locked -p pfc` if missing) packaged
#                             by compose/Dockerfile.prebuilt into the distroless stand-in
#   localhost/pfc-redis:test  Debian's redis-server (compose/redis.Dockerfile)
# `kube-play-e2e.sh down` removes what a KEEP=1 run left behind.
# Env: BINARY, NET (podman network, default pfc-chart-e2e), KEEP=1 (leave the pods running),
#      TIMEOUT (seconds for health and for the job, default 90), SKIP_SETUP=1 (no tool installs),
#      SKIP_BUILD=1 (use an existing localhost/pfc:test), PRESET=docker-desktop|minikube (render
#      that preset with values-local.yaml on top: what podman needs, the rest from the preset).
set -euo pipefail
cd "$(dirname "$0")/../.."
CHART=charts/pfc
BINARY="${BINARY:-target/release/pfc}"
NET="${NET:-pfc-chart-e2e}"
TIMEOUT="${TIMEOUT:-90}"
start=$SECONDS
say() { printf '\n== [%ss] %s\n' "$((SECONDS - start))" "$*"; }
mode="${1:-run}"
[[ "$mode" == run || "$mode" == down ]] || { echo "usage: $0 [run|down]" >&2; exit 2; }

if [[ "$mode" == down ]]; then
  SKIP_SETUP=1; SKIP_BUILD=1
fi
if [[ "${SKIP_SETUP:-0}" != 1 ]]; then
  say "tools: helm, podman, local base images"
  scripts/ci/install-helm-kubectl.sh >/dev/null
  scripts/ci/setup-podman.sh >/dev/null
  WITH_RUST=0 scripts/ci/make-local-images.sh >/dev/null
fi

say "images"
if [[ "$mode" == down ]]; then
  :
elif [[ "${SKIP_BUILD:-0}" == 1 ]]; then
  podman image exists localhost/pfc:test || { echo "SKIP_BUILD=1 but localhost/pfc:test does not exist" >&2; exit 1; }
elif [[ ! -x "$BINARY" ]]; then
  [[ "$BINARY" == target/release/pfc ]] || { echo "no executable $BINARY" >&2; exit 1; }
  echo "building $BINARY (cargo build --release --locked -p pfc)"
  cargo build --release --locked -p pfc
fi
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
  echo "using the existing localhost/pfc:test"
elif [[ -f compose/Dockerfile.prebuilt && ( "$BINARY" == target/release/pfc || "$BINARY" == target/debug/pfc ) ]]; then
  # (.dockerignore lets only these two binaries of target/ into the build context)
  podman build -q -f compose/Dockerfile.prebuilt --build-arg BINARY="$BINARY" -t localhost/pfc:test . >/dev/null
else   # the same image from any binary path
  ctx="$(mktemp -d)"; cp "$BINARY" "$ctx/pfc"
  printf '%s\n' 'FROM gcr.io/distroless/cc-debian12' 'COPY pfc /usr/local/bin/pfc' 'USER 65532:65532' \
    'ENTRYPOINT ["/usr/local/bin/pfc"]' > "$ctx/Containerfile"
  podman build -q -t localhost/pfc:test "$ctx" >/dev/null; rm -rf "$ctx"
fi
if [[ "$mode" == run ]]; then
  podman build -q -f compose/redis.Dockerfile -t localhost/pfc-redis:test compose/ >/dev/null
  podman run --rm localhost/pfc:test --version
fi

work="$(mktemp -d)"
values=()
if [[ -n "${PRESET:-}" ]]; then
  [[ -f "$CHART/values-$PRESET.yaml" ]] || { echo "no preset $CHART/values-$PRESET.yaml" >&2; exit 2; }
  values+=(-f "$CHART/values-$PRESET.yaml")
fi
values+=(-f "$CHART/values-local.yaml")
say "render: helm template --skip-tests ${values[*]}"
helm template pfc "$CHART" -n pfc --skip-tests "${values[@]}" > "$work/rendered.yaml"
# podman 4.3 reads a secret used by `secretKeyRef` as a flat JSON map {key: base64}, but a secret
# mounted as a volume as a Secret object whose `data` values it writes out as they are, without
# base64-decoding them (so: {data: {key: plain text}}; it ignores stringData with `items`).
# kube-play.sh writes the first form only, so the podman secrets are made here, in the form each
# use needs, and the Secret documents are left out of what kube-play.sh sees.
python3 - "$work" <<'PY'
import base64, json, os, sys, yaml
work = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(os.path.join(work, "rendered.yaml"))) if d]
mounted = set()
for d in docs:
    spec = ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
    mounted |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
os.makedirs(os.path.join(work, "secrets"))
rest = []
for d in docs:
    if d["kind"] != "Secret":
        rest.append(d)
        continue
    name, data = d["metadata"]["name"], dict(d.get("data") or {})
    if name in mounted:
        form = {"data": {k: base64.b64decode(v).decode() for k, v in data.items()}}
    else:
        form = data
    with open(os.path.join(work, "secrets", name), "w") as f:
        json.dump(form, f)
yaml.safe_dump_all(rest, open(os.path.join(work, "play.yaml"), "w"), sort_keys=False)
# Two phases, like a cluster where Service names resolve before pods start: Redis first
# (kube-play.sh gives a pod its Service alias only after it is up), then the pfc roles.
component = lambda d: ((d.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/component")
yaml.safe_dump_all([d for d in rest if component(d) == "redis"], open(os.path.join(work, "redis.yaml"), "w"), sort_keys=False)
yaml.safe_dump_all([d for d in rest if component(d) != "redis"], open(os.path.join(work, "roles.yaml"), "w"), sort_keys=False)
PY
pods=$(python3 -c '
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] in ("Deployment", "StatefulSet"):
        for i in range(int(d["spec"].get("replicas", 1))): print(d["metadata"]["name"] + "-pod-" + str(i))
' "$work/play.yaml")

volumes=$(python3 -c '
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] in ("ConfigMap", "Secret"): print(d["metadata"]["name"])
' "$work/rendered.yaml")

down() {
  scripts/ci/kube-play.sh down "$work/play.yaml" || true
  for p in $pods; do podman pod rm -f "$p" >/dev/null 2>&1 || true; done   # leftovers of a failed play
  for f in "$work"/secrets/*; do podman secret rm "$(basename "$f")" >/dev/null 2>&1 || true; done
  # podman 4.3 keeps ConfigMap/Secret volumes as named volumes and reuses them on the next play
  # even when the content changed: remove them.
  for v in $volumes; do podman volume rm -f "$v" >/dev/null 2>&1 || true; done
}
cleanup() {
  rc=$?
  if (( rc != 0 )); then
    echo "--- FAILED (rc=$rc); last logs:" >&2
    for p in $pods; do
      for c in $(podman ps -a --filter "pod=$p" --format '{{.Names}}' | grep -v -- '-infra$'); do
        echo "--- $c" >&2; podman logs --tail 15 "$c" >&2 2>&1 || true
      done
    done
  fi
  if [[ "${KEEP:-0}" == 1 ]]; then
    echo "KEEP=1: pods left running; remove them with: $0 down"
  else
    down >/dev/null 2>&1
  fi
  rm -rf "$work"
  exit "$rc"
}
if [[ "$mode" == down ]]; then
  down; rm -rf "$work"; echo "removed: $pods"; exit 0
fi
trap cleanup EXIT

say "podman kube play (network $NET): Redis"
down >/dev/null 2>&1   # leftovers of an earlier run
for f in "$work"/secrets/*; do podman secret create "$(basename "$f")" "$f" >/dev/null; done
scripts/ci/kube-play.sh up "$work/redis.yaml" "$NET"
scripts/ci/kube-play.sh wait-healthy "$work/redis.yaml" "$TIMEOUT"

say "podman kube play: the pfc roles"
scripts/ci/kube-play.sh up "$work/roles.yaml" "$NET"

say "wait until every role is healthy (exec probes: pfc probe grpc|http)"
scripts/ci/kube-play.sh wait-healthy "$work/roles.yaml" "$TIMEOUT"

gw_pod=$(printf '%s\n' "$pods" | grep -- '-gateway-pod-0$')
infra=$(podman pod inspect "$gw_pod" --format '{{.InfraContainerID}}')
ip=$(podman inspect "$infra" --format "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}")
base="http://$ip:8000"
say "gateway $base: /readyz"
for _ in $(seq "$TIMEOUT"); do curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break; sleep 1; done
curl -fsS "$base/readyz"; echo

say "job round trip: POST /jobs, GET /jobs/{id} until done"
resp=$(curl -fsS -X POST "$base/jobs" -H 'content-type: application/json' -d '{"text":"bonjour le monde"}')
echo "POST /jobs -> $resp"
id=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d=d.get("job", d); print(d.get("job_id") or d.get("id") or "")' "$resp")
[[ -n "$id" ]] || { echo "no job id in the answer" >&2; exit 1; }
deadline=$((SECONDS + TIMEOUT))
while :; do
  job=$(curl -fsS "$base/jobs/$id")
  status=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d=d.get("job", d); print(str(d.get("status","")).lower())' "$job")
  case "$status" in
    *done) break ;;
    *failed|*cancelled) echo "job ended $status: $job" >&2; exit 1 ;;
  esac
  (( SECONDS < deadline )) || { echo "job not done after ${TIMEOUT}s: $job" >&2; exit 1; }
  sleep 0.5
done
echo "GET /jobs/$id -> $job"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d=d.get("job", d); r=d.get("result"); sys.exit(0 if r == "BONJOUR LE MONDE" else "unexpected result: %r" % r)' "$job"

say "the helm test script (templates/tests/test-job-roundtrip.yaml), run from the host"
helm template pfc "$CHART" -n pfc "${values[@]}" -s templates/tests/test-job-roundtrip.yaml \
  | python3 -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["spec"]["containers"][0]["args"][0])' > "$work/helm-test.sh"
GATEWAY="$base" TIMEOUT="$TIMEOUT" sh "$work/helm-test.sh"

say "chat through the gateway: login (auth, chart-generated key), post, list (chat, Redis)"
code=$(curl -sS -o "$work/login.json" -w '%{http_code}' -X POST "$base/api/v1/auth/login" \
  -H 'content-type: application/json' -d '{"username":"alice"}')
if [[ "$code" == 404 ]]; then
  echo "(POST /api/v1/auth/login answers 404: this gateway has no chat routes; skipped)"
else
  [[ "$code" =~ ^2 ]] || { echo "login -> HTTP $code: $(cat "$work/login.json")" >&2; exit 1; }
  token=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("token") or d.get("access_token"))' "$work/login.json")
  curl -fsS -X POST "$base/api/v1/rooms/general/messages" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"text":"bonjour depuis helm"}' >/dev/null
  curl -fsS "$base/api/v1/rooms/general/messages" -H "authorization: Bearer $token" | grep -q 'bonjour depuis helm' \
    || { echo "posted message not listed" >&2; exit 1; }
  echo "  alice logged in, posted to #general and read it back"
fi

say "gRPC health of every role from inside its container (pfc probe grpc)"
for p in $pods; do
  c=$(podman ps --filter "pod=$p" --format '{{.Names}}' | grep -v -- '-infra$' | head -1)
  case "$c" in
    *-jobs) port=50051 ;; *-auth) port=50052 ;; *-chat) port=50053 ;; *-worker) port=50054 ;; *) continue ;;
  esac
  podman exec "$c" pfc probe grpc "127.0.0.1:$port" && echo "  $c: SERVING"
done

buf=node_modules/.bin/buf   # `npm ci` at the repository root installs it (package.json)
if [[ -x "$buf" ]]; then
  say "gRPC through the jobs Service's pod: reflection, SubmitJob, GetJob (buf curl)"
  jobs_pod=$(printf '%s\n' "$pods" | grep -- '-jobs-pod-0$')
  jinfra=$(podman pod inspect "$jobs_pod" --format '{{.InfraContainerID}}')
  jip=$(podman inspect "$jinfra" --format "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}")
  grpc=(--protocol grpc --http2-prior-knowledge)
  "$buf" curl "${grpc[@]}" --list-services "http://$jip:50051" | sed 's/^/  /'
  sub=$("$buf" curl "${grpc[@]}" -d '{"text":"bonjour le monde"}' "http://$jip:50051/pfc.jobs.v1.JobService/SubmitJob")
  gid=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["jobId"])' "$sub")
  deadline=$((SECONDS + TIMEOUT))
  until "$buf" curl "${grpc[@]}" -d "{\"jobId\":\"$gid\"}" "http://$jip:50051/pfc.jobs.v1.JobService/GetJob" > "$work/get.json" \
        && grep -q '"JOB_STATUS_DONE"' "$work/get.json"; do
    (( SECONDS < deadline )) || { cat "$work/get.json"; echo "gRPC job $gid not done" >&2; exit 1; }
    sleep 0.5
  done
  grep -q '"result": *"BONJOUR LE MONDE"' "$work/get.json" || { cat "$work/get.json"; exit 1; }
  echo "  gRPC job $gid: JOB_STATUS_DONE, BONJOUR LE MONDE"
else
  echo "(no $buf: gRPC API check skipped; run npm ci at the repository root to add it)"
fi

say "chart e2e OK: job $id done with BONJOUR LE MONDE"
