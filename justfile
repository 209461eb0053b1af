# pfc's command reference: `just --list`. See https://just.systems/man/en
export RUST_BACKTRACE := env_var_or_default("RUST_BACKTRACE", "short")

# Container engine and compose runner: podman when installed (this project's CI), else docker.
# Override with PFC_ENGINE=docker / PFC_COMPOSE="docker compose".
engine := env("PFC_ENGINE", `command -v podman >/dev/null && echo podman || echo docker`)
compose := env("PFC_COMPOSE", `command -v podman-compose >/dev/null && echo podman-compose || echo docker compose`)
image := env("PFC_IMAGE", "pfc:local")

# List the recipes
default:
    @just --list

# Run pfc in one process (in-memory store; UI on http://localhost:8000, gRPC on :50051)
dev *flags:
    cargo run -p pfc -- dev {{ flags }}

# Run the whole test suite (installs redis-server if missing)
test *flags:
    scripts/test.sh {{ flags }}

# Run one crate's tests
test-crate crate *flags:
    cargo test --package={{ crate }} --locked {{ flags }}

# Format the code
fmt:
    cargo fmt --all

# Check formatting
check-fmt:
    cargo fmt --all --check

# Lint the Rust code (warnings are errors)
clippy:
    cargo clippy --workspace --all-targets --locked -- -D warnings

# All lints (Rust, shipping files, Helm chart)
lint: check-fmt clippy lint-shipping chart-lint

# Lint Dockerfiles, compose/compose.yaml and the GitHub workflows (hadolint, compose spec, actionlint)
lint-shipping:
    scripts/ci/lint-shipping.sh

# Lint and validate the Helm chart (scripts/chart/verify.sh)
chart-lint:
    scripts/chart/verify.sh

# Build the web UI in web/ (npm ci + vite build -> web/dist, embedded into pfc at compile time)
web:
    cd web && npm ci --no-audit --no-fund && npm run build

# Build the pfc image from the multi-stage Dockerfile (tag: PFC_IMAGE, default pfc:local)
images *flags:
    {{ engine }} build {{ if engine == "podman" { "--format docker" } else { "" } }} -t {{ image }} {{ flags }} .

# Package a host-built release binary into the runtime image in ~1 s (compose/Dockerfile.prebuilt)
images-prebuilt:
    cargo build --release --locked -p pfc
    {{ engine }} build -f compose/Dockerfile.prebuilt -t {{ image }} .

# Start the compose stack (Redis, jobs, 2 workers, auth, chat, gateway on http://localhost:8000)
compose-up *flags:
    {{ compose }} -f compose/compose.yaml up -d {{ flags }}

# Stop the compose stack (add -v to drop Redis' data volume)
compose-down *flags:
    {{ compose }} -f compose/compose.yaml down {{ flags }}

# Prove the compose stack in real containers (podman): REST, gRPC, chat, a worker killed under load
compose-e2e:
    scripts/compose-e2e.sh

# Load-test a running stack over gRPC (e.g. after `just compose-up`; see `pfc bench --help`)
bench *flags:
    cargo run --release -p pfc -- bench {{ flags }}

# pfc against BullMQ on the same Redis in the same run (throughput, and clients each watching their own job)
bench-peers jobs="50000" clients="256" secs="20":
    scripts/bench-peers.sh {{ jobs }} {{ clients }} {{ secs }}

# The reproducible jobs benchmark of docs/benchmarks.md: private Redis, pfc jobs, workers, pfc bench
bench-jobs jobs="200000" workers="2" concurrency="64":
    scripts/bench.sh {{ jobs }} {{ workers }} {{ concurrency }}

# The fault-injection suite (docs/reliability.md): real Redis (AOF), 2 jobs servers, 3 workers, seeded
# faults under load. Short run by default; long run: `just faults 600 $RANDOM`
faults secs="60" seed="1" *flags:
    PFC_FAULTS_SECS={{ secs }} PFC_FAULTS_SEED={{ seed }} cargo test -p pfc --test faults --locked {{ flags }} -- --nocapture

# Memory soak (docs/reliability.md): 1,000 jobs/s for MINUTES with a 30 s retention; RSS and Redis used_memory
soak minutes="10" rate="1000":
    scripts/soak.sh {{ minutes }} {{ rate }}

# What CI runs (bootstrap + lints + tests + shipping checks)
ci:
    bash .ci/run

# Run the Helm chart in real containers (podman kube play, values-local.yaml) and do a job round trip
chart-e2e:
    scripts/chart/kube-play-e2e.sh

# Lint the .proto files with buf (the API's one source of truth)
proto-lint:
    scripts/ci/lint-proto.sh
