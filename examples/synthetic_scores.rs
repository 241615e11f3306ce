//! Writes a synthetic score file for benchmarks and load tests:
//! `cargo run --release --example synthetic_scores -- ENTRIES SEED FILE`.
//!
//! The entries are `spoa::scores::synthetic`'s (mixed IPv4/IPv6, nested, reproducible from the
//! seed), the same the `scores` benchmark measures.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [count, seed, file] => count
            .parse::<usize>()
            .ok()
            .zip(seed.parse::<u64>().ok())
            .map(|(c, s)| (c, s, PathBuf::from(file))),
        _ => None,
    };
    let Some((count, seed, file)) = parsed else {
        eprintln!("usage: synthetic_scores ENTRIES SEED FILE");
        return ExitCode::FAILURE;
    };
    let entries = spoa::scores::synthetic::entries(count, seed);
    match spoa::scores::synthetic::write(&file, &entries, seed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}
