//! Looks up 4 x 64Ki addresses in a synthetic 1,000,000-prefix score table, for counting what a
//! lookup costs in cache misses rather than timing it on a shared machine:
//!
//! ```text
//! cargo build --release --example score_lookups
//! valgrind --tool=cachegrind --cache-sim=yes --LL=8388608,16,64 \
//!     target/release/examples/score_lookups v6 [dry]    # or v4, hit, miss
//! ```
//!
//! The table and addresses are the `scores` benchmark's kind (`spoa::scores::synthetic`): hits
//! inside random entries of one family (`v4`, `v6`) or of both (`hit`, 60 % IPv4, the
//! benchmark's `hit` row), or random addresses in no entry (`miss`, 60 % IPv4). A run
//! minus its `dry` run (the same without the counted lookups) is the lookups' share: divide by
//! 262,144 for the misses per lookup. `chain` makes each lookup wait for the one before (its
//! address depends on that answer): the time per lookup is then one lookup's latency, where
//! without it several lookups overlap in the processor.
//!
//! A third argument, a count of addresses (default 65536, at most 65536), sweeps the working
//! set: the same 4 x 64Ki lookups cycle over fewer distinct addresses, so their lines stay in
//! cache; `score_lookups v6 - 1024` is the lookup's cost with (nearly) no memory reads.

use std::hint::black_box;
use std::net::IpAddr;

use spoa::scores::{synthetic, Table};

fn main() {
    let family = std::env::args().nth(1).unwrap_or_default();
    let distinct = match std::env::args().nth(3).map(|n| n.parse::<usize>()) {
        None => 1 << 16,
        Some(Ok(n)) if (1..=1 << 16).contains(&n) => n,
        Some(_) => {
            eprintln!("score_lookups: the count of addresses is 1..=65536");
            std::process::exit(2);
        }
    };
    let entries = synthetic::entries(1_000_000, 14);
    let table = Table::from_entries(entries.iter().copied());
    let hits = |v4: bool| {
        synthetic::hits(&entries, 1 << 18, 17)
            .into_iter()
            .filter(move |a| a.is_ipv4() == v4)
    };
    let addrs: Vec<_> = match family.as_str() {
        "v4" => hits(true).take(1 << 16).collect(),
        "v6" => hits(false).take(1 << 16).collect(),
        "hit" => synthetic::hits(&entries, 1 << 16, 17),
        "miss" => synthetic::addresses(1 << 18, 18)
            .into_iter()
            .filter(|&a| table.lookup(a).is_none())
            .take(1 << 16)
            .collect(),
        _ => {
            eprintln!("usage: score_lookups v4|v6|hit|miss [dry|chain|-] [ADDRESSES]");
            std::process::exit(2);
        }
    };
    let mode = std::env::args().nth(2).unwrap_or_default();
    let rounds = if mode == "dry" {
        0
    } else {
        4 * (1 << 16) / distinct
    };
    let addrs = &addrs[..distinct.min(addrs.len())];
    // `chain`: each lookup's address depends on the previous lookup's answer (through a zero
    // the compiler cannot see), so lookups cannot overlap: the latency one lookup alone sees.
    let zero = black_box(0usize);
    let chain = mode == "chain";
    let started = std::time::Instant::now();
    let mut found = 0u64;
    let mut last = 0usize;
    for _ in 0..rounds {
        for i in 0..addrs.len() {
            let at = if chain { i ^ (last & zero) } else { i };
            // By reference, as `benches/scores.rs` does (a copy of the address on the stack
            // stalls the lookup's read of it).
            let score = match &addrs[black_box(at)] {
                IpAddr::V4(a) => table.lookup_v4(*a),
                IpAddr::V6(a) => table.lookup_v6(*a),
            };
            last = usize::from(score.unwrap_or(0));
            found += u64::from(score.is_some());
        }
    }
    let lookups = rounds * addrs.len();
    let each = started.elapsed().as_nanos() as f64 / lookups.max(1) as f64;
    // How much of the process is on transparent huge pages (Linux): the table's arrays should be.
    let huge = std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .unwrap_or_else(|| "?".into());
    println!(
        "{family}: {lookups} lookups, {found} found, {each:.0} ns each; table {:.1} MiB, \
         {huge} kB of the process on huge pages",
        table.mem_size() as f64 / (1024.0 * 1024.0)
    );
}
