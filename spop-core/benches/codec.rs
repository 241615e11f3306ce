//! NOTIFY -> ACK round trip for the seed `check-client-ip` message, side by side in one run:
//!
//! - `notify+ack/spop-core/*`: `Frame::decode` -> `Notify::from_frame` -> the message named
//!   `check-client-ip`, its first argument, then `AckWriter` (`set_var(sess, "ip_score", int32 42)`)
//!   into a reused `[u8; 64]`.
//! - `notify+ack/spop-crate/*`: the same through the published `spop` 0.13 crate's intended API
//!   (`parse_frame` -> `Box<dyn SpopFrame>`, `Ack::new(..).set_var(..).serialize_into(&mut Vec)`).
//! - `engine/feed/*`: the whole sans-io `Engine` (after a HAPROXY-HELLO), one NOTIFY per `feed`.
//!
//! Every path's output is checked once against the ACK vectors before timing.
//!
//! `cargo bench -p spop-core --bench codec`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use spop_core::{
    AckWriter, Config, Engine, Flow, Frame, Handler, Message, Notify, Parsed, Scope, TypedData,
};

const MAX_FRAME_SIZE: u32 = 16380;

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/vectors/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// spop-core: decode the NOTIFY, take the IP, write the ACK into `out`; returns (IP, ACK size).
#[inline]
fn ours(notify: &[u8], out: &mut [u8; 64]) -> (IpAddr, usize) {
    let Ok(Parsed::Complete(frame, _)) = Frame::decode(notify, MAX_FRAME_SIZE) else {
        panic!("frame");
    };
    let notify = Notify::from_frame(&frame).unwrap();
    let message = notify
        .messages()
        .find(|m| m.name == b"check-client-ip")
        .unwrap();
    let ip = match message.args().next().unwrap().value {
        TypedData::Ipv4(a) => IpAddr::V4(a),
        TypedData::Ipv6(a) => IpAddr::V6(a),
        other => panic!("unexpected {other}"),
    };
    let mut ack = AckWriter::new(out, notify.stream_id, notify.frame_id, MAX_FRAME_SIZE).unwrap();
    ack.set_var(Scope::Session, b"ip_score", TypedData::Int32(42))
        .unwrap();
    (ip, ack.finish())
}

/// The `spop` crate: the same, with its owned frames and a reused `Vec`.
#[inline]
fn theirs(notify: &[u8], out: &mut Vec<u8>) -> IpAddr {
    use spop::frame::FramePayload;
    use spop::frames::Ack;
    use spop::{SpopFrame as _, VarScope};

    let (_rest, frame) = spop::parser::parse_frame(notify).unwrap();
    let md = frame.metadata();
    let FramePayload::ListOfMessages(messages) = frame.payload() else {
        panic!("not a NOTIFY");
    };
    let message = messages
        .iter()
        .find(|m| m.name == "check-client-ip")
        .unwrap();
    let ip = match message.args.first().unwrap().1 {
        spop::TypedData::IPv4(a) => IpAddr::V4(a),
        spop::TypedData::IPv6(a) => IpAddr::V6(a),
        ref other => panic!("unexpected {other:?}"),
    };
    out.clear();
    Ack::new(md.stream_id, md.frame_id)
        .set_var(VarScope::Session, "ip_score", 42i32)
        .serialize_into(out)
        .unwrap();
    ip
}

struct Reputation;

impl Handler for Reputation {
    fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>) {
        if message.name == b"check-client-ip" {
            let _ = ack.set_var(Scope::Session, b"ip_score", TypedData::Int32(42));
        }
    }
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("ipv4", "127.0.0.1".parse::<IpAddr>().unwrap()),
        ("ipv6", "::1".parse::<IpAddr>().unwrap()),
    ];
    let hello = vector("haproxy-hello");

    let mut group = c.benchmark_group("notify+ack");
    for (name, want_ip) in cases {
        let notify = vector(&format!("notify-{name}"));
        let want = vector(&format!("ack-{name}"));

        let mut out = [0u8; 64];
        let (ip, n) = ours(&notify, &mut out);
        assert_eq!((ip, &out[..n]), (want_ip, &want[..]), "spop-core {name}");
        group.bench_function(format!("spop-core/{name}"), |b| {
            b.iter(|| black_box(ours(black_box(&notify), &mut out)));
        });

        let mut out = Vec::with_capacity(256);
        let ip = theirs(&notify, &mut out);
        assert_eq!((ip, &out[..]), (want_ip, &want[..]), "spop crate {name}");
        group.bench_function(format!("spop-crate/{name}"), |b| {
            b.iter(|| {
                black_box(theirs(black_box(&notify), &mut out));
                black_box(&out);
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("engine");
    for (name, _) in cases {
        let notify = vector(&format!("notify-{name}"));
        let want = vector(&format!("ack-{name}"));
        let mut engine: Engine = Engine::new(Config {
            max_frame_size: MAX_FRAME_SIZE,
            ..Config::default()
        })
        .unwrap();
        let mut out = [0u8; 256];
        let p = engine.feed(&hello, &mut out, &mut Reputation);
        assert_eq!((p.consumed, p.flow), (hello.len(), Flow::NeedInput));
        let p = engine.feed(&notify, &mut out, &mut Reputation);
        assert_eq!((p.consumed, p.flow), (notify.len(), Flow::NeedInput));
        assert_eq!(&out[..p.written], &want[..], "engine {name}");
        group.bench_function(format!("feed/{name}"), |b| {
            b.iter(|| black_box(engine.feed(black_box(&notify), &mut out, &mut Reputation)));
        });
        assert!(!engine.is_closed());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
