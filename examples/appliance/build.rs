//! Build script: puts `memory.x` where cortex-m-rt's `link.x` finds it, and turns HAProxy's
//! captured frames (`spop-core/tests/vectors/**/*.hex`, one frame of hex text per file) into
//! binaries the firmware takes with `include_bytes!`. The firmware thus checks itself against the
//! very bytes the host tests use, and nothing outside this repository is read.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    fs::copy(manifest.join("memory.x"), out.join("memory.x")).expect("copy memory.x to OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=memory.x");

    let vectors = manifest.join("../../spop-core/tests/vectors");
    println!("cargo:rerun-if-changed={}", vectors.display());
    let bins = out.join("vectors");
    fs::create_dir_all(&bins).expect("create OUT_DIR/vectors");
    convert(&vectors, &bins);
}

/// Decodes every `*.hex` under `dir` (one level of subfolders, as `haproxy-3.x/`) into
/// `bins/<name>.bin`; subfolder files keep their `v31-` / `v34-` names, which are unique.
fn convert(dir: &Path, bins: &Path) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("read a vectors entry").path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            convert(&path, bins);
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "hex") {
            continue;
        }
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let bytes = decode_hex(text.trim())
            .unwrap_or_else(|| panic!("{} is not one line of hex", path.display()));
        let stem = path.file_stem().expect("a .hex file has a stem");
        let target = bins.join(stem).with_extension("bin");
        fs::write(&target, bytes).unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}
