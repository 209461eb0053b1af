#!/usr/bin/env bash
# The whole test suite: `scripts/test.sh` (the README's test command).
# Installs what the tests need when missing (redis-server from Debian's packages), then runs
# every Rust test (unit, contract tests on both stores, gRPC/HTTP servers on loopback, real
# redis-server processes started by the harness on free ports).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null; then
  echo "installing redis-server (Debian package) for the tests"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
cargo test --workspace --locked "$@"
# Every role of a split stack scraped by a real Prometheus; each query of the shipped Grafana
# dashboard must return data (docs/operations.md).
scripts/test-metrics.sh
# Browser end-to-end tests of the web UI in headless Chromium against `pfc dev` (docs/gateway.md).
scripts/test-web.sh
# Python and TypeScript SDKs: unit, protocol and end-to-end tests with real worker processes (docs/workers.md).
scripts/test-sdks.sh
