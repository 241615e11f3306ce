//! The IP-reputation handler with a score table allocates nothing per NOTIFY, before and right
//! after a reload: a counting global allocator counts every allocation made on this thread while
//! spop-core's engine feeds 10,000 NOTIFYs (hits, misses, IPv4, IPv6, IPv4-mapped) to the very
//! handler the binary uses, then 10,000 more just after a new table was published (the first of
//! them takes the new table). Both counts must be 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use spoa::reload::Scores;
use spoa::reputation::IpReputation;
use spoa::scores::{synthetic, Entry, Prefix, Table};
use spop_core::{Ack, Action, Config, Engine, Flow, Frame, Scope, TypedData};

struct Counting;

static COUNTED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        COUNTED.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only an
// atomic and a const-initialised thread-local (no allocation, no reentrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `work` runs.
fn allocations(work: impl FnOnce()) -> usize {
    COUNTED.store(0, Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    work();
    MEASURING.with(|m| m.set(false));
    COUNTED.swap(0, Ordering::Relaxed)
}

const BATCH: usize = 50;
const BATCHES: usize = 200;

/// A table of synthetic networks plus 192.0.2.0/24 scored `marker`.
fn table(seed: u64, marker: u8) -> Table {
    let mut entries = synthetic::entries(20_000, seed);
    entries.push(Entry {
        prefix: Prefix::parse("192.0.2.0/24").unwrap(),
        score: marker,
    });
    Table::from_entries(entries)
}

/// The score in the first ACK of `out`, decoded without allocating.
fn first_score(out: &[u8]) -> i64 {
    let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
    let frame = Frame::decode_body(&out[4..4 + len]).unwrap();
    let ack = Ack::from_frame(&frame).unwrap();
    let mut actions = ack.actions();
    let score = match actions.next() {
        Some(Ok(Action::SetVar {
            scope: Scope::Session,
            name: b"ip_score",
            value: TypedData::Int32(v),
        })) => i64::from(v),
        other => panic!("not one ip_score: {other:?}"),
    };
    assert!(actions.next().is_none(), "one action only");
    score
}

#[test]
fn the_handler_with_a_table_allocates_nothing_per_notify_even_after_a_reload() {
    assert_eq!(
        allocations(|| drop(std::hint::black_box(Box::new(1u64)))),
        1,
        "the counter sees this thread's allocations"
    );
    let scores = Scores::new(Vec::new(), table(1, 11));
    // What the factory makes for a worker (built directly: no runtime is involved here).
    let mut handler = IpReputation::new(7, 0, None).with_scores(scores.reader());
    let mut engine: Engine = Engine::new(Config::default()).unwrap();
    let mut out = vec![0u8; 1 << 20];
    let hello = support::hello(16380);
    let p = engine.feed(&hello, &mut out, &mut handler);
    assert_eq!((p.consumed, p.flow), (hello.len(), Flow::NeedInput));

    let entries = synthetic::entries(20_000, 1);
    let mut addresses: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap()];
    addresses.extend(synthetic::hits(&entries, BATCH / 2 - 1, 3));
    addresses.extend(synthetic::addresses(BATCH / 2, 4));
    addresses[BATCH - 1] = "::ffff:192.0.2.7".parse().unwrap();
    assert_eq!(addresses.len(), BATCH);
    let batch: Vec<u8> = addresses
        .iter()
        .enumerate()
        .flat_map(|(i, &a)| {
            let ip = match a {
                IpAddr::V4(a) => TypedData::Ipv4(a),
                IpAddr::V6(a) => TypedData::Ipv6(a),
            };
            support::notify(2 * i as u64 + 1, 1, ip)
        })
        .collect();

    let mut run = |handler: &mut _, batches: usize| {
        let mut first = None;
        for _ in 0..batches {
            let p = engine.feed(&batch, &mut out, handler);
            assert_eq!((p.consumed, p.flow), (batch.len(), Flow::NeedInput));
            first.get_or_insert_with(|| first_score(&out));
        }
        first.unwrap()
    };
    assert_eq!(run(&mut handler, 5), 11, "warm-up, first table");
    let mut score = 0;
    let n = allocations(|| score = run(&mut handler, BATCHES));
    eprintln!("{} NOTIFYs with a table: {n} allocations", BATCH * BATCHES);
    assert_eq!((n, score), (0, 11));

    scores.publish(Arc::new(table(2, 22)));
    let n = allocations(|| score = run(&mut handler, BATCHES));
    eprintln!(
        "{} NOTIFYs right after a reload: {n} allocations",
        BATCH * BATCHES
    );
    assert_eq!((n, score), (0, 22), "the new table, without allocating");
    assert_eq!(scores.lookups().lookups, (BATCH * (2 * BATCHES + 5)) as u64);
}
