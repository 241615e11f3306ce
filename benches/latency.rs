//! The cross-runtime latency benchmark: `cargo bench --bench latency [-- <spoa-loadgen flags>]`.
//!
//! Runs `spoa-loadgen`'s matrix (the canned responder, then every runtime of the `spoa` binary
//! that cargo built for this bench, at every shape) and writes `target/bench/latency.md` and
//! `target/bench/latency-<shape>.svg`. Flags after `--` are `spoa-loadgen`'s (`--runtimes`,
//! `--shapes`, `--duration`, `--warmup`, `--out`, ...). A recorded run is in README.md,
//! "Benchmarks".

use std::ffi::OsString;

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let bench_mode = args.iter().any(|a| a == "--bench");
    args.retain(|a| a != "--bench");
    let is_responder = args.iter().any(|a| a == "--responder");
    if !bench_mode && !is_responder {
        // `cargo test --benches` runs bench targets without `--bench`: a 90 s matrix is not a test.
        println!("latency: a benchmark; run it with `cargo bench --bench latency`");
        return;
    }
    let user: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = if user.is_empty() {
        "cargo bench --bench latency".to_string()
    } else {
        format!("cargo bench --bench latency -- {}", user.join(" "))
    };
    if !is_responder && !args.iter().any(|a| a == "--agent") {
        // The `spoa` binary cargo built with this bench (release settings).
        args.insert(1, env!("CARGO_BIN_EXE_spoa").into());
        args.insert(1, "--agent".into());
    }
    std::process::exit(spoa_loadgen::cli::main(args, Some(command)));
}
