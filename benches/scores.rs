//! Score tables: `cargo bench --bench scores [-- <criterion filter>]`.
//!
//! Chooses and checks the longest-prefix-match structure behind `--scores` on a synthetic table
//! of 1,000,000 mixed IPv4/IPv6 prefixes (`spoa::scores::synthetic`, fixed seed, overlapping):
//!
//! 1. Build, per candidate, from the same entries: wall time, peak heap during the build and
//!    heap kept afterwards (a counting global allocator; for the agent, plus the memory maps
//!    that hold its large arrays on huge pages), then the agent's own path from a file
//!    (read + parse + build, as at startup and on SIGHUP). Printed as a table before criterion
//!    starts; every candidate's answers are cross-checked on every address looked up below.
//! 2. Lookup (criterion): random addresses inside random entries (`hit`) and random addresses
//!    that no entry holds (`miss`), 60 % IPv4, cycling through 64Ki addresses so that the table
//!    is read from memory rather than from a warm cache line.
//! 3. Snapshot per NOTIFY (criterion): what the handler pays to use the latest table: the
//!    generation check it does (one atomic load), against `arc-swap`'s `load` and a mutex.
//!
//! Before criterion's runs, the same lookups run in eleven interleaved rounds, every structure
//! in turn, and their medians are printed: on a shared machine they compare the structures
//! under the same background load, which runs one after another do not.
//!
//! Candidates: the agent's own structure (`src/scores/ranges.rs`: disjoint ranges under a radix
//! index; IPv4 leaves are runs of 16 sorted starts; an IPv6 network alone in its bucket sits in
//! the bucket's 16-byte slot, other IPv6 leaves are blocks of compressed starts packed in
//! 16-byte granules of a line), `prefix-trie` 0.10 (tree bitmap), `ip_network_table` 0.2 (tree bitmap,
//! `treebitmap` fork), `prefix-trie` 0.9 (path-compressed binary trie), `iptrie` 0.11 (LC-trie),
//! `poptrie` 0.2 (poptrie: 64-bit bitmaps and popcount, 6 bits a level) and a sorted-ranges
//! baseline written here (disjoint ranges, binary search).
//!
//! Lookup times on a shared machine move 2x between runs; `examples/score_lookups.rs` counts
//! what the agent's lookups cost in cache misses instead (under cachegrind), which does not.
//!
//! `SPOA_BENCH_PREFIXES=N` changes the table size (default 1,000,000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use spoa::scores::{synthetic, Entry, Prefix, Table};

// ---------------------------------------------------------------------------------------------
// Heap accounting.

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Heap and the score tables' memory maps (`spoa::scores::mapped_bytes`), which the
/// allocator does not see: the agent's table copies its large arrays into maps and frees them,
/// so a peak is the moment just before such a free, counted in `dealloc`.
fn in_use() -> usize {
    LIVE.load(Ordering::Relaxed) + spoa::scores::mapped_bytes()
}

fn grew(bytes: usize) {
    LIVE.fetch_add(bytes, Ordering::Relaxed);
    PEAK.fetch_max(in_use(), Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the accounting only
// touches two atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        PEAK.fetch_max(in_use(), Ordering::Relaxed);
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        PEAK.fetch_max(in_use(), Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `build`, returning its result with the time it took, the peak heap above the heap in
/// use before it, and the heap it left in use.
fn measured<T>(build: impl FnOnce() -> T) -> (T, Duration, usize, usize) {
    let before = in_use();
    PEAK.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let value = build();
    let took = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).max(in_use()) - before;
    let kept = in_use().saturating_sub(before);
    (value, took, peak, kept)
}

// ---------------------------------------------------------------------------------------------
// Candidates.

trait Candidate: Sized {
    const NAME: &'static str;
    fn build(entries: &[Entry]) -> Self;
    /// By reference: see `lookups` for why not by value.
    fn lookup(&self, addr: &IpAddr) -> Option<u8>;
}

impl Candidate for Table {
    const NAME: &'static str = "indexed ranges (the agent)";
    fn build(entries: &[Entry]) -> Self {
        Table::from_entries(entries.iter().copied())
    }
    fn lookup(&self, addr: &IpAddr) -> Option<u8> {
        match addr {
            IpAddr::V4(a) => self.lookup_v4(*a),
            IpAddr::V6(a) => self.lookup_v6(*a),
        }
    }
}

struct TreeBitmap {
    v4: prefix_trie::PrefixMap<(u32, u8), u8>,
    v6: prefix_trie::PrefixMap<(u128, u8), u8>,
}

impl Candidate for TreeBitmap {
    const NAME: &'static str = "prefix-trie 0.10";
    fn build(entries: &[Entry]) -> Self {
        let mut t = TreeBitmap {
            v4: prefix_trie::PrefixMap::new(),
            v6: prefix_trie::PrefixMap::new(),
        };
        for e in entries {
            match e.prefix {
                Prefix::V4 { bits, len } => t.v4.insert((bits, len), e.score),
                Prefix::V6 { bits, len } => t.v6.insert((bits, len), e.score),
            };
        }
        t
    }
    fn lookup(&self, addr: &IpAddr) -> Option<u8> {
        match addr {
            IpAddr::V4(a) => self.v4.get_lpm(&(u32::from(*a), 32)).map(|(_, &s)| s),
            IpAddr::V6(a) => self.v6.get_lpm(&(u128::from(*a), 128)).map(|(_, &s)| s),
        }
    }
}

struct NetworkTable(ip_network_table::IpNetworkTable<u8>);

impl Candidate for NetworkTable {
    const NAME: &'static str = "ip_network_table 0.2";
    fn build(entries: &[Entry]) -> Self {
        let mut t = ip_network_table::IpNetworkTable::new();
        for e in entries {
            let net: ip_network::IpNetwork = match e.prefix {
                Prefix::V4 { bits, len } => ip_network::Ipv4Network::new(Ipv4Addr::from(bits), len)
                    .expect("network")
                    .into(),
                Prefix::V6 { bits, len } => ip_network::Ipv6Network::new(Ipv6Addr::from(bits), len)
                    .expect("network")
                    .into(),
            };
            t.insert(net, e.score);
        }
        NetworkTable(t)
    }
    fn lookup(&self, addr: &IpAddr) -> Option<u8> {
        match addr {
            IpAddr::V4(a) => self.0.longest_match_ipv4(*a).map(|(_, &s)| s),
            IpAddr::V6(a) => self.0.longest_match_ipv6(*a).map(|(_, &s)| s),
        }
    }
}

struct LcTrie {
    v4: iptrie::map::LCTrieMap<iptrie::Ipv4Prefix, u8>,
    v6: iptrie::map::LCTrieMap<iptrie::Ipv6Prefix, u8>,
}

impl Candidate for LcTrie {
    const NAME: &'static str = "iptrie 0.11 (LC-trie)";
    fn build(entries: &[Entry]) -> Self {
        let mut v4 = iptrie::map::RTrieMap::with_root(NONE);
        let mut v6 = iptrie::map::RTrieMap::with_root(NONE);
        for e in entries {
            match e.prefix {
                Prefix::V4 { bits, len } => {
                    let p = iptrie::Ipv4Prefix::new(Ipv4Addr::from(bits), len).expect("prefix");
                    v4.insert(p, e.score);
                }
                Prefix::V6 { bits, len } => {
                    let p = iptrie::Ipv6Prefix::new(Ipv6Addr::from(bits), len).expect("prefix");
                    v6.insert(p, e.score);
                }
            }
        }
        LcTrie {
            v4: v4.compress(),
            v6: v6.compress(),
        }
    }
    fn lookup(&self, addr: &IpAddr) -> Option<u8> {
        let score = match addr {
            IpAddr::V4(a) => *self.v4.lookup(a).1,
            IpAddr::V6(a) => *self.v6.lookup(a).1,
        };
        Some(score).filter(|&s| s != NONE)
    }
}

struct BinaryTrie {
    v4: prefix_trie_09::PrefixMap<(u32, u8), u8>,
    v6: prefix_trie_09::PrefixMap<(u128, u8), u8>,
}

impl Candidate for BinaryTrie {
    const NAME: &'static str = "prefix-trie 0.9";
    fn build(entries: &[Entry]) -> Self {
        let mut t = BinaryTrie {
            v4: prefix_trie_09::PrefixMap::new(),
            v6: prefix_trie_09::PrefixMap::new(),
        };
        for e in entries {
            match e.prefix {
                Prefix::V4 { bits, len } => t.v4.insert((bits, len), e.score),
                Prefix::V6 { bits, len } => t.v6.insert((bits, len), e.score),
            };
        }
        t
    }
    fn lookup(&self, addr: &IpAddr) -> Option<u8> {
        match addr {
            IpAddr::V4(a) => self.v4.get_lpm(&(u32::from(*a), 32)).map(|(_, &s)| s),
            IpAddr::V6(a) => self.v6.get_lpm(&(u128::from(*a), 128)).map(|(_, &s)| s),
        }
    }
}

struct Poptrie {
    v4: poptrie::Poptrie<(u32, u8), u8>,
    v6: poptrie::Poptrie<(u128, u8), u8>,
}

impl Candidate for Poptrie {
    const NAME: &'static str = "poptrie 0.2";
    fn build(entries: &[Entry]) -> Self {
        // The bulk build (`collect`: inserting one by one costs O(n) each); of a network given
        // twice it keeps the later one, as the agent does.
        let v4 = entries
            .iter()
            .filter_map(|e| match e.prefix {
                Prefix::V4 { bits, len } => Some(((bits, len), e.score)),
                Prefix::V6 { .. } => None,
            })
            .collect();
        let v6 = entries
            .iter()
            .filter_map(|e| match e.prefix {
                Prefix::V6 { bits, len } => Some(((bits, len), e.score)),
                Prefix::V4 { .. } => None,
            })
            .collect();
        Poptrie { v4, v6 }
    }
    fn lookup(&self, addr: &IpAddr) -> Option<u8> {
        match addr {
            IpAddr::V4(a) => self.v4.lookup(u32::from(*a)).copied(),
            IpAddr::V6(a) => self.v6.lookup(u128::from(*a)).copied(),
        }
    }
}

/// Disjoint ranges: `starts[i]..starts[i+1]` has `scores[i]` (`NONE`: no entry).
struct Ranges<K> {
    starts: Vec<K>,
    scores: Vec<u8>,
}

const NONE: u8 = u8::MAX;

trait Key: Copy + Ord {
    const ZERO: Self;
    const MAX: Self;
    fn next(self) -> Self;
}

impl Key for u32 {
    const ZERO: Self = 0;
    const MAX: Self = u32::MAX;
    fn next(self) -> Self {
        self + 1
    }
}

impl Key for u128 {
    const ZERO: Self = 0;
    const MAX: Self = u128::MAX;
    fn next(self) -> Self {
        self + 1
    }
}

impl<K: Key> Ranges<K> {
    /// `nets`: (first, last, length, score) in insertion order (a later duplicate wins).
    fn build(mut nets: Vec<(K, K, u8, u8)>) -> Self {
        // Stable: equal networks keep their order, and the last of them is kept.
        nets.sort_by_key(|&(first, _, len, _)| (first, len));
        let mut unique: Vec<(K, K, u8, u8)> = Vec::with_capacity(nets.len());
        for n in nets {
            match unique.last_mut() {
                Some(last) if (last.0, last.2) == (n.0, n.2) => *last = n,
                _ => unique.push(n),
            }
        }
        let mut r = Ranges {
            starts: vec![K::ZERO],
            scores: vec![NONE],
        };
        let mut stack: Vec<(K, u8)> = Vec::new();
        for (first, last, _, score) in unique {
            while let Some(&(end, _)) = stack.last() {
                if end >= first {
                    break;
                }
                stack.pop();
                r.mark(end.next(), stack.last().map_or(NONE, |t| t.1));
            }
            r.mark(first, score);
            stack.push((last, score));
        }
        while let Some((end, _)) = stack.pop() {
            if end != K::MAX {
                r.mark(end.next(), stack.last().map_or(NONE, |t| t.1));
            }
        }
        r.starts.shrink_to_fit();
        r.scores.shrink_to_fit();
        r
    }

    fn mark(&mut self, at: K, score: u8) {
        let n = self.starts.len();
        if self.starts[n - 1] == at {
            self.scores[n - 1] = score;
        } else if self.scores[n - 1] != score {
            self.starts.push(at);
            self.scores.push(score);
        }
    }

    fn lookup(&self, addr: K) -> Option<u8> {
        let i = self.starts.partition_point(|&s| s <= addr) - 1;
        Some(self.scores[i]).filter(|&s| s != NONE)
    }
}

struct SortedRanges {
    v4: Ranges<u32>,
    v6: Ranges<u128>,
}

impl Candidate for SortedRanges {
    const NAME: &'static str = "sorted ranges";
    fn build(entries: &[Entry]) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for e in entries {
            match e.prefix {
                Prefix::V4 { bits, len } => {
                    let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                    v4.push((bits, bits | host, len, e.score));
                }
                Prefix::V6 { bits, len } => {
                    let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                    v6.push((bits, bits | host, len, e.score));
                }
            }
        }
        SortedRanges {
            v4: Ranges::build(v4),
            v6: Ranges::build(v6),
        }
    }
    fn lookup(&self, addr: &IpAddr) -> Option<u8> {
        match addr {
            IpAddr::V4(a) => self.v4.lookup(u32::from(*a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(*a)),
        }
    }
}

// ---------------------------------------------------------------------------------------------

const SEED: u64 = 14;
const QUERIES: usize = 1 << 16;

struct Queries {
    hits: Vec<IpAddr>,
    misses: Vec<IpAddr>,
    /// The hits of one family only, for the agent's rows.
    hits_v4: Vec<IpAddr>,
    hits_v6: Vec<IpAddr>,
}

fn queries(entries: &[Entry], table: &Table) -> Queries {
    let hits = synthetic::hits(entries, QUERIES, SEED + 1);
    let misses: Vec<IpAddr> = synthetic::addresses(QUERIES * 4, SEED + 2)
        .into_iter()
        .filter(|&a| table.lookup(a).is_none())
        .take(QUERIES)
        .collect();
    assert_eq!(
        misses.len(),
        QUERIES,
        "not enough misses among random addresses"
    );
    assert!(hits.iter().all(|&a| table.lookup(a).is_some()));
    let family = |v4: bool| -> Vec<IpAddr> {
        synthetic::hits(entries, QUERIES * 4, SEED + 3)
            .into_iter()
            .filter(|a| a.is_ipv4() == v4)
            .take(QUERIES)
            .collect()
    };
    Queries {
        hits,
        misses,
        hits_v4: family(true),
        hits_v6: family(false),
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn build_row<C: Candidate>(entries: &[Entry], reference: &Table, q: &Queries) -> C {
    let (c, took, peak, kept) = measured(|| C::build(entries));
    for &a in q.hits.iter().chain(&q.misses) {
        assert_eq!(c.lookup(&a), reference.lookup(a), "{} at {a}", C::NAME);
    }
    println!(
        "| {} | {:.2} | {} | {} |",
        C::NAME,
        took.as_secs_f64(),
        mib(peak),
        mib(kept)
    );
    c
}

/// Nanoseconds per lookup over all of `addrs` (four passes).
fn pass<C: Candidate>(table: &C, addrs: &[IpAddr]) -> f64 {
    let started = Instant::now();
    let mut found = 0u64;
    for _ in 0..4 {
        for i in 0..addrs.len() {
            // The index is opaque, not the address: see `lookups`.
            found += u64::from(table.lookup(&addrs[black_box(i)]).is_some());
        }
    }
    black_box(found);
    started.elapsed().as_nanos() as f64 / (4 * addrs.len()) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What one read that misses the caches costs on this machine: a random pointer chase through
/// an array the size of the agent's table (each read depends on the previous one).
fn memory_latency(bytes: usize) -> f64 {
    let n = bytes / 8;
    let mut rng = oorandom::Rand64::new(99);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.rand_range(0..(i as u64 + 1)) as usize);
    }
    let mut next = vec![0usize; n];
    for i in 0..n {
        next[order[i]] = order[(i + 1) % n];
    }
    let steps = 1_000_000;
    let started = Instant::now();
    let mut at = 0;
    for _ in 0..steps {
        at = next[at];
    }
    black_box(at);
    started.elapsed().as_nanos() as f64 / steps as f64
}

fn lookups<C: Candidate>(c: &mut Criterion, table: &C, q: &Queries, by_family: bool) {
    let mut group = c.benchmark_group(format!("lookup/{}", C::NAME));
    group.throughput(Throughput::Elements(1));
    let mut sets = vec![("hit", &q.hits), ("miss", &q.misses)];
    if by_family {
        sets.extend([("hit IPv4", &q.hits_v4), ("hit IPv6", &q.hits_v6)]);
    }
    for (name, addrs) in sets {
        group.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (QUERIES - 1);
                // The index is hidden from the optimiser, not the address, and the address is
                // read where it lies: `black_box(addr)`, or a copy, stores the 17-byte `IpAddr`
                // to the stack as 16 + 1 bytes, and the lookup reads its second half across
                // both stores, a load the processor cannot forward, which held every IPv6
                // lookup until the previous one's reads were done (docs/scores.md).
                table.lookup(&addrs[black_box(i)])
            })
        });
    }
    group.finish();
}

/// Per NOTIFY, what the handler pays to get the table to use: the generation check it does,
/// against the alternatives. Each then reads one field of the table (in cache), so that the
/// numbers are the snapshot's cost, not a lookup's memory reads.
fn snapshots(c: &mut Criterion, table: Table) {
    let table = Arc::new(table);
    let mut group = c.benchmark_group("snapshot per NOTIFY");
    group.throughput(Throughput::Elements(1));
    group.bench_function("own Arc, no check", |b| {
        let mine = Arc::clone(&table);
        b.iter(|| black_box(&mine).len())
    });
    group.bench_function("generation check (the agent)", |b| {
        let generation = AtomicU64::new(1);
        let mut mine = (1u64, Arc::clone(&table));
        b.iter(|| {
            let now = black_box(&generation).load(Ordering::Acquire);
            if now != mine.0 {
                mine = (now, Arc::clone(&table));
            }
            mine.1.len()
        })
    });
    group.bench_function("arc-swap load", |b| {
        let swap = arc_swap::ArcSwap::new(Arc::clone(&table));
        b.iter(|| black_box(&swap).load().len())
    });
    group.bench_function("mutex + Arc clone", |b| {
        let slot = Mutex::new(Arc::clone(&table));
        b.iter(|| Arc::clone(&black_box(&slot).lock().expect("not poisoned")).len())
    });
    group.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench targets without `--bench`: building 1M-entry tables
        // is not a test.
        println!("scores: a benchmark; run it with `cargo bench --bench scores`");
        return;
    }
    let count: usize = std::env::var("SPOA_BENCH_PREFIXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let entries = synthetic::entries(count, SEED);
    let v4 = entries
        .iter()
        .filter(|e| matches!(e.prefix, Prefix::V4 { .. }))
        .count();
    let reference = Table::build(&entries);
    let (u4, u6) = reference.families();
    let q = queries(&entries, &reference);
    let [(r4, n4, d4, b4), (r6, n6, d6, b6)] = reference.shape();
    println!(
        "\n{count} synthetic entries (seed {SEED}): {v4} IPv4, {} IPv6; {u4} + {u6} distinct \
         networks\nthe agent's table: {} MiB; IPv4 {r4} ranges, {n4} index nodes, depth {d4}, \
         {b4} blocks; IPv6 {r6} ranges, {n6} index nodes, depth {d6}, {b6} blocks\n\
         its memory: {:?}\n",
        count - v4,
        mib(reference.mem_size()),
        reference.memory()
    );
    println!("| structure | build s | peak MiB (heap + maps) | kept MiB (heap + maps) |");
    println!("|---|---:|---:|---:|");
    let agent = build_row::<Table>(&entries, &reference, &q);
    let trie10 = build_row::<TreeBitmap>(&entries, &reference, &q);
    let network_table = build_row::<NetworkTable>(&entries, &reference, &q);
    let trie09 = build_row::<BinaryTrie>(&entries, &reference, &q);
    let lctrie = build_row::<LcTrie>(&entries, &reference, &q);
    let ranges = build_row::<SortedRanges>(&entries, &reference, &q);
    let poptrie = build_row::<Poptrie>(&entries, &reference, &q);

    let dir = std::env::temp_dir().join(format!("spoa-bench-scores-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("scores.txt");
    synthetic::write(&path, &entries, SEED).expect("write the table");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let (loaded, took, peak, kept) = measured(|| Table::load(std::slice::from_ref(&path)));
    let loaded = loaded.expect("the synthetic file loads");
    assert_eq!(loaded.len(), reference.len());
    println!(
        "| the agent: Table::load of the {} MiB file (read + parse + build) | {:.2} | {} | {} |\n",
        mib(size as usize),
        took.as_secs_f64(),
        mib(peak),
        mib(kept)
    );
    drop(loaded);
    let _ = std::fs::remove_dir_all(&dir);
    drop(entries);

    // The same lookups, every structure in turn, eleven rounds: the medians compare them under
    // the same background load (criterion's runs below come one structure after another).
    let rounds = 11;
    let mut times: Vec<[Vec<f64>; 2]> = (0..7).map(|_| [Vec::new(), Vec::new()]).collect();
    for _ in 0..rounds {
        for (set, addrs) in [&q.hits, &q.misses].into_iter().enumerate() {
            times[0][set].push(pass(&agent, addrs));
            times[1][set].push(pass(&trie10, addrs));
            times[2][set].push(pass(&network_table, addrs));
            times[3][set].push(pass(&trie09, addrs));
            times[4][set].push(pass(&lctrie, addrs));
            times[5][set].push(pass(&ranges, addrs));
            times[6][set].push(pass(&poptrie, addrs));
        }
    }
    println!("Lookups, ns each, median of {rounds} interleaved rounds of 4 x 64Ki addresses:\n");
    println!("| structure | hit | miss |");
    println!("|---|---:|---:|");
    let names = [
        <Table as Candidate>::NAME,
        TreeBitmap::NAME,
        NetworkTable::NAME,
        BinaryTrie::NAME,
        LcTrie::NAME,
        SortedRanges::NAME,
        Poptrie::NAME,
    ];
    for (name, [hit, miss]) in names.iter().zip(times) {
        println!("| {name} | {:.0} | {:.0} |", median(hit), median(miss));
    }
    let (v4, v6) = (
        median((0..rounds).map(|_| pass(&agent, &q.hits_v4)).collect()),
        median((0..rounds).map(|_| pass(&agent, &q.hits_v6)).collect()),
    );
    println!("| the agent, IPv4 hits only | {v4:.0} | |");
    println!("| the agent, IPv6 hits only | {v6:.0} | |");
    let table_size = agent.mem_size();
    println!(
        "\nOne read missing the caches here (random pointer chase through {} MiB): {:.0} ns\n",
        mib(table_size),
        memory_latency(table_size)
    );

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    lookups(&mut c, &agent, &q, true);
    lookups(&mut c, &trie10, &q, false);
    lookups(&mut c, &network_table, &q, false);
    lookups(&mut c, &trie09, &q, false);
    lookups(&mut c, &lctrie, &q, false);
    lookups(&mut c, &ranges, &q, false);
    lookups(&mut c, &poptrie, &q, false);
    drop((trie10, network_table, trie09, lctrie, ranges));
    snapshots(&mut c, agent);
    c.final_summary();
}
