#!/usr/bin/env bash
# Lints the API (.proto files) with buf (STANDARD + COMMENTS rules, proto/buf.yaml).
# buf comes from the npm registry (@bufbuild/buf in the root package.json).
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ -x node_modules/.bin/buf ]] || npm ci --no-audit --no-fund
node_modules/.bin/buf lint proto
echo "buf lint: ok"
