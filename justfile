# pfc's command reference: `just --list`. See https://just.systems/man/en
export RUST_BACKTRACE := env_var_or_default("RUST_BACKTRACE", "short")

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

# All lints
lint: check-fmt clippy

# What CI runs (bootstrap + lints + tests + shipping checks)
ci:
    bash .ci/run
