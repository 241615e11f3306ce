#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine, installing what the tests need:
# HAProxy 2.6 (apt) and 3.2 (Debian sid, private prefix), the no_std target, then formatting,
# lints, the no_std builds of spop-core, and the whole test suite (unit, property, loopback and
# real-HAProxy end-to-end tests, on every runtime this machine can run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies (HAProxy 2.6 and 3.2, curl)"
if [ "$(id -u)" = 0 ]; then
    scripts/install-test-deps.sh
elif command -v sudo >/dev/null 2>&1; then
    sudo scripts/install-test-deps.sh
else
    echo "not root and no sudo: installing only HAProxy 3.2 into target/ (2.6 needs apt)" >&2
    scripts/haproxy-sid.sh
fi

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add thumbv7em-none-eabihf >/dev/null

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "spop-core builds for thumbv7em-none-eabihf (no_std): default, no features, defmt"
cargo build -p spop-core --target thumbv7em-none-eabihf
cargo build -p spop-core --target thumbv7em-none-eabihf --no-default-features
cargo build -p spop-core --target thumbv7em-none-eabihf --no-default-features --features defmt

step "cargo test (workspace)"
cargo test --workspace

step "all tests passed"
