//! Looks up 4 x 64Ki addresses in a synthetic 1,000,000-prefix score table, for counting what a
//! lookup costs in cache misses rather than timing it on a shared machine:
//!
//! ```text
//! cargo build --release --example score_lookups
//! valgrind --tool=cachegrind --cache-sim=yes --LL=8388608,16,64 \
//!     target/release/examples/score_lookups v6 [dry]    # or v4, or miss
//! ```
//!
//! The table and addresses are the `scores` benchmark's kind (`spoa::scores::synthetic`): hits
//! inside random entries of one family, or random addresses in no entry (60 % IPv4). A run
//! minus its `dry` run (the same without the counted lookups) is the lookups' share: divide by
//! 262,144 for the misses per lookup.

use std::hint::black_box;

use spoa::scores::{synthetic, Table};

fn main() {
    let family = std::env::args().nth(1).unwrap_or_default();
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
        "miss" => synthetic::addresses(1 << 18, 18)
            .into_iter()
            .filter(|&a| table.lookup(a).is_none())
            .take(1 << 16)
            .collect(),
        _ => {
            eprintln!("usage: score_lookups v4|v6|miss [dry]");
            std::process::exit(2);
        }
    };
    let rounds = if std::env::args().nth(2).as_deref() == Some("dry") {
        0
    } else {
        4
    };
    let started = std::time::Instant::now();
    let mut found = 0u64;
    for _ in 0..rounds {
        for &a in &addrs {
            found += u64::from(table.lookup(black_box(a)).is_some());
        }
    }
    let lookups = rounds * addrs.len();
    let each = started.elapsed().as_nanos() as f64 / lookups.max(1) as f64;
    println!("{family}: {lookups} lookups, {found} found, {each:.0} ns each");
}
