#!/usr/bin/env bash
# What spop-core costs on a Cortex-M4, as linked in examples/appliance (thumbv7em-none-eabihf,
# opt-level "s", fat LTO, one codegen unit):
#   - flash of the engine and codec: .text + .rodata of `footprint-agent` minus those of
#     `footprint-baseline`, the same firmware without the engine; and what makes up the difference
#   - RAM of the whole agent: `footprint-agent`'s .data + .bss, plus its stack high-water mark
#     (the engine is a local of main, so it is in the stack figure)
#   - the worst-case stack of Engine::feed over the conformance run
# The last two are measured by running the firmwares under QEMU (stack painting); without
# qemu-system-arm only the flash figures are printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../examples/appliance"

rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || rustup target add thumbv7em-none-eabihf
cargo build --release --locked --quiet

host=$(rustc -vV | sed -n 's/^host: //p')
tools="$(rustc --print sysroot)/lib/rustlib/$host/bin"
# llvm-size / llvm-nm of rustup's llvm-tools when installed, else GNU binutils' size / nm (there
# wherever a host linker is): both read the ARM ELF's sections and demangle Rust names.
tool() {
    if [ -x "$tools/llvm-$1" ]; then echo "$tools/llvm-$1"
    elif command -v "$1" >/dev/null 2>&1; then command -v "$1"
    else echo "appliance-footprint: neither llvm-$1 (rustup component add llvm-tools) nor $1 (binutils)" >&2; exit 1
    fi
}
size=$(tool size)
nm=$(tool nm)
elf=target/thumbv7em-none-eabihf/release

# section NAME ELF: its size in bytes (0 when absent).
section() { "$size" -A "$2" | awk -v s="$1" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'; }

declare -A text rodata data bss
for bin in footprint-baseline footprint-agent; do
    text[$bin]=$(section .text "$elf/$bin")
    rodata[$bin]=$(section .rodata "$elf/$bin")
    data[$bin]=$(section .data "$elf/$bin")
    bss[$bin]=$(section .bss "$elf/$bin")
done

flash_delta=$(( text[footprint-agent] + rodata[footprint-agent] - text[footprint-baseline] - rodata[footprint-baseline] ))
verdict() { if [ "$1" -le "$2" ]; then echo "met"; else echo "MISSED"; fi; }

echo "spop-core on thumbv7em-none-eabihf (Cortex-M4F), opt-level \"s\", LTO, as linked in examples/appliance"
echo
echo "flash, bytes               .text  .rodata    total   .data (initializers, also in flash)"
for bin in footprint-baseline footprint-agent; do
    printf '  %-22s %8d %8d %8d %7d\n' "$bin" "${text[$bin]}" "${rodata[$bin]}" \
        $(( text[$bin] + rodata[$bin] )) "${data[$bin]}"
done
printf '  engine + codec (agent - baseline): %d B = %s KiB   goal <= 16 KiB: %s\n' \
    "$flash_delta" "$(awk -v b="$flash_delta" 'BEGIN { printf "%.1f", b / 1024 }')" \
    "$(verdict "$flash_delta" 16384)"

echo
echo "what the agent's .text adds over the baseline, by kind (symbol sizes, hashes ignored):"
added=$(mktemp)
trap 'rm -f "$added"' EXIT
# One line per symbol: normalized name and size; the binary's own crate name is made neutral so
# that main and its inlined callees compare across the two builds.
symbols() {
    "$nm" --print-size --demangle --radix=d "$1" |
        awk 'NF >= 4 && $3 ~ /^[tT]$/ { name = $4; for (i = 5; i <= NF; i++) name = name " " $i;
                                        sub(/::h[0-9a-f]+$/, "", name);
                                        gsub(/footprint_(agent|baseline)/, "BIN", name);
                                        print $2 + 0 "\t" name }'
}
awk -F'\t' '
    FNR == NR { base[$2] += $1; next }
    { agent[$2] += $1 }
    END {
        for (name in agent) {
            delta = agent[name] - base[name]
            if (delta == 0) continue
            if (name ~ /spop_core/ && name !~ /core(::|\.\.)fmt/) kind = "spop-core functions kept out of line"
            else if (name ~ /core(::|\.\.)fmt|Display|Formatter|pad_integral/) kind = "core::fmt and Display impls (AGENT-DISCONNECT messages)"
            else if (name ~ /compiler_builtins|__aeabi|^mem/) kind = "compiler builtins (64-bit division, memory)"
            else if (name ~ /^BIN::/) kind = "main, with the engine inlined into it"
            else kind = "other"
            total[kind] += delta
            printf "%d\t%s\n", delta, name > "/dev/stderr"
        }
        for (kind in total) printf "  %7d  %s\n", total[kind], kind
    }' <(symbols "$elf/footprint-baseline") <(symbols "$elf/footprint-agent") 2>"$added" | sort -rn
printf '  %7d  .rodata (tables, strings, panic locations: not attributable by symbol)\n' \
    $(( rodata[footprint-agent] - rodata[footprint-baseline] ))
echo "largest symbols among them:"
sort -rn "$added" | head -12 | awk -F'\t' '{ printf "  %7d  %s\n", $1, substr($2, 1, 90) }'

echo
if ! command -v qemu-system-arm >/dev/null 2>&1; then
    echo "RAM and stack: not measured (they run the firmware: apt-get install qemu-system-arm)"
    exit 0
fi
run() { timeout 120 cargo run --release --locked --quiet --bin "$1" 2>/dev/null; }
agent_stack=$(run footprint-agent | sed -n 's/.*stack used since reset: \([0-9]*\) bytes.*/\1/p')
feed_stack=$(run conformance | sed -n 's/^stack high-water of Engine::feed[^:]*: \([0-9]*\) bytes.*/\1/p')
if [ -z "$agent_stack" ] || [ -z "$feed_stack" ]; then
    echo "appliance-footprint: a firmware run failed (scripts/appliance.sh shows why)" >&2
    exit 1
fi
static_ram=$(( data[footprint-agent] + bss[footprint-agent] ))
ram=$(( static_ram + agent_stack ))
echo "RAM of the whole agent (footprint-agent), bytes"
printf '  .data + .bss (input 1 KiB, output 1 KiB): %d\n' "$static_ram"
printf '  stack high-water since reset (the engine, a local of main, included): %d\n' "$agent_stack"
printf '  total: %d B   goal <= 4 KiB: %s\n' "$ram" "$(verdict "$ram" 4096)"
echo
printf 'stack of Engine::feed (handler included), worst case over the conformance run: %d B   goal <= 1 KiB: %s\n' \
    "$feed_stack" "$(verdict "$feed_stack" 1024)"
