//! The session's decisions, driven with instants chosen by the test: the handshake, frame and
//! write deadlines, and what end of input, a socket timeout, an I/O error, a stop and a panicking
//! handler each mean. No sleeping: time only moves when a test says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use runtime_core::{End, Next, ServerConfig, Session};
use spop_core::{
    AckWriter, Close, Disconnect, Error, Frame, FrameType, Handler, Handshake, Message, Parsed,
    Scope, TypedData,
};
use spop_testkit::peer;

const HELLO: Duration = Duration::from_secs(5);
const FRAME: Duration = Duration::from_secs(3);
const WRITE: Duration = Duration::from_secs(10);

fn config() -> ServerConfig {
    ServerConfig {
        hello_timeout: Some(HELLO),
        frame_timeout: Some(FRAME),
        write_timeout: Some(WRITE),
        ..ServerConfig::default()
    }
}

struct Score;

impl Handler for Score {
    fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>) {
        assert!(message.name != b"panic", "told to panic");
        let _ = ack.set_var(Scope::Session, b"ip_score", TypedData::Int32(42));
    }

    fn ack_size_hint(&self) -> Option<usize> {
        Some(64)
    }
}

fn hello() -> Vec<u8> {
    peer::hello(16380)
}

fn notify_named(stream: u64, name: &[u8]) -> Vec<u8> {
    let ip = TypedData::Ipv4(Ipv4Addr::new(192, 0, 2, 1));
    peer::notify_message(stream, 1, name, &[(b"", ip)])
}

fn notify(stream: u64) -> Vec<u8> {
    notify_named(stream, b"check-client-ip")
}

/// Copies `bytes` into the session's read buffer and reports the read at `now`.
fn receive(s: &mut Session, bytes: &[u8], now: Instant) {
    let buf = s.read_buf();
    buf[..bytes.len()].copy_from_slice(bytes);
    s.on_read(Ok(bytes.len()), now);
}

/// Runs `next` and, while it asks to write, "writes" everything; returns what was written and
/// the step that followed.
fn step(s: &mut Session, now: Instant) -> (Vec<u8>, Next) {
    let mut written = Vec::new();
    loop {
        match s.next(&mut Score, now) {
            Next::Write => {
                written.extend_from_slice(s.output());
                let n = s.output().len();
                s.on_write(Ok(n), now);
            }
            other => return (written, other),
        }
    }
}

fn frame_types(bytes: &[u8]) -> Vec<FrameType> {
    let mut types = Vec::new();
    let mut rest = bytes;
    while let Ok(Parsed::Complete(frame, n)) = Frame::decode(rest, u32::MAX) {
        types.push(frame.header.frame_type);
        rest = &rest[n..];
    }
    assert!(rest.is_empty(), "trailing bytes");
    types
}

fn disconnect_status(bytes: &[u8]) -> u32 {
    let Ok(Parsed::Complete(frame, _)) = Frame::decode(bytes, u32::MAX) else {
        panic!("no frame")
    };
    assert_eq!(frame.header.frame_type, FrameType::AgentDisconnect);
    Disconnect::parse(frame.payload).unwrap().status.code()
}

fn session(t0: Instant) -> Session {
    Session::new(&config(), Score.ack_size_hint(), t0).unwrap()
}

/// A session past the handshake at `t0`.
fn running(t0: Instant) -> Session {
    let mut s = session(t0);
    receive(&mut s, &hello(), t0);
    let (out, next) = step(&mut s, t0);
    assert_eq!(frame_types(&out), [FrameType::AgentHello]);
    assert!(matches!(next, Next::Read));
    s
}

fn at(t0: Instant, millis: u64) -> Instant {
    t0 + Duration::from_millis(millis)
}

#[test]
fn a_new_connection_must_complete_its_hello_within_the_hello_timeout() {
    let t0 = Instant::now();
    let mut s = session(t0);
    assert!(matches!(s.next(&mut Score, t0), Next::Read));
    assert_eq!(s.poll_timeout(), Some(t0 + HELLO));
    // Half a HELLO does not move the handshake deadline.
    let hello = hello();
    receive(&mut s, &hello[..10], at(t0, 4000));
    assert!(matches!(step(&mut s, at(t0, 4000)).1, Next::Read));
    assert_eq!(s.poll_timeout(), Some(t0 + HELLO));
    s.handle_timeout(t0 + HELLO - Duration::from_millis(1));
    assert!(matches!(s.next(&mut Score, t0), Next::Read), "not yet");
    s.handle_timeout(t0 + HELLO);
    let (out, next) = step(&mut s, t0 + HELLO);
    assert_eq!(disconnect_status(&out), 2);
    assert!(matches!(
        next,
        Next::Close(End::Closed(Close::Error(Error::Timeout)))
    ));
}

#[test]
fn an_idle_connection_between_frames_has_no_deadline() {
    let t0 = Instant::now();
    let mut s = running(t0);
    assert_eq!(s.poll_timeout(), None);
    receive(&mut s, &notify(1), at(t0, 10));
    let (out, next) = step(&mut s, at(t0, 10));
    assert_eq!(frame_types(&out), [FrameType::Ack]);
    assert!(matches!(next, Next::Read));
    assert_eq!(s.poll_timeout(), None);
    // Hours later, still nothing to time out.
    s.handle_timeout(at(t0, 10_000_000));
    assert!(matches!(s.next(&mut Score, at(t0, 10_000_000)), Next::Read));
}

#[test]
fn a_started_frame_must_arrive_within_the_frame_timeout() {
    let t0 = Instant::now();
    let mut s = running(t0);
    let n = notify(1);
    receive(&mut s, &n[..5], at(t0, 100));
    assert!(matches!(step(&mut s, at(t0, 100)).1, Next::Read));
    assert_eq!(s.poll_timeout(), Some(at(t0, 100) + FRAME));
    // More of the same frame does not restart its clock.
    receive(&mut s, &n[5..8], at(t0, 2000));
    assert!(matches!(step(&mut s, at(t0, 2000)).1, Next::Read));
    assert_eq!(s.poll_timeout(), Some(at(t0, 100) + FRAME));
    s.handle_timeout(at(t0, 100) + FRAME);
    let (out, next) = step(&mut s, at(t0, 3100));
    assert_eq!(disconnect_status(&out), 2);
    assert!(matches!(
        next,
        Next::Close(End::Closed(Close::Error(Error::Timeout)))
    ));
}

#[test]
fn the_frame_clock_restarts_with_every_frame_consumed() {
    let t0 = Instant::now();
    let mut s = running(t0);
    let frames: Vec<Vec<u8>> = (1..=10).map(notify).collect();
    let half = frames[0].len() / 2;
    receive(&mut s, &frames[0][..half], t0);
    // Every read ends half-way into the next frame, 2 s apart: 20 s in all, far past the 3 s
    // frame timeout, yet every frame took 2 s.
    for (i, frame) in frames.iter().enumerate() {
        let now = at(t0, 2000 * (i as u64 + 1));
        s.handle_timeout(now);
        let mut chunk = frame[half..].to_vec();
        if let Some(next) = frames.get(i + 1) {
            chunk.extend_from_slice(&next[..half]);
        }
        receive(&mut s, &chunk, now);
        let (out, next) = step(&mut s, now);
        assert_eq!(frame_types(&out), [FrameType::Ack], "frame {i}");
        assert!(matches!(next, Next::Read));
        if i + 1 < frames.len() {
            assert_eq!(s.poll_timeout(), Some(now + FRAME), "frame {i}");
        }
    }
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_socket_timeout_before_the_deadline_does_not_close() {
    let t0 = Instant::now();
    let mut s = running(t0);
    receive(&mut s, &notify(1)[..5], t0);
    assert!(matches!(step(&mut s, t0).1, Next::Read));
    // The socket gave up early (its clock rounds differently): the deadline decides.
    s.on_read(Err(io::ErrorKind::WouldBlock.into()), at(t0, 2999));
    assert!(matches!(s.next(&mut Score, at(t0, 2999)), Next::Read));
    s.on_read(Err(io::ErrorKind::TimedOut.into()), at(t0, 3000));
    let (out, _) = step(&mut s, at(t0, 3000));
    assert_eq!(disconnect_status(&out), 2);
}

#[test]
fn replies_must_make_progress_within_the_write_timeout() {
    let t0 = Instant::now();
    let mut s = running(t0);
    receive(&mut s, &[notify(1), notify(2)].concat(), t0);
    assert!(matches!(s.next(&mut Score, t0), Next::Write));
    assert_eq!(s.poll_timeout(), Some(t0 + WRITE));
    // Part of it went out at 9 s: the clock restarts.
    s.on_write(Ok(3), at(t0, 9000));
    assert!(matches!(s.next(&mut Score, at(t0, 9000)), Next::Write));
    assert_eq!(s.poll_timeout(), Some(at(t0, 9000) + WRITE));
    s.on_write(Err(io::ErrorKind::WouldBlock.into()), at(t0, 9000) + WRITE);
    // The peer does not read: closed without a goodbye it would not read either.
    match s.next(&mut Score, at(t0, 19000)) {
        Next::Close(End::WriteStalled) => {}
        other => panic!("expected a write stall, got {other:?}"),
    }
}

#[test]
fn end_of_input_between_frames_is_the_peer_closing() {
    let t0 = Instant::now();
    let mut s = running(t0);
    s.on_read(Ok(0), t0);
    assert!(matches!(step(&mut s, t0), (out, Next::Close(End::Eof)) if out.is_empty()));
}

#[test]
fn a_stopping_agent_answers_what_it_received_then_says_agent_disconnect_0() {
    let t0 = Instant::now();
    let mut s = running(t0);
    s.drain();
    receive(&mut s, &notify(7), t0);
    let (out, next) = step(&mut s, t0);
    assert_eq!(frame_types(&out), [FrameType::Ack]);
    assert!(matches!(next, Next::Read));
    s.on_read(Ok(0), t0);
    let (out, next) = step(&mut s, t0);
    assert_eq!(disconnect_status(&out), 0);
    assert!(matches!(next, Next::Close(End::Closed(Close::Shutdown))));
}

#[test]
fn a_stop_before_the_handshake_closes_without_a_frame() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.drain();
    s.on_read(Ok(0), t0);
    assert!(matches!(
        step(&mut s, t0),
        (out, Next::Close(End::Closed(Close::Shutdown))) if out.is_empty()
    ));
}

#[test]
fn an_io_error_ends_the_connection_without_writing() {
    let t0 = Instant::now();
    let mut s = running(t0);
    receive(&mut s, &notify(1), t0);
    assert!(matches!(s.next(&mut Score, t0), Next::Write));
    s.on_write(Err(io::ErrorKind::BrokenPipe.into()), t0);
    match s.next(&mut Score, t0) {
        Next::Close(End::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
        other => panic!("expected an I/O end, got {other:?}"),
    }
}

#[test]
fn an_interrupted_read_changes_nothing() {
    let t0 = Instant::now();
    let mut s = running(t0);
    s.on_read(Err(io::ErrorKind::Interrupted.into()), t0);
    assert!(matches!(s.next(&mut Score, t0), Next::Read));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_panicking_handler_ends_only_its_connection() {
    let t0 = Instant::now();
    let mut s = running(t0);
    receive(&mut s, &notify_named(1, b"panic"), t0);
    let (out, next) = step(&mut s, t0);
    assert!(out.is_empty());
    assert!(matches!(next, Next::Close(End::HandlerPanicked)));
}

#[test]
fn one_read_of_pipelined_notifies_is_answered_in_one_write() {
    let t0 = Instant::now();
    let mut s = running(t0);
    let batch: Vec<u8> = (1..=20).flat_map(notify).collect();
    receive(&mut s, &batch, t0);
    assert!(matches!(s.next(&mut Score, t0), Next::Write));
    assert_eq!(frame_types(s.output()), vec![FrameType::Ack; 20]);
}

#[test]
fn a_health_check_gets_agent_hello_then_a_close() {
    let t0 = Instant::now();
    let mut s = session(t0);
    receive(&mut s, &peer::healthcheck_hello(), t0);
    let (out, next) = step(&mut s, t0);
    assert_eq!(frame_types(&out), [FrameType::AgentHello]);
    assert!(matches!(next, Next::Close(End::Closed(Close::Healthcheck))));
}

#[test]
fn a_socket_timeout_is_set_again_only_when_it_matters() {
    use runtime_core::SocketTimeout;
    let t0 = Instant::now();
    let mut t = SocketTimeout::default();
    // No deadline, none set: nothing to do.
    assert_eq!(t.update(None, t0), None);
    // A deadline appears.
    assert_eq!(
        t.update(Some(at(t0, 5000)), t0),
        Some(Some(FRAME + Duration::from_secs(2)))
    );
    // The next frame's clock restarted a few ms later: the one set is still right.
    assert_eq!(t.update(Some(at(t0, 5003)), at(t0, 3)), None);
    // Time passes on a stuck frame: once the set timeout would overrun by a tenth, set again.
    assert_eq!(t.update(Some(at(t0, 5000)), at(t0, 400)), None);
    assert_eq!(
        t.update(Some(at(t0, 5000)), at(t0, 600)),
        Some(Some(Duration::from_millis(4400)))
    );
    // The deadline goes away (between frames).
    assert_eq!(t.update(None, at(t0, 700)), Some(None));
    // A passed deadline still waits 1 ms, never 0 (which would mean no timeout).
    assert_eq!(
        t.update(Some(t0), at(t0, 800)),
        Some(Some(Duration::from_millis(1)))
    );
}

// =============================================================================================
// Metrics
// =============================================================================================

#[test]
fn metrics_time_each_batch_from_its_read_to_the_write_that_flushed_it() {
    let metrics = runtime_core::Metrics::enabled();
    let config = ServerConfig {
        metrics: metrics.clone(),
        ..config()
    };
    let t0 = Instant::now();
    let mut s = Session::<0>::new(&config, Some(64), t0).unwrap();
    receive(&mut s, &hello(), t0);
    let _ = step(&mut s, t0);
    // Two NOTIFYs in one read at t0+1ms; the write that flushes their ACKs ends at t0+1.3ms,
    // in two parts: only the second completes the batch.
    let read_at = t0 + Duration::from_millis(1);
    receive(&mut s, &[notify(1), notify(2)].concat(), read_at);
    assert!(matches!(s.next(&mut Score, read_at), Next::Write));
    s.on_write(Ok(3), read_at + Duration::from_micros(100));
    s.on_write(Ok(s.output().len()), read_at + Duration::from_micros(300));
    let snap = metrics.snapshot().unwrap();
    assert_eq!((snap.notifies, snap.acks, snap.hellos), (2, 2, 1));
    assert_eq!(snap.latency_count, 1, "one batch");
    assert_eq!(snap.latency_sum, Duration::from_micros(300));
    // 300 µs: the bucket up to 500 µs (the fifth).
    assert_eq!(snap.latency_buckets[4], 1, "{:?}", snap.latency_buckets);
    // A second batch, read at +11 ms and flushed 50 ms later.
    receive(&mut s, &notify(3), read_at + Duration::from_millis(10));
    let _ = step(&mut s, read_at + Duration::from_millis(60));
    let snap = metrics.snapshot().unwrap();
    assert_eq!((snap.acks, snap.latency_count), (3, 2));
    assert_eq!(
        snap.latency_buckets[10], 1,
        "50 ms: {:?}",
        snap.latency_buckets
    );
    // The connection's counts outlive it.
    drop(s);
    let after = metrics.snapshot().unwrap();
    assert_eq!((after.acks, after.latency_count), (3, 2));
}

// =============================================================================================
// Hand-over to the next agent
// =============================================================================================

#[test]
fn a_session_can_be_handed_over_only_at_a_frame_boundary_after_the_handshake() {
    let t0 = Instant::now();
    let mut s = Session::new(&config(), Some(64), t0).unwrap();
    assert!(!s.can_hand_over(), "before HELLO: nothing to resume from");
    receive(&mut s, &hello(), t0);
    step(&mut s, t0);
    assert!(s.can_hand_over());
    let frame = notify(1);
    let (first, rest) = frame.split_at(frame.len() / 2);
    receive(&mut s, first, t0);
    let (_, next) = step(&mut s, t0);
    assert!(matches!(next, Next::Read));
    assert!(!s.can_hand_over(), "half a NOTIFY read");
    receive(&mut s, rest, t0);
    assert!(!s.can_hand_over(), "a NOTIFY read and not answered");
    assert!(matches!(s.next(&mut Score, t0), Next::Write));
    assert!(!s.can_hand_over(), "its ACK not written");
    let (_, next) = step(&mut s, t0);
    assert!(matches!(next, Next::Read));
    assert!(s.can_hand_over(), "answered and written");
}

/// The handshake of a session that completed HAPROXY-HELLO, as a hand-over passes it on.
fn handshake_of_an_established_session(t0: Instant) -> Handshake {
    let mut first = Session::new(&config(), Some(64), t0).unwrap();
    receive(&mut first, &hello(), t0);
    step(&mut first, t0);
    first.handshake().expect("established")
}

#[test]
fn a_resumed_session_answers_a_notify_without_a_hello() {
    let t0 = Instant::now();
    let handshake = handshake_of_an_established_session(t0);
    let mut resumed = Session::resume(&config(), Some(64), handshake, t0).unwrap();
    assert!(resumed.can_hand_over(), "established from the start");
    assert_eq!(resumed.poll_timeout(), None, "no hello deadline");
    receive(&mut resumed, &notify(7), t0);
    let (written, next) = step(&mut resumed, t0);
    assert!(matches!(next, Next::Read));
    assert_eq!(frame_types(&written), vec![FrameType::Ack]);
    assert_eq!(resumed.handshake(), Some(handshake));
}

#[test]
fn a_hello_on_a_resumed_session_closes_it_as_on_any_established_one() {
    let t0 = Instant::now();
    let handshake = handshake_of_an_established_session(t0);
    let mut resumed = Session::resume(&config(), Some(64), handshake, t0).unwrap();
    receive(&mut resumed, &hello(), t0);
    let (written, next) = step(&mut resumed, t0);
    assert_eq!(frame_types(&written), vec![FrameType::AgentDisconnect]);
    assert!(matches!(next, Next::Close(End::Closed(Close::Error(_)))));
}
