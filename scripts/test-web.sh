#!/usr/bin/env bash
# Browser end-to-end tests of the web UI: `scripts/test-web.sh` (called by scripts/test.sh).
# Installs what they need when missing (Debian's chromium, the npm dev dependencies, the
# TypeScript SDK's dependencies and build), builds `pfc` once, then runs web/e2e/*.test.mjs
# with node's test runner against `pfc dev`.
# In CI (CI=true) it also rebuilds the UI and fails if the committed web/dist is stale.
# UPDATE_SCREENSHOTS=1 rewrites docs/screenshots/*.png.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian package) for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ ! -d web/node_modules/playwright-core ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  (cd web && npm ci --no-audit --no-fund)
fi
# web/e2e/payload.test.mjs runs a worker written with the TypeScript SDK: build it (tsc, seconds)
if [ ! -d sdks/typescript/node_modules/@connectrpc ] || [ sdks/typescript/package-lock.json -nt sdks/typescript/node_modules/.package-lock.json ]; then
  (cd sdks/typescript && npm ci --no-audit --no-fund)
fi
(cd sdks/typescript && npm run build >/dev/null)
if [ "${CI:-}" = "true" ]; then
  (cd web && npm run build >/dev/null)
  if ! git diff --quiet -- web/dist || [ -n "$(git status --porcelain -- web/dist)" ]; then
    echo "web/dist is stale: run 'cd web && npm run build' and commit web/dist" >&2
    git status --short -- web/dist >&2
    exit 1
  fi
fi
cargo build -p pfc --locked
# One file at a time: each starts its own pfc dev and Chromium, and CI machines have 2 cores.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export PFC_BIN="${PFC_BIN:-$target_dir/debug/pfc}"
node --test --test-concurrency=1 web/e2e/
