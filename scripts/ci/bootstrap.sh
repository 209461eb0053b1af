#!/usr/bin/env bash
# Installs what pfc's checks need on a fresh Debian machine. Idempotent: each step is skipped
# when its tool is already present. Used by .ci/run; scripts/test.sh installs its own subset.
set -euo pipefail
cd "$(dirname "$0")/../.."
need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
for c in clippy rustfmt; do
  command -v rustup >/dev/null || break
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
