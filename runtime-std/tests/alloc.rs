//! No allocation per frame on a connection thread: a counting global allocator counts every
//! allocation made on the connection's thread — reads, writes, timeouts, the engine, the
//! handler: the whole connection loop — while 10,000 NOTIFYs are answered after a warm-up, one
//! at a time and then pipelined. Both counts must be 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use runtime_core::{HandlerFactory, ServerConfig};
use runtime_std::Server;
use spop_core::frame::LENGTH_SIZE;
use spop_core::{
    AckWriter, Arg, Frame, FrameId, FrameType, Handler, HaproxyHello, Message, NotifyWriter, Scope,
    StreamId, TypedData,
};

struct Counting;

static COUNTED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set by the handler on the connection thread for the measured NOTIFYs.
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

const WARM_UP: u64 = 1_000;
const MEASURED: u64 = 10_000;
const GAP: u64 = 100;
const PIPELINED: u64 = 10_000;
const BATCH: u64 = 50;
/// The handler allocates once, on purpose, at this NOTIFY: proof that the test sees
/// allocations on the connection thread.
const CANARY: u64 = WARM_UP + 5;

static ANSWERED: AtomicU64 = AtomicU64::new(0);

/// Answers like the IP-reputation handler; switches measuring on and off, on its thread.
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
fn a_connection_thread_allocates_nothing_per_notify() {
    let config = ServerConfig {
        addresses: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        workers: 1,
        // Counting metrics is part of what must not allocate per NOTIFY.
        metrics: runtime_core::Metrics::enabled(),
        ..ServerConfig::default()
    };
    let server = Server::bind(config).unwrap();
    let addr = server.local_addrs()[0];
    let stop = server.shutdown_handle();
    let running = std::thread::spawn(move || server.run(MeasuringFactory));

    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(&hello()).unwrap();
    assert_eq!(read_frame(&mut s), FrameType::AgentHello);
    let frame = notify();

    for _ in 0..WARM_UP + MEASURED + GAP {
        s.write_all(&frame).unwrap();
        assert_eq!(read_frame(&mut s), FrameType::Ack);
    }
    let one_by_one = COUNTED.swap(0, Ordering::Relaxed);
    eprintln!(
        "std, {MEASURED} NOTIFYs one at a time: {} allocations on the connection thread \
         (+1 canary)",
        one_by_one.saturating_sub(1)
    );
    assert_eq!(one_by_one, 1, "allocations per NOTIFY: the canary only");

    let batch: Vec<u8> = (0..BATCH).flat_map(|_| frame.clone()).collect();
    for _ in 0..PIPELINED / BATCH + 1 {
        s.write_all(&batch).unwrap();
        for _ in 0..BATCH {
            assert_eq!(read_frame(&mut s), FrameType::Ack);
        }
    }
    let pipelined = COUNTED.load(Ordering::Relaxed);
    eprintln!("std, {PIPELINED} NOTIFYs in batches of {BATCH}: {pipelined} allocations");
    assert_eq!(pipelined, 0, "allocations per NOTIFY, pipelined");

    drop(s);
    stop.shutdown();
    assert_eq!(running.join().unwrap().unwrap(), 0);
}

fn hello() -> Vec<u8> {
    let mut out = vec![0u8; 1024];
    let n = HaproxyHello {
        supported_versions: Some(b"2.0"),
        max_frame_size: Some(16380),
        ..HaproxyHello::default()
    }
    .encode(&mut out)
    .unwrap();
    out.truncate(n);
    out
}

fn notify() -> Vec<u8> {
    let mut out = vec![0u8; 256];
    let mut w = NotifyWriter::new(&mut out, StreamId(1), FrameId(1), u32::MAX).unwrap();
    let ip = TypedData::Ipv4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    w.message(
        b"check-client-ip",
        &[Arg {
            name: b"",
            value: ip,
        }],
    )
    .unwrap();
    let n = w.finish();
    out.truncate(n);
    out
}

/// Reads one whole frame and returns its type.
fn read_frame(s: &mut TcpStream) -> FrameType {
    let mut len = [0u8; LENGTH_SIZE];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    Frame::decode_body(&body).unwrap().header.frame_type
}
