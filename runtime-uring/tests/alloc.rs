//! No allocation per frame on the executor thread: a counting global allocator counts, on that
//! thread and only while 10,000 NOTIFYs are answered after a warm-up, (a) allocations made while
//! this crate's code runs (`alloc_probe::in_our_code`: the whole connection task — read
//! bookkeeping, `commit_read`, the `process` loop, the engine and the handler — except the polls
//! of glommio's read and write futures), which must be 0, and (b) all allocations on that
//! thread, glommio's reactor and executor included, which must stay below one per 100 NOTIFYs:
//! with the patched glommio (third-party/glommio/PATCHES.md) the only ones left are the
//! reactor's preemption timer, re-armed with a new source now and then (a few per second, 5 in
//! 10,000 NOTIFYs when measured; stock glommio 0.9.0 made 4.3 per NOTIFY).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use common::*;
use runtime_core::HandlerFactory;
use spop_core::{AckWriter, Handler, Message, Scope, TypedData};

struct Counting;

static OURS: AtomicUsize = AtomicUsize::new(0);
static ALL: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set by the handler on the executor thread for the measured NOTIFYs.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        ALL.fetch_add(1, Ordering::Relaxed);
        if runtime_uring::alloc_probe::in_our_code() {
            OURS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// atomics and a const-initialised thread-local (no allocation, no reentrancy).
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

const WARM_UP: u64 = 1_000;
/// NOTIFYs sent one at a time and measured.
const MEASURED: u64 = 10_000;
/// Then unmeasured NOTIFYs, then `PIPELINED` measured ones sent in batches of `BATCH`.
const GAP: u64 = 100;
const PIPELINED: u64 = 10_000;
const BATCH: u64 = 50;
/// All allocations on the executor thread allowed per measured phase of 10,000 NOTIFYs.
const ALL_AT_MOST: usize = 100;
/// The handler allocates once, on purpose, at this NOTIFY: proof that the test sees
/// allocations made in our code.
const CANARY: u64 = WARM_UP + 5;

/// NOTIFYs answered by the measuring handler so far.
static ANSWERED: AtomicU64 = AtomicU64::new(0);

/// Answers like the IP-reputation handler, and switches measuring on and off at the NOTIFY
/// counts above, on the thread it runs on.
struct Measuring;

impl Handler for Measuring {
    fn on_message(&mut self, _message: &Message<'_>, ack: &mut AckWriter<'_>) {
        let n = ANSWERED.fetch_add(1, Ordering::Relaxed) + 1;
        let second = WARM_UP + MEASURED + GAP;
        if n == WARM_UP || n == second {
            MEASURING.with(|m| m.set(true));
        } else if n == WARM_UP + MEASURED || n == second + PIPELINED {
            MEASURING.with(|m| m.set(false));
        }
        if n == CANARY {
            std::hint::black_box(Box::new(n));
        }
        let _ = ack.set_var(Scope::Session, b"ip_score", TypedData::Int32(42));
    }

    fn ack_size_hint(&self) -> Option<usize> {
        Some(128)
    }
}

struct MeasuringFactory;

impl HandlerFactory for MeasuringFactory {
    type Handler = Measuring;

    fn handler(&self, _worker: usize) -> Measuring {
        Measuring
    }
}

#[test]
fn answering_notifies_allocates_nothing_in_our_code() {
    if !uring_available(1) {
        return;
    }
    let server = start(config(1), MeasuringFactory);
    let mut s = session(server.addr);
    let frame = notify(1, 1);

    // Ping-pong: one NOTIFY per read and per write, the worst case for per-frame costs.
    for _ in 0..WARM_UP + MEASURED + GAP {
        s.write_all(&frame).unwrap();
        expect_ack(&mut s);
    }
    let (ours, all) = (
        OURS.swap(0, Ordering::Relaxed),
        ALL.swap(0, Ordering::Relaxed),
    );
    eprintln!(
        "uring, {MEASURED} NOTIFYs one at a time: {} allocations in runtime-uring's connection \
         code (+1 canary), {} on the executor thread in all: {:.4} per NOTIFY",
        ours.saturating_sub(1),
        all.saturating_sub(1),
        all.saturating_sub(1) as f64 / MEASURED as f64
    );
    assert_eq!(
        ours, 1,
        "allocations in our per-connection code: the canary only"
    );
    assert!(
        all.saturating_sub(1) <= ALL_AT_MOST,
        "allocations on the executor thread (reactor included), one at a time: {all}"
    );

    // Pipelined: BATCH NOTIFYs per write; reads hold several frames and partial ones.
    let batch: Vec<u8> = (0..BATCH).flat_map(|_| frame.clone()).collect();
    for _ in 0..PIPELINED / BATCH + 1 {
        s.write_all(&batch).unwrap();
        for _ in 0..BATCH {
            expect_ack(&mut s);
        }
    }
    let (ours, all) = (OURS.load(Ordering::Relaxed), ALL.load(Ordering::Relaxed));
    eprintln!(
        "uring, {PIPELINED} NOTIFYs in batches of {BATCH}: {ours} allocations in our code, \
         {all} in all ({:.4} per NOTIFY)",
        all as f64 / PIPELINED as f64
    );
    assert_eq!(ours, 0, "allocations in our per-connection code, pipelined");
    assert!(
        all <= ALL_AT_MOST,
        "allocations on the executor thread (reactor included), pipelined: {all}"
    );
    drop(s);
    assert_eq!(server.stop().unwrap(), 0);
}

fn expect_ack(s: &mut std::net::TcpStream) {
    let (h, _) = read_frame(s).expect("ACK");
    assert_eq!(h.frame_type, spop_core::FrameType::Ack);
}
