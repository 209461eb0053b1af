#!/usr/bin/env bash
# Local stand-in for the public node image used by the Dockerfile's `web` stage, for machines
# that cannot pull images (only the Debian mirror and package registries are reachable).
# Builds localhost/node:host = localhost/debian:bookworm-slim (make-local-images.sh)
# + ca-certificates + the host's own node and npm (/usr/bin/node, /usr/lib/node_modules/npm),
# with NODE_EXTRA_CA_CERTS pointing at the system bundle (the sandbox's CA lives only in
# these local images, never in images meant for users).
#   podman build --build-arg NODE_IMAGE=localhost/node:host -t pfc:local .
# Idempotent: rebuilt only when missing, when the host's node version changed, or FORCE=1.
set -euo pipefail
IMAGE="${NODE_STANDIN_IMAGE:-localhost/node:host}"
BASE="${BASE_IMAGE:-localhost/debian:bookworm-slim}"
node_bin="$(command -v node)" || { echo "node is not installed on the host" >&2; exit 1; }
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"   # .../node_modules/npm
want="$("$node_bin" --version)"
have="$(podman image inspect "$IMAGE" --format '{{index .Labels "node-standin.version"}}' 2>/dev/null || true)"
if [[ "${FORCE:-0}" != 1 && "$have" == "$want" ]]; then
  echo "$IMAGE is up to date (node $want)"; exit 0
fi
work="$(mktemp -d /var/tmp/node-image.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cp "$node_bin" "$work/node"
cp -a "$npm_dir" "$work/npm"
cat >"$work/Containerfile" <<EOF
FROM $BASE
LABEL node-standin.version=$want
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
    && node --version && npm --version
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
EOF
podman build -q -t "$IMAGE" "$work" >/dev/null
echo "built $IMAGE (node $want)"
