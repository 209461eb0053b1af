# syntax=docker/dockerfile:1
#
# pfc: one image, one binary. The argument picks the role (docs/roles.md):
#   docker build -t pfc .
#   docker run --rm -p 8000:8000 -p 50051:50051 pfc          # `pfc dev`: the whole thing, UI on :8000
#   docker run --rm pfc jobs --help                           # any other role
#
# Stages: `web` builds the UI (web/ -> web/dist), `build` compiles `pfc` with the UI embedded
# (rust-embed), the final stage is distroless (no shell, non-root, read-only-root friendly).
# Base images are build args so air-gapped builds can substitute local stand-ins (docs/shipping.md).
# Multi-arch: the build stages run on the build platform and cross-compile for TARGETARCH,
# so `--platform linux/amd64,linux/arm64` needs no emulated compiler.

ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
ARG NODE_IMAGE=docker.io/library/node:22-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12

# ---- web UI ---------------------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
# `npm ci` installs exactly the lockfile; if the lockfile is out of sync with package.json the
# build says so and falls back to `npm install` (the web CI job runs a strict `npm ci`).
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --no-audit --no-fund \
    || { echo "WARNING: npm ci failed (web/package-lock.json out of sync?); using npm install" >&2; \
         npm install --no-audit --no-fund; }
COPY web/ ./
RUN npm run build

# ---- pfc binary -----------------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
ARG BUILDARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# Cross toolchain only when the target differs from the build machine (multi-arch CI builds).
# pfc_target prints the Rust triple for TARGETARCH, or nothing for a native build.
# hadolint ignore=DL3008,SC2016
RUN printf '%s\n' '#!/bin/sh' \
      '[ "${TARGETARCH:-$BUILDARCH}" = "$BUILDARCH" ] && exit 0' \
      'case "$TARGETARCH" in arm64) echo aarch64-unknown-linux-gnu ;; amd64) echo x86_64-unknown-linux-gnu ;;' \
      '  *) echo "unsupported TARGETARCH=$TARGETARCH" >&2; exit 1 ;; esac' > /usr/local/bin/pfc_target \
    && chmod +x /usr/local/bin/pfc_target \
    && triple="$(pfc_target)" \
    && if [ -n "$triple" ]; then \
         gnu="${triple%%-unknown-linux-gnu}-linux-gnu" \
         && apt-get update \
         && apt-get install -y --no-install-recommends "gcc-$(echo "$gnu" | tr _ -)" "libc6-dev-${TARGETARCH}-cross" \
         && rm -rf /var/lib/apt/lists/* \
         && rustup target add "$triple"; \
       fi
COPY . .
COPY --from=web /src/web/dist /src/web/dist
# Cache mounts: the crate registry and target/ survive between builds, so a source edit
# recompiles only pfc's own crates (cross builds use target/<triple>/, native target/release/).
# The binary is copied out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    triple="$(pfc_target)" \
    && if [ -n "$triple" ]; then \
         gnu="${triple%%-unknown-linux-gnu}-linux-gnu" \
         && upper="$(echo "$triple" | tr 'a-z-' 'A-Z_')" \
         && export "CARGO_TARGET_${upper}_LINKER=${gnu}-gcc" "CC_$(echo "$triple" | tr - _)=${gnu}-gcc"; \
       fi \
    && cargo build --release --locked -p pfc ${triple:+--target "$triple"} \
    && mkdir -p /out \
    && cp "target/${triple:+$triple/}release/pfc" /out/pfc
# Smoke test where the binary can run (native builds).
RUN if [ -z "$(pfc_target)" ]; then /out/pfc --help >/dev/null; fi

# ---- runtime --------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="pfc" \
      org.opencontainers.image.description="pfc: jobs, workers, auth, chat and gateway roles in one binary" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/pfc /usr/local/bin/pfc
USER 65532:65532
# gateway HTTP, jobs, auth, chat, worker (health) gRPC ports
EXPOSE 8000 50051 50052 50053 50054
ENTRYPOINT ["/usr/local/bin/pfc"]
CMD ["dev", "--grpc-addr", "0.0.0.0:50051", "--http-addr", "0.0.0.0:8000"]
