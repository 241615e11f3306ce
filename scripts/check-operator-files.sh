#!/usr/bin/env bash
# Checks the files operators install, with the agent binary they describe:
#   - examples/systemd/spoa.service: `systemd-analyze verify` (unknown keys, bad values, a
#     missing binary) must print nothing and pass.
# Under CI=true a missing tool fails; elsewhere it is skipped with a loud note.
#   scripts/check-operator-files.sh [SPOA_BINARY]      default: target/debug/spoa (built if missing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${1:-target/debug/spoa}
[ -x "$bin" ] || cargo build -q -p spoa
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

missing() {
    if [ "${CI:-}" = true ]; then
        echo "check-operator-files: $1 is missing (scripts/install-test-deps.sh installs it)" >&2
        exit 1
    fi
    echo "*** SKIPPED: $1 is missing: $2 not checked ***"
}

if command -v systemd-analyze >/dev/null 2>&1; then
    # The unit as installed, but running the binary just built.
    sed "s|^ExecStart=/usr/local/bin/spoa|ExecStart=$bin|" examples/systemd/spoa.service \
        > "$tmp/spoa.service"
    if ! out=$(systemd-analyze verify --man=no "$tmp/spoa.service" 2>&1) || [ -n "$out" ]; then
        echo "examples/systemd/spoa.service: systemd-analyze verify:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "examples/systemd/spoa.service: systemd-analyze verify passed"
else
    missing systemd-analyze examples/systemd/spoa.service
fi
