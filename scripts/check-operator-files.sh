#!/usr/bin/env bash
# Checks the files operators install, with the agent binary they describe:
#   - the man page (`spoa --generate man`): `man -l` renders it without a warning;
#   - the bash completions (`spoa --generate bash`): bash parses them;
#   - examples/systemd/spoa.service and spoa.socket: `systemd-analyze verify` (unknown keys, bad
#     values, a missing binary, a Documentation= man page that does not exist, a socket without
#     its service) prints nothing and passes.
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

mkdir -p "$tmp/man/man1"
"$bin" --generate man > "$tmp/man/man1/spoa.1"
if command -v man >/dev/null 2>&1; then
    if ! rendered=$(man --warnings -l "$tmp/man/man1/spoa.1" 2>"$tmp/man.err") ||
        [ -s "$tmp/man.err" ] || ! grep -q 'SPOA_METRICS_ADDRESS' <<< "$rendered"; then
        echo "spoa --generate man: man -l failed or warned:" >&2
        cat "$tmp/man.err" >&2
        exit 1
    fi
    echo "spoa --generate man: man -l renders it ($(wc -l <<< "$rendered") lines)"
else
    missing man "the man page"
fi

"$bin" --generate bash > "$tmp/spoa.bash"
bash -n "$tmp/spoa.bash"
echo "spoa --generate bash: bash parses it"

if command -v systemd-analyze >/dev/null 2>&1; then
    # The unit as installed, but running the binary just built.
    sed "s|^ExecStart=/usr/local/bin/spoa|ExecStart=$bin|" examples/systemd/spoa.service \
        > "$tmp/spoa.service"
    cp examples/systemd/spoa.socket "$tmp/spoa.socket"
    # MANPATH: Documentation=man:spoa(1) is checked against the page just generated. The socket
    # is verified with its service beside it (its Service=, by name).
    for unit in spoa.service spoa.socket; do
        if ! out=$(cd "$tmp" && MANPATH="$tmp/man" systemd-analyze verify "$tmp/$unit" 2>&1) ||
            [ -n "$out" ]; then
            echo "examples/systemd/$unit: systemd-analyze verify:" >&2
            echo "$out" >&2
            exit 1
        fi
        echo "examples/systemd/$unit: systemd-analyze verify passed"
    done
else
    missing systemd-analyze "examples/systemd/spoa.service and spoa.socket"
fi
