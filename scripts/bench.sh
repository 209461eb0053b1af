#!/usr/bin/env bash
# Reproducible jobs benchmark (docs/benchmarks.md): starts a private redis-server, one
# `pfc jobs`, WORKERS `pfc worker` processes, then runs `pfc bench`: flat out (throughput) and
# at a fixed 1,000 jobs/s (latency) with one WatchJobs stream, then the shape of many clients
# each watching its own job (256 clients: submit, WatchJob to the end, repeat) at a fixed
# 1,000 jobs/s and flat out — reporting CPU per job and RSS of every process. Everything on
# this machine, on loopback. Usage:
#   scripts/bench.sh [JOBS] [WORKERS] [CONCURRENCY_PER_WORKER]
# The workers speak the worker protocol to `pfc jobs` (the Rust SDK, as in production).
# BENCH_RUNS picks runs (default "throughput latency own-rate own-max"); PFC_BIN uses a given
# pfc binary instead of building one (e.g. to compare two commits).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-200000}
WORKERS=${2:-2}
CONC=${3:-64}
PORT=${BENCH_REDIS_PORT:-16379}
GRPC=${BENCH_GRPC_PORT:-15051}
command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install redis-server"; exit 1; }
RUNS=${BENCH_RUNS:-throughput latency own-rate own-max}
if [ -n "${PFC_BIN:-}" ]; then
  BIN=$PFC_BIN
else
  cargo build --release --locked -p pfc >/dev/null
  BIN=${CARGO_TARGET_DIR:-target}/release/pfc
fi
DIR=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" >/dev/null &
pids+=($!); REDIS_PID=$!
sleep 0.5
export PFC_REDIS_URL=redis://127.0.0.1:$PORT PFC_LOG=warn
$BIN jobs --grpc-addr 127.0.0.1:"$GRPC" & pids+=($!); JOBS_PID=$!
wargs=()
for i in $(seq "$WORKERS"); do
  $BIN worker --grpc-addr 127.0.0.1:$((GRPC + i)) --concurrency "$CONC" --jobs-url "http://127.0.0.1:$GRPC" & pids+=($!)
  wargs+=(--pid "worker-$i=$!")
done
for _ in $(seq 50); do $BIN probe grpc 127.0.0.1:"$GRPC" 2>/dev/null && break; sleep 0.1; done
echo "== workers: $WORKERS x $CONC (worker protocol)"
pids_args=(--pid "redis=$REDIS_PID" --pid "pfc-jobs=$JOBS_PID" "${wargs[@]}")
for run in $RUNS; do
  case $run in
  throughput)
    echo "== throughput: $JOBS jobs, as fast as possible"
    $BIN bench --url http://127.0.0.1:"$GRPC" --jobs "$JOBS" --concurrency "${BENCH_SUBMITTERS:-128}" \
      --connections "${BENCH_CONNECTIONS:-4}" "${pids_args[@]}" ;;
  latency)
    echo "== latency: 1,000 jobs/s for 20 s"
    $BIN bench --url http://127.0.0.1:"$GRPC" --jobs 20000 --rate 1000 --concurrency 32 "${pids_args[@]}" ;;
  own-rate)
    echo "== 256 clients each watching its own job, 1,000 jobs/s for 20 s"
    $BIN bench --url http://127.0.0.1:"$GRPC" --shape watch-own --jobs 20000 --rate 1000 --concurrency 256 \
      --connections 8 "${pids_args[@]}" ;;
  own-max)
    echo "== 256 clients each watching its own job, as fast as possible: $JOBS jobs"
    $BIN bench --url http://127.0.0.1:"$GRPC" --shape watch-own --jobs "$JOBS" --concurrency 256 \
      --connections 8 "${pids_args[@]}" ;;
  *) echo "unknown run $run"; exit 1 ;;
  esac
  echo
done
