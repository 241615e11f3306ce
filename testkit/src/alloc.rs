//! "No allocation per NOTIFY", measured the same way on every runtime.
//!
//! [`Counting`] is a global allocator that counts the allocations made on a thread while that
//! thread's "measuring" switch is on ([`measure`]). The [`Measuring`] handler turns the switch on
//! and off on the connection's own thread, at fixed NOTIFY counts ([`WARM_UP`], [`MEASURED`],
//! [`GAP`], [`PIPELINED`]), so only steady-state work on that thread is counted, and allocates
//! once on purpose at [`CANARY`] to prove the counting sees it. A test declares
//!
//! ```ignore
//! #[global_allocator]
//! static COUNTER: spop_testkit::alloc::Counting = spop_testkit::alloc::Counting::new();
//! ```
//!
//! serves [`Measuring`] handlers, drives one connection with [`one_at_a_time`] and
//! [`pipelined`], and reads the counts with [`Counting::take`] after each.
//!
//! A runtime that can tell its own code from a library's (runtime-uring's `alloc_probe`) gives
//! a hook to [`Counting::with_split`]: the allocations for which it answers true are counted a
//! second time, in [`Counts::split`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};

use spop_core::{AckWriter, Handler, Message, Scope, TypedData};

use crate::peer;

thread_local! {
    /// Set by [`Measuring`] on the connection's thread for the measured NOTIFYs.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

/// Switches counting on or off for the calling thread.
pub fn measure(on: bool) {
    MEASURING.with(|m| m.set(on));
}

/// A counting global allocator: forwards everything to [`System`], counts what the measuring
/// threads allocate (allocations, zeroed allocations and reallocations; not frees).
#[derive(Debug)]
pub struct Counting {
    all: AtomicUsize,
    split: AtomicUsize,
    hook: Option<fn() -> bool>,
}

/// The allocations counted since the last [`Counting::take`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Every allocation on a measuring thread.
    pub all: usize,
    /// Those for which the split hook answered true (0 without a hook).
    pub split: usize,
}

impl Counting {
    /// Counts every allocation on a measuring thread.
    pub const fn new() -> Self {
        Counting {
            all: AtomicUsize::new(0),
            split: AtomicUsize::new(0),
            hook: None,
        }
    }

    /// Also counts, in [`Counts::split`], the allocations for which `hook` answers true. The hook
    /// runs inside the allocator: it must not allocate, and should only read a thread-local.
    pub const fn with_split(hook: fn() -> bool) -> Self {
        Counting {
            hook: Some(hook),
            ..Counting::new()
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        Counts {
            all: self.all.load(Ordering::Relaxed),
            split: self.split.load(Ordering::Relaxed),
        }
    }

    /// The counts so far, starting again from 0.
    pub fn take(&self) -> Counts {
        Counts {
            all: self.all.swap(0, Ordering::Relaxed),
            split: self.split.swap(0, Ordering::Relaxed),
        }
    }

    fn note(&self) {
        if MEASURING.try_with(Cell::get).unwrap_or(false) {
            self.all.fetch_add(1, Ordering::Relaxed);
            if self.hook.is_some_and(|hook| hook()) {
                self.split.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Default for Counting {
    fn default() -> Self {
        Counting::new()
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// atomics, a const-initialised thread-local and the hook, which must do the same (no
// allocation, no reentrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// NOTIFYs answered before measuring starts: buffers and caches reach their steady size.
pub const WARM_UP: u64 = 1_000;
/// NOTIFYs sent one at a time and measured.
pub const MEASURED: u64 = 10_000;
/// Then unmeasured NOTIFYs, then [`PIPELINED`] measured ones sent in batches of [`BATCH`].
pub const GAP: u64 = 100;
/// NOTIFYs sent pipelined and measured.
pub const PIPELINED: u64 = 10_000;
/// NOTIFYs per write when pipelined.
pub const BATCH: u64 = 50;
/// The handler allocates once, on purpose, at this NOTIFY: proof that the test sees
/// allocations made on the connection's thread while measuring.
pub const CANARY: u64 = WARM_UP + 5;

/// Answers like the IP-reputation handler (`ip_score` 42), and switches measuring on and off at
/// the NOTIFY counts above, on the thread it runs on. Serve one connection with one of these.
#[derive(Debug, Default)]
pub struct Measuring {
    answered: u64,
}

impl Handler for Measuring {
    fn on_message(&mut self, _message: &Message<'_>, ack: &mut AckWriter<'_>) {
        self.answered += 1;
        let n = self.answered;
        let second = WARM_UP + MEASURED + GAP;
        if n == WARM_UP || n == second {
            measure(true);
        } else if n == WARM_UP + MEASURED || n == second + PIPELINED {
            measure(false);
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

/// The first phase on a connection past its handshake: [`WARM_UP`], [`MEASURED`] and [`GAP`]
/// NOTIFYs one at a time, the worst case for per-frame costs. Counting covers [`MEASURED`] (and
/// the [`CANARY`]).
pub fn one_at_a_time(s: &mut TcpStream, notify: &[u8]) {
    peer::ping_pong(s, notify, WARM_UP + MEASURED + GAP);
}

/// The second phase, after [`one_at_a_time`]: NOTIFYs in batches of [`BATCH`], of which
/// [`PIPELINED`] are counted.
pub fn pipelined(s: &mut TcpStream, notify: &[u8]) {
    peer::pipelined(s, notify, PIPELINED / BATCH + 1, BATCH);
}
