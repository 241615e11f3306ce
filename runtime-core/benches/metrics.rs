//! What counting metrics costs a session, without sockets: batches of 1 and of 32 pipelined
//! NOTIFYs through `Session` (read, engine, ACKs, write), metrics off and on, interleaved; the
//! fastest of several rounds per mode, so that other processes on a shared machine add as little
//! as possible. `cargo bench -p runtime-core --bench metrics`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::Instant;

use runtime_core::{Metrics, Next, ServerConfig, Session};
use spop_core::{
    AckWriter, Arg, FrameId, Handler, HaproxyHello, Message, NotifyWriter, Scope, StreamId,
    TypedData,
};

const NOTIFIES: u32 = 640_000;
const ROUNDS: usize = 15;

struct Score;

impl Handler for Score {
    fn on_message(&mut self, _: &Message<'_>, ack: &mut AckWriter<'_>) {
        let _ = ack.set_var(Scope::Session, b"ip_score", TypedData::Int32(42));
    }

    fn ack_size_hint(&self) -> Option<usize> {
        Some(64)
    }
}

fn hello() -> Vec<u8> {
    let mut out = vec![0u8; 512];
    let n = HaproxyHello {
        supported_versions: Some(b"2.0"),
        max_frame_size: Some(16380),
        capabilities: Some(b"pipelining"),
        engine_id: None,
        healthcheck: false,
    }
    .encode(&mut out)
    .unwrap();
    out.truncate(n);
    out
}

fn batch(depth: u64) -> Vec<u8> {
    let mut all = Vec::new();
    for frame in 0..depth {
        let mut out = vec![0u8; 512];
        let mut w = NotifyWriter::new(&mut out, StreamId(1), FrameId(frame), 16380).unwrap();
        let ip = TypedData::Ipv4(Ipv4Addr::new(192, 0, 2, 1));
        w.message(
            b"check-client-ip",
            &[Arg {
                name: b"",
                value: ip,
            }],
        )
        .unwrap();
        let n = w.finish();
        all.extend_from_slice(&out[..n]);
    }
    all
}

fn feed(s: &mut Session, bytes: &[u8], now: Instant) {
    s.read_buf()[..bytes.len()].copy_from_slice(bytes);
    s.on_read(Ok(bytes.len()), now);
    loop {
        match s.next(&mut Score, now) {
            Next::Write => {
                let n = s.output().len();
                s.on_write(Ok(n), now);
            }
            Next::Read => return,
            Next::Close(end) => panic!("closed: {end:?}"),
        }
    }
}

/// Nanoseconds per NOTIFY over `batches` batches on one session.
fn run(metrics: &Metrics, hello: &[u8], batch: &[u8], batches: u32, depth: u32) -> f64 {
    let config = ServerConfig {
        metrics: metrics.clone(),
        ..ServerConfig::default()
    };
    let mut s = Session::<0>::new(&config, Some(64), Instant::now()).unwrap();
    feed(&mut s, hello, Instant::now());
    let start = Instant::now();
    for _ in 0..batches {
        // The instant a runtime would read after each read and write.
        feed(&mut s, batch, Instant::now());
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(batches * depth)
}

fn main() {
    let hello = hello();
    for depth in [1u32, 32] {
        let batch = batch(u64::from(depth));
        let batches = NOTIFIES / depth;
        let (off, on) = (Metrics::default(), Metrics::enabled());
        let mut best = [f64::MAX; 2];
        for _ in 0..ROUNDS {
            for (i, metrics) in [&off, &on].into_iter().enumerate() {
                best[i] = best[i].min(run(metrics, &hello, &batch, batches, depth));
            }
        }
        let counted = on.snapshot().map(|s| (s.acks, s.latency_count));
        let expected = (
            u64::from(NOTIFIES) * ROUNDS as u64,
            u64::from(batches) * ROUNDS as u64,
        );
        assert_eq!(counted, Some(expected), "every NOTIFY and batch counted");
        let [off, on] = best;
        println!(
            "{depth:>2} NOTIFYs per read: per NOTIFY, metrics off {off:.2} ns, on {on:.2} ns \
             ({:+.1} %; fastest of {ROUNDS} rounds of {NOTIFIES} NOTIFYs)",
            (on - off) * 100.0 / off
        );
    }
}
