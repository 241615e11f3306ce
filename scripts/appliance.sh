#!/usr/bin/env bash
# The appliance firmware (examples/appliance, its own workspace): formatting, lints for
# thumbv7em-none-eabihf, then its conformance run on QEMU's Cortex-M4 board (mps2-an386), whose
# exit status is the verdict. qemu-system-arm is installed when missing and we are root. Without
# it the run fails under CI=true, and elsewhere is skipped with a loud line. Ends with the footprint
# (scripts/appliance-footprint.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../examples/appliance"

if ! command -v qemu-system-arm >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "appliance: installing qemu-system-arm" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends qemu-system-arm; } ||
        echo "appliance: apt-get could not install qemu-system-arm" >&2
fi

rustup target add thumbv7em-none-eabihf >/dev/null
cargo fmt -- --check
cargo clippy --release --locked --all-targets -- -D warnings
cargo build --release --locked

if ! command -v qemu-system-arm >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
        echo "appliance: ERROR: qemu-system-arm is missing (apt-get install qemu-system-arm)" >&2
        exit 1
    fi
    echo "*** SKIPPED: appliance firmware not run: no qemu-system-arm (apt-get install qemu-system-arm) ***"
    exit 0
fi

# The runner (.cargo/config.toml) boots the ELF on mps2-an386 with semihosting; the timeout
# only guards against a firmware that never exits.
start=$(date +%s%N)
timeout 300 cargo run --release --locked --bin conformance
echo "appliance: QEMU run passed in $(( ($(date +%s%N) - start) / 1000000 )) ms"

# What the engine costs in flash, RAM and stack (informational: the goals are in the README).
../../scripts/appliance-footprint.sh
