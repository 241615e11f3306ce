#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine, installing what the tests need:
# HAProxy 2.6 (apt) and 3.2 (Debian sid, private prefix), QEMU, the no_std target, then formatting,
# lints, the no_std builds of spop-core, the appliance firmware under QEMU, and the whole test
# suite (unit, property, loopback and real-HAProxy end-to-end tests, on every runtime this
# machine can run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies (HAProxy 2.6 and 3.2, curl, qemu-system-arm, promtool, systemd-analyze)"
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

step "appliance firmware (examples/appliance) on QEMU's Cortex-M4: fmt, clippy, conformance run"
scripts/appliance.sh

step "cargo test (workspace)"
cargo test --workspace

step "operators' files: the man page, completions, the systemd unit"
scripts/check-operator-files.sh

step "fuzzing: each cargo-fuzz target for ${FUZZ_SECONDS:=30} s, seeded with the captured vectors"
if cargo +nightly --version >/dev/null 2>&1; then
    command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
    cargo test -p spop-core --test build_corpus -- --ignored
    (
        cd fuzz
        for target in decode engine; do
            cargo +nightly fuzz run "$target" -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 2>&1 |
                grep -E 'stat::number_of_executed_units|Done|ERROR|panicked|SUMMARY' || true
            # A finding leaves an artifact and a non-zero exit: fail on either.
            if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
                echo "fuzz target $target found a crash: fuzz/artifacts/$target" >&2
                exit 1
            fi
        done
    )
else
    echo "*** SKIPPED: no nightly toolchain (rustup toolchain install nightly) for cargo-fuzz ***"
fi

step "all tests passed"
