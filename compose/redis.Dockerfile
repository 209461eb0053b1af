# syntax=docker/dockerfile:1
#
# Redis from Debian's redis-server package, for machines that cannot pull the public
# `redis:7` image (the compose file's default). Used by scripts/compose-e2e.sh:
#   podman build -f compose/redis.Dockerfile -t localhost/pfc-redis:7 compose/
# Same contract as the official image for what compose.yaml uses: `redis-server` and
# `redis-cli` on PATH, data in /data, runs as a non-root user.

ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data \
    && chown redis:redis /data
WORKDIR /data
VOLUME /data
# hadolint ignore=DL3066
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no", "--dir", "/data"]
