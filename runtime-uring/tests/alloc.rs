//! No allocation per NOTIFY on the uring executor thread: a counting global allocator counts,
//! on the executor thread and only while 10,000 NOTIFYs are answered after a warm-up, (a)
//! allocations made while this crate's code runs (`alloc_probe::in_our_code`: the whole
//! connection task — read bookkeeping, `commit_read`, the `process` loop, the engine and the
//! handler — except the polls of glommio's read and write futures), and (b) all allocations on
//! that thread, glommio's reactor included. Both must be 0 (apart from the canary that proves
//! the counting works): the patched glommio in `third-party/glommio` reuses its sources, timers
//! and buffers (its `PATCHES.md`; stock glommio 0.9.0 allocated 6.3 per NOTIFY here).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use spop_testkit::alloc::{self, Counting, Measuring, BATCH, MEASURED, PIPELINED};

/// `split` counts the allocations made in our code.
#[global_allocator]
static COUNTER: Counting = Counting::with_split(runtime_uring::alloc_probe::in_our_code);

#[test]
fn answering_notifies_allocates_nothing_in_our_code() {
    if !uring_available(1) {
        return;
    }
    // Counting metrics is part of what must not allocate per NOTIFY.
    let config = runtime_core::ServerConfig {
        metrics: runtime_core::Metrics::enabled(),
        ..config(1)
    };
    let server = start(config, |_worker| Measuring::default());
    let mut s = session(server.addr);
    let frame = notify(1, 1);

    // Ping-pong: one NOTIFY per read and per write, the worst case for per-frame costs.
    alloc::one_at_a_time(&mut s, &frame);
    let counts = COUNTER.take();
    eprintln!(
        "uring, {MEASURED} NOTIFYs one at a time: {} allocations in runtime-uring's connection \
         code (+1 canary), {} on the executor thread in all: {:.4} per NOTIFY",
        counts.split.saturating_sub(1),
        counts.all,
        counts.all as f64 / MEASURED as f64
    );
    assert_eq!(
        counts.split, 1,
        "allocations in our per-connection code: the canary only"
    );
    assert_eq!(
        counts.all, 1,
        "allocations on the executor thread, reactor included: the canary only"
    );

    // Pipelined: BATCH NOTIFYs per write; reads hold several frames and partial ones.
    alloc::pipelined(&mut s, &frame);
    let counts = COUNTER.counts();
    eprintln!(
        "uring, {PIPELINED} NOTIFYs in batches of {BATCH}: {} allocations in our code, \
         {} in all ({:.4} per NOTIFY)",
        counts.split,
        counts.all,
        counts.all as f64 / PIPELINED as f64
    );
    assert_eq!(
        counts.split, 0,
        "allocations in our per-connection code, pipelined"
    );
    assert_eq!(
        counts.all, 0,
        "allocations on the executor thread, reactor included, pipelined"
    );

    drop(s);
    assert_eq!(server.stop().unwrap(), 0);
}
