#!/usr/bin/env bash
# Memory soak (docs/reliability.md): a private redis-server, two `pfc jobs`, two `pfc worker`,
# and `pfc bench` submitting RATE jobs/s for MINUTES with a 30 s retention (PFC_JOB_TTL), so
# finished jobs keep expiring while new ones arrive. Every SOAK_SAMPLE seconds it records the
# RSS of every pfc process and Redis' used_memory, key count and `all` index size; at the end
# it reports the growth of each from the end of the warm-up to the end of the run (mean of the
# first 3 samples after the warm-up against the mean of the last 3). Flat = under 10 %.
#
#   scripts/soak.sh [MINUTES=10] [RATE=1000]
#   env: PFC_BIN (a built pfc; default: cargo build --release), SOAK_TTL (30s),
#        SOAK_SAMPLE (10 s), SOAK_WARMUP (90 s: three retentions), SOAK_OUT (CSV file),
#        SOAK_REDIS_PORT (16479), SOAK_GRPC_PORT (15151; +1..+4 for the others)
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
RATE=${2:-1000}
TTL=${SOAK_TTL:-30s}
SAMPLE=${SOAK_SAMPLE:-10}
WARMUP=${SOAK_WARMUP:-90}
PORT=${SOAK_REDIS_PORT:-16479}
GRPC=${SOAK_GRPC_PORT:-15151}
command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install redis-server"; exit 1; }
command -v redis-cli >/dev/null || { echo "redis-cli missing: apt-get install redis-tools"; exit 1; }
if [ -z "${PFC_BIN:-}" ]; then
  cargo build --release --locked -p pfc >/dev/null
  PFC_BIN=${CARGO_TARGET_DIR:-target}/release/pfc
fi
DIR=$(mktemp -d)
OUT=${SOAK_OUT:-$DIR/soak.csv}
pids=()
cleanup() {
  # the load generator and pfc processes first, Redis last
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR/redis"
}
trap cleanup EXIT
mkdir -p "$DIR/redis"
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR/redis" >/dev/null &
pids+=($!)
REDIS_PID=$!
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
export PFC_REDIS_URL=redis://127.0.0.1:$PORT PFC_LOG=warn PFC_JOB_TTL=$TTL
names=(redis)
procs=("$REDIS_PID")
for i in 1 2; do
  "$PFC_BIN" jobs --grpc-addr "127.0.0.1:$((GRPC + i - 1))" >"$DIR/jobs-$i.log" 2>&1 &
  pids+=($!); names+=("jobs-$i"); procs+=($!)
done
# workers reach the jobs core through a jobs server where `pfc worker` has --jobs-url, else
# through Redis (PFC_REDIS_URL)
via_jobs=0
case "$("$PFC_BIN" worker --help)" in *--jobs-url*) via_jobs=1 ;; esac
for i in 1 2; do
  wflags=()
  if [ "$via_jobs" = 1 ]; then wflags=(--jobs-url "http://127.0.0.1:$((GRPC + i - 1))"); fi
  "$PFC_BIN" worker "${wflags[@]}" --grpc-addr "127.0.0.1:$((GRPC + 1 + i))" --concurrency 64 >"$DIR/worker-$i.log" 2>&1 &
  pids+=($!); names+=("worker-$i"); procs+=($!)
done
for p in $(seq 0 3); do
  for _ in $(seq 100); do "$PFC_BIN" probe grpc "127.0.0.1:$((GRPC + p))" 2>/dev/null && break; sleep 0.1; done
done
JOBS=$((MINUTES * 60 * RATE))
echo "soak: $JOBS jobs at $RATE/s for $MINUTES min, retention $TTL, sample every $SAMPLE s, warm-up $WARMUP s"
echo "CSV: $OUT; process logs: $DIR"
echo "  $(echo "t_s,redis_used_mib,redis_keys,all_index,${names[*]}" | tr ' ' ',') (RSS MiB)"
# one load generator, its connections spread over both jobs servers
"$PFC_BIN" bench --url "http://127.0.0.1:$GRPC" --also-url "http://127.0.0.1:$((GRPC + 1))" \
  --jobs "$JOBS" --rate "$RATE" --concurrency 64 --connections 4 --timeout 300s >"$DIR/bench.txt" 2>&1 &
BENCH=$!
pids+=($BENCH)

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo nan; }
redis_stat() {
  local mem keys all
  mem=$(redis-cli -p "$PORT" info memory | awk -F: '/^used_memory:/ { printf "%.1f", $2 / 1048576 }')
  keys=$(redis-cli -p "$PORT" dbsize)
  all=$(redis-cli -p "$PORT" zcard 'pfc:{default}:all')
  echo "$mem,$keys,$all"
}
header="t_s,redis_used_mib,redis_keys,all_index"
for n in "${names[@]}"; do header+=",${n}_rss_mib"; done
echo "$header" >"$OUT"
start=$(date +%s)
while kill -0 "$BENCH" 2>/dev/null; do
  line="$(($(date +%s) - start)),$(redis_stat)"
  for p in "${procs[@]}"; do line+=",$(rss_mib "$p")"; done
  echo "$line" >>"$OUT"
  echo "  $line"
  sleep "$SAMPLE"
done
rc=0
wait "$BENCH" || rc=$?
echo "== pfc bench"
cat "$DIR/bench.txt"
[ "$rc" = 0 ] || { echo "pfc bench failed (exit $rc)"; exit 1; }
warnings=$(cat "$DIR"/jobs-*.log "$DIR"/worker-*.log | grep -c WARN || true)
echo "pfc warnings logged: $warnings (in $DIR)"
echo "== growth after the warm-up ($WARMUP s): mean of the first 3 samples after it vs the last 3"
awk -F, -v warm="$WARMUP" '
  NR == 1 { for (i = 2; i <= NF; i++) name[i] = $i; cols = NF; next }
  $1 >= warm { n++; for (i = 2; i <= cols; i++) v[n, i] = $i }
  END {
    if (n < 6) { print "too few samples after the warm-up (" n "): run longer or lower SOAK_WARMUP"; exit 2 }
    worst = 0
    for (i = 2; i <= cols; i++) {
      a = (v[1, i] + v[2, i] + v[3, i]) / 3; b = (v[n - 2, i] + v[n - 1, i] + v[n, i]) / 3
      g = a > 0 ? (b - a) * 100 / a : 0
      printf "  %-20s %12.1f -> %12.1f  %+7.1f %%\n", name[i], a, b, g
      if (name[i] != "redis_keys" && name[i] != "all_index" && g > worst) worst = g
    }
    printf "worst memory growth: %+.1f %% (%s)\n", worst, worst < 10 ? "flat: under 10 %" : "GROWING: 10 % or more"
  }' "$OUT"
