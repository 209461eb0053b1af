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
# `npm ci` installs exactly the lockfile, and fails when it is out of sync with package.json:
# a release never builds from versions nobody reviewed.
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# ---- Rust toolchain, cross tools, cargo-chef ------------------------------------------------
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS chef
ARG TARGETARCH
ARG BUILDARCH
ARG CARGO_CHEF_VERSION=0.1.78
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# Cross toolchain only when the target differs from the build machine (multi-arch CI builds).
# pfc_target prints the Rust triple for TARGETARCH, or nothing for a native build; pfc_cargo runs
# cargo with that target and its linker (`pfc_cargo build ...` -> target/<triple>/release/).
# hadolint ignore=DL3008,SC2016
RUN printf '%s\n' '#!/bin/sh' \
      '[ "${TARGETARCH:-$BUILDARCH}" = "$BUILDARCH" ] && exit 0' \
      'case "$TARGETARCH" in arm64) echo aarch64-unknown-linux-gnu ;; amd64) echo x86_64-unknown-linux-gnu ;;' \
      '  *) echo "unsupported TARGETARCH=$TARGETARCH" >&2; exit 1 ;; esac' > /usr/local/bin/pfc_target \
    && printf '%s\n' '#!/bin/sh' 'set -e' 'triple="$(pfc_target)"' \
      'if [ -z "$triple" ]; then exec cargo "$@"; fi' \
      'gnu="${triple%%-unknown-linux-gnu}-linux-gnu"' \
      'upper="$(echo "$triple" | tr "a-z-" "A-Z_")"' \
      'export "CARGO_TARGET_${upper}_LINKER=${gnu}-gcc" "CC_$(echo "$triple" | tr - _)=${gnu}-gcc"' \
      'exec cargo "$@" --target "$triple"' > /usr/local/bin/pfc_cargo \
    && chmod +x /usr/local/bin/pfc_target /usr/local/bin/pfc_cargo \
    && triple="$(pfc_target)" \
    && if [ -n "$triple" ]; then \
         gnu="${triple%%-unknown-linux-gnu}-linux-gnu" \
         && apt-get update \
         && apt-get install -y --no-install-recommends "gcc-$(echo "$gnu" | tr _ -)" "libc6-dev-${TARGETARCH}-cross" \
         && rm -rf /var/lib/apt/lists/* \
         && rustup target add "$triple"; \
       fi
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"

# ---- dependency recipe: Cargo.toml files and Cargo.lock only ----------------------------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---- pfc binary -----------------------------------------------------------------------------
FROM chef AS build
# Every dependency is compiled in this layer, which changes only with the recipe: a source or
# docs edit reuses it from the layer cache (also GitHub's `type=gha` cache, which does not keep
# cache mounts), and only pfc's own crates compile below.
COPY --from=planner /src/recipe.json recipe.json
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    pfc_cargo chef cook --release --locked -p pfc --recipe-path recipe.json
COPY . .
COPY --from=web /src/web/dist /src/web/dist
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    pfc_cargo build --release --locked -p pfc \
    && mkdir -p /out \
    && triple="$(pfc_target)" \
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
