#!/usr/bin/env bash
# pfc against BullMQ, same machine, same redis-server, same run (docs/benchmarks.md):
#   1. throughput: producers keep jobs in flight, workers uppercase the text, jobs/s end to end;
#   2. watch: CLIENTS clients each submit a job and wait for *that* job to finish, in a loop.
# pfc runs as the split deployment (pfc jobs + WORKERS pfc worker, release build); BullMQ as
# its own producer and worker (32 adds in flight, concurrency 50). Usage:
#   scripts/bench-peers.sh [JOBS] [CLIENTS] [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-50000}
CLIENTS=${2:-256}
SECS=${3:-20}
WORKERS=${BENCH_WORKERS:-2}
PORT=${BENCH_REDIS_PORT:-16379}
GRPC=${BENCH_GRPC_PORT:-15051}
command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install redis-server"; exit 1; }
cargo build --release --locked -p pfc >/dev/null
(cd scripts/bench/bullmq && npm ci --no-audit --no-fund >/dev/null)
BIN=${CARGO_TARGET_DIR:-target}/release/pfc
DIR=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" >/dev/null &
pids+=($!); REDIS_PID=$!
sleep 0.5
flush() { redis-cli -p "$PORT" FLUSHALL >/dev/null; }

echo "== BullMQ throughput ($JOBS jobs)"
node scripts/bench/bullmq/bench.mjs --redis "redis://127.0.0.1:$PORT" --shape throughput --jobs "$JOBS"
flush
echo "== BullMQ watch ($CLIENTS clients, ${SECS} s)"
node scripts/bench/bullmq/bench.mjs --redis "redis://127.0.0.1:$PORT" --shape watch --clients "$CLIENTS" --secs "$SECS" 2>/dev/null
flush

export PFC_REDIS_URL=redis://127.0.0.1:$PORT PFC_LOG=warn
$BIN jobs --grpc-addr 127.0.0.1:"$GRPC" & pids+=($!); JOBS_PID=$!
for _ in $(seq 50); do $BIN probe grpc 127.0.0.1:"$GRPC" 2>/dev/null && break; sleep 0.1; done
wargs=()
for i in $(seq "$WORKERS"); do
  $BIN worker --jobs-url http://127.0.0.1:"$GRPC" --grpc-addr 127.0.0.1:$((GRPC + i)) --concurrency 64 & pids+=($!)
  wargs+=(--pid "worker-$i=$!")
done
sleep 1
echo "== pfc throughput ($JOBS jobs)"
$BIN bench --url http://127.0.0.1:"$GRPC" --jobs "$JOBS" --concurrency 128 --connections 4 \
  --pid "redis=$REDIS_PID" --pid "pfc-jobs=$JOBS_PID" "${wargs[@]}"
if $BIN bench --help | grep -q -- '--watch-own'; then
  echo "== pfc watch ($CLIENTS clients, ${SECS} s)"
  $BIN bench --url http://127.0.0.1:"$GRPC" --watch-own --concurrency "$CLIENTS" --duration "${SECS}s" \
    --pid "redis=$REDIS_PID" --pid "pfc-jobs=$JOBS_PID" "${wargs[@]}"
fi
