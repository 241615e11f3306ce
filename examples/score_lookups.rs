//! Looks up 4 x 64Ki addresses in a synthetic 1,000,000-prefix score table, for counting what a
//! lookup costs in cache misses rather than timing it on a shared machine:
//!
//! ```text
//! cargo build --release --example score_lookups
//! valgrind --tool=cachegrind --cache-sim=yes --LL=8388608,16,64 \
//!     target/release/examples/score_lookups v6     # or v4, or none (the build alone)
//! ```
//!
//! The table and addresses are the `scores` benchmark's kind (`spoa::scores::synthetic`): hits
//! inside random entries of one family. The difference between a run and the `none` run is
//! the lookups' share: divide by 262,144 for the misses per lookup.

use std::hint::black_box;

use spoa::scores::{synthetic, Table};

fn main() {
    let family = std::env::args().nth(1).unwrap_or_default();
    let (v4, count) = match family.as_str() {
        "v4" => (true, 1 << 16),
        "v6" => (false, 1 << 16),
        "none" => (false, 0),
        _ => {
            eprintln!("usage: score_lookups v4|v6|none");
            std::process::exit(2);
        }
    };
    let entries = synthetic::entries(1_000_000, 14);
    let table = Table::from_entries(entries.iter().copied());
    let addrs: Vec<_> = synthetic::hits(&entries, 1 << 18, 17)
        .into_iter()
        .filter(|a| a.is_ipv4() == v4)
        .take(count)
        .collect();
    let started = std::time::Instant::now();
    let mut found = 0u64;
    for _ in 0..4 {
        for &a in &addrs {
            found += u64::from(table.lookup(black_box(a)).is_some());
        }
    }
    let each = started.elapsed().as_nanos() as f64 / (4 * addrs.len().max(1)) as f64;
    println!(
        "{family}: {} lookups, {found} found, {each:.0} ns each",
        4 * addrs.len()
    );
}
