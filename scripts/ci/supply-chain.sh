#!/usr/bin/env bash
# Supply-chain checks that work offline (`.ci/run`, `just deny`):
#  - cargo-deny licenses, bans and sources against deny.toml (installed with
#    `cargo install cargo-deny --locked` when missing: measured 3.3 min of CPU, 18 min wall on a
#    busy 2-core machine; instant once installed). Advisories need the RustSec database (a git
#    repository these machines cannot fetch): they run in .github/workflows/ci.yml instead.
#  - `npm audit --omit=dev` for the web UI and the repository tooling, where the registry's
#    audit endpoint answers (here it answers 405: reported and skipped; on GitHub it runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q "$DENY_VERSION"; then
  echo "installing cargo-deny $DENY_VERSION (once per machine)"
  t0=$(date +%s)
  cargo install cargo-deny --version "$DENY_VERSION" --locked --quiet
  echo "cargo-deny installed in $(( $(date +%s) - t0 ))s"
fi
cargo deny --log-level error check --hide-inclusion-graph licenses bans sources
echo "cargo deny (licenses, bans, sources): ok"

audit() { # dir
  local dir=$1 out
  out=$(cd "$dir" && npm audit --omit=dev --audit-level=high --json 2>/dev/null) && {
    echo "npm audit --omit=dev ($dir): ok"; return 0; }
  if echo "$out" | grep -q '"statusCode"\|audit endpoint returned an error\|"code": "E'; then
    echo "npm audit --omit=dev ($dir): the registry's audit endpoint did not answer; skipped (runs on GitHub)"
    return 0
  fi
  echo "$out" >&2
  echo "npm audit --omit=dev ($dir): vulnerabilities at or above high" >&2
  return 1
}
audit web
audit .
