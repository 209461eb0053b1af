#!/usr/bin/env bash
# Static verification of the Helm chart charts/pfc, offline (no cluster, no registry):
#   1. yamllint      values files, Chart.yaml and every rendered manifest; every value has a
#                    `# --` comment and the README values table is current (values-table.py);
#                    files/grpc-services.yaml matches the protos (grpc-services.py --check);
#                    the chart unit tests in charts/pfc/tests/ (unittest.py, helm-unittest format)
#   2. helm lint --strict and helm template for the defaults, each preset and the ci/ value sets
#      (plus values the schema or the templates must reject)
#   3. contract      scripts/chart/check-contract.py: roles, ports, env vars, probes and security
#                    settings of the rendered manifests against docs/roles.md
#   4. kubernetes-validate --strict against several Kubernetes versions (1.29 ... newest bundled);
#      "Couldn't find schema" fails, except for the CRD kinds of optional features (KEDA
#      ScaledObject/TriggerAuthentication, Prometheus Operator ServiceMonitor, Gateway API
#      HTTPRoute/GRPCRoute: no CRD schemas offline)
#   5. checkov       --framework helm (chart defaults) and --framework kubernetes (every rendering);
#                    the skipped checks and why are listed in charts/pfc/README.md ("Security scan")
# Installs its tools first (idempotent; SKIP_INSTALL=1 to skip). ~20-30 s on 2 cores once installed.
# Env: KUBE_VERSIONS (default "1.29.0 1.31.0 1.33.0 <newest bundled>"), SKIP_CHECKOV=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
CHART=charts/pfc
start=$SECONDS
say() { printf '\n== [%ss] %s\n' "$((SECONDS - start))" "$*"; }

if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
  say "tools"
  scripts/ci/install-helm-kubectl.sh >/dev/null
  WITH_CHECKOV=1 scripts/ci/install-py-tools.sh >/dev/null
fi

# check-contract.py and values-table.py need PyYAML: the system python's, or yamllint's venv.
PY=python3
python3 -c 'import yaml' 2>/dev/null || PY="${TOOLS_DIR:-/opt/infra-tools}/checkers/bin/python"

tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
out="$tmp/rendered"; mkdir -p "$out"

# Value sets: name -> helm args. Presets are what users install; ci/ sets switch on every option.
names=(defaults docker-desktop minikube local all-features external-redis)
declare -A args=(
  [defaults]=""
  [docker-desktop]="-f $CHART/values-docker-desktop.yaml"
  [minikube]="-f $CHART/values-minikube.yaml"
  [local]="-f $CHART/values-local.yaml"
  [all-features]="-f $CHART/ci/all-features-values.yaml"
  [external-redis]="-f $CHART/ci/external-redis-values.yaml"
)
# Kinds without a bundled schema (CRDs), rendered only when their feature is enabled.
crd_kinds='ScaledObject|TriggerAuthentication|ServiceMonitor|HTTPRoute|GRPCRoute'

schemas="$(dirname "$(readlink -f "$(command -v kubernetes-validate)")")/.."
newest="$(find "$schemas"/lib/python3*/site-packages/kubernetes_validate/kubernetes-json-schema \
  -maxdepth 1 -name 'v*-local-strict' -printf '%f\n' 2>/dev/null | sed 's/^v//; s/-local-strict$//' | sort -V | tail -1)"
KUBE_VERSIONS="${KUBE_VERSIONS:-1.29.0 1.31.0 1.33.0 ${newest:-1.37.0}}"
lowest="${KUBE_VERSIONS%% *}"

say "yamllint (values files, Chart.yaml)"
cat > "$tmp/yamllint.yaml" <<'EOF'
extends: default
rules:
  line-length: {max: 200}
  document-start: disable
  comments-indentation: disable
  indentation: {spaces: 2, indent-sequences: whatever}
EOF
yamllint -s -c "$tmp/yamllint.yaml" "$CHART"/Chart.yaml "$CHART"/values*.yaml "$CHART"/ci/*.yaml

if command -v shellcheck >/dev/null; then
  say "shellcheck scripts/chart"
  shellcheck scripts/chart/*.sh
fi

say "values documentation: a \`# --\` comment on every value, README table up to date"
"$PY" scripts/chart/values-table.py --check

say "gRPC services routed by the chart match the protos (files/grpc-services.yaml)"
"$PY" scripts/chart/grpc-services.py --check

say "chart unit tests (charts/pfc/tests/*_test.yaml, helm-unittest format)"
"$PY" scripts/chart/unittest.py "$CHART"

say "helm lint --strict + helm template (kube $lowest): ${names[*]}"
for n in "${names[@]}"; do
  # shellcheck disable=SC2086  # args are word lists on purpose
  helm lint --strict --quiet --kube-version "$lowest" "$CHART" ${args[$n]} >"$tmp/lint-$n.txt" 2>&1 \
    || { cat "$tmp/lint-$n.txt"; echo "helm lint failed for $n" >&2; exit 1; }
  # With the test hook pod, so it is validated too.
  # shellcheck disable=SC2086
  helm template pfc "$CHART" -n pfc --kube-version "$lowest" ${args[$n]} > "$out/$n.yaml"
  # NOTES.txt is rendered only by install/upgrade: check it renders too.
  # shellcheck disable=SC2086
  helm install pfc "$CHART" -n pfc --dry-run=client ${args[$n]} > "$tmp/notes-$n.txt" \
    || { echo "helm install --dry-run failed for $n" >&2; exit 1; }
  grep -q 'helm test pfc -n pfc' "$tmp/notes-$n.txt" || { echo "NOTES incomplete for $n" >&2; exit 1; }
  printf '  %-15s %2s objects, NOTES ok\n' "$n" "$(grep -c '^kind:' "$out/$n.yaml")"
done
yamllint -s -c "$tmp/yamllint.yaml" "$out"/*.yaml
helm package "$CHART" -d "$tmp" >/dev/null   # what release.yml publishes
echo "  helm package: $(basename "$tmp"/pfc-*.tgz)"

say "values and combinations the chart must reject"
reject() {   # reject "expected message" helm-args...
  local want="$1"; shift
  if helm template pfc "$CHART" "$@" >"$tmp/reject.txt" 2>&1; then
    echo "accepted but should fail: $*" >&2; exit 1
  fi
  grep -qF -- "$want" "$tmp/reject.txt" || { cat "$tmp/reject.txt"; echo "wrong error for: $*" >&2; exit 1; }
  echo "  rejected: $* ($want)"
}
reject "got string, want integer" --set jobs.replicaCount=two
reject "additional properties 'bogus' not allowed" --set bogus=1
reject "additional properties 'replicas' not allowed" --set gateway.replicas=3
reject "value must be one of" --set image.pullPolicy=Sometimes
reject "externalRedis.url" --set redis.enabled=false
reject "tlsSecretName" --set grpcIngress.enabled=true
reject "value must be one of" --set worker.keda.enabled=sometimes
reject "minimum: got 80, want 30,000" --set gateway.service.type=NodePort --set gateway.service.nodePort=80

say "upgrade behaviour"
# A new pfc image must not restart Redis; a config change must roll the pfc pods.
# (With an existing Secret: a generated password is new on every `helm template`, and so its
# checksum/secret; on a real upgrade `lookup` keeps it.)
redis_sts() { helm template pfc "$CHART" -s templates/redis-statefulset.yaml --set redis.auth.existingSecret=pfc-redis "$@" | sha256sum; }
[[ "$(redis_sts)" == "$(redis_sts --set image.tag=9.9.9)" ]] \
  || { echo "changing image.tag changes the Redis StatefulSet (Redis would restart)" >&2; exit 1; }
echo "  image.tag change leaves the Redis StatefulSet untouched"
jobs_sum() { helm template pfc "$CHART" -s templates/jobs-deployment.yaml "$@" | grep checksum/config; }
[[ "$(jobs_sum)" != "$(jobs_sum --set config.logLevel=debug)" ]] \
  || { echo "a config change does not roll the pfc pods" >&2; exit 1; }
echo "  config change rolls the pfc pods (checksum/config)"

say "contract (docs/roles.md) and security settings"
for n in "${names[@]}"; do
  "$PY" scripts/chart/check-contract.py "$n" "$out/$n.yaml"
done

say "kubernetes-validate --strict: $KUBE_VERSIONS"
for v in $KUBE_VERSIONS; do
  set +e
  kubernetes-validate --strict --quiet -k "$v" "$out"/*.yaml >"$tmp/kv.txt" 2>&1
  rc=$?
  set -e
  if (( rc != 0 )); then cat "$tmp/kv.txt"; echo "schema validation failed for kubernetes $v" >&2; exit 1; fi
  unknown="$(grep "Couldn't find schema" "$tmp/kv.txt" | grep -Ev "for kind ($crd_kinds) with" || true)"
  if [[ -n "$unknown" ]]; then echo "$unknown"; echo "unknown kind/apiVersion for kubernetes $v" >&2; exit 1; fi
  crds="$(grep -oE "for kind ($crd_kinds) with" "$tmp/kv.txt" | awk '{print $3}' | sort -u | tr '\n' ' ')"
  echo "  kubernetes $v: OK${crds:+ (not schema-checked, CRDs of optional features: $crds)}"
done

if [[ "${SKIP_CHECKOV:-0}" != 1 ]]; then
  # Keep this list in sync with the "Security scan" table of charts/pfc/README.md.
  skips=(
    CKV_K8S_21   # namespace comes from `helm install -n`; every object sets .Release.Namespace
    CKV_K8S_43   # digests are supported (image.digest), tags are the default
    CKV_K8S_15   # IfNotPresent with immutable version tags / digests; local presets need Never
    CKV_K8S_35   # Redis' own --requirepass/REDISCLI_AUTH (and redisPasswordFrom=env) use a secretKeyRef
  )
  skip="$(IFS=,; echo "${skips[*]}")"
  export BC_SKIP_MAPPING=TRUE   # with --skip-download: no calls home
  say "checkov --framework helm (defaults), skipping $skip"
  checkov -d "$CHART" --framework helm --skip-download --compact --quiet --skip-check "$skip"
  say "checkov --framework kubernetes (every rendering)"
  ck_files=(); for n in "${names[@]}"; do ck_files+=(-f "$out/$n.yaml"); done
  checkov "${ck_files[@]}" --framework kubernetes --skip-download --compact --quiet --skip-check "$skip"
fi

say "chart OK"
