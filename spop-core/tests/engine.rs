//! Conversations with the sans-io [`Engine`], driven in memory with the captured HAProxy frames:
//! the handshake, NOTIFY/ACK, health checks, disconnects, pipelining, fragments, and one test per
//! fault with the exact AGENT-DISCONNECT status on the wire.

mod common;

use common::*;
use spop_core::{
    AgentHello, Capabilities, Close, Config, ConfigError, DecodeError, Engine, Error, Flags, Flow,
    FrameType, Progress, ResumeError, Status, DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT,
};

const OUT: usize = 70_000;

fn engine() -> Engine {
    Engine::new(Config::default()).unwrap()
}

fn engine_with(max_frame_size: u32, capabilities: Capabilities) -> Engine {
    Engine::new(Config {
        max_frame_size,
        capabilities,
    })
    .unwrap()
}

fn frag_config(max_frame_size: u32) -> Config {
    Config {
        max_frame_size,
        capabilities: Capabilities::PIPELINING | Capabilities::ASYNC | Capabilities::FRAGMENTATION,
    }
}

/// One `feed` with a large output buffer; returns the progress and the bytes written.
fn feed<const F: usize>(e: &mut Engine<F>, input: &[u8]) -> (Progress, Vec<u8>) {
    let mut out = vec![0u8; OUT];
    let p = e.feed(input, &mut out, &mut IpScore::new(42));
    out.truncate(p.written);
    (p, out)
}

/// Handshake with haproxy-hello.hex; returns the AGENT-HELLO bytes.
fn handshake<const F: usize>(e: &mut Engine<F>) -> Vec<u8> {
    let hello = vector("haproxy-hello");
    let (p, out) = feed(e, &hello);
    assert_eq!(p.consumed, hello.len());
    assert_eq!(p.flow, Flow::NeedInput);
    assert!(!e.is_handshaking());
    out
}

/// A connection after the handshake, fed `input` at once: (AGENT-DISCONNECT status, close).
fn fault_after_hello(input: &[u8]) -> (u32, Close) {
    let mut e = engine();
    handshake(&mut e);
    fault(&mut e, input)
}

/// Feeds `input`; expects exactly one AGENT-DISCONNECT and a close for an error.
fn fault<const F: usize>(e: &mut Engine<F>, input: &[u8]) -> (u32, Close) {
    let (p, out) = feed(e, input);
    let Flow::Close(close) = p.flow else {
        panic!("expected a close, got {p:?}")
    };
    assert!(matches!(close, Close::Error(_)), "{close:?}");
    assert!(e.is_closed());
    assert_eq!(e.close_reason(), Some(close));
    (disconnect_status(&out), close)
}

fn error_of(close: Close) -> Error {
    match close {
        Close::Error(e) => e,
        other => panic!("not an error: {other:?}"),
    }
}

// =============================================================================================
// Handshake
// =============================================================================================

#[test]
fn engine_answers_haproxy_hello_with_version_2_0_and_pipelining() {
    let mut e = engine();
    assert!(e.is_handshaking());
    let out = handshake(&mut e);
    let f = one_frame(&out);
    assert_eq!(f.header.frame_type, FrameType::AgentHello);
    assert_eq!(f.header.flags, Flags::FIN);
    assert_eq!((f.header.stream_id.0, f.header.frame_id.0), (0, 0));
    assert_eq!(
        AgentHello::parse(f.payload).unwrap(),
        AgentHello {
            version: b"2.0",
            max_frame_size: 16380,
            capabilities: Some(b"pipelining"),
        }
    );
    assert_eq!(
        e.peer_capabilities(),
        Capabilities::PIPELINING | Capabilities::ASYNC
    );
}

#[test]
fn engine_negotiates_the_smaller_of_its_cap_and_haproxys_offer() {
    let cases = [
        (DEFAULT_MAX_FRAME_SIZE, 16380, 16380),
        (1024, 16380, 1024),
        (16380, 16380, 16380),
        (300, 256, 256),
        (65532, 65532, 65532),
        (65532, 1_000_000, 65532),
    ];
    for (cap, offer, expected) in cases {
        let mut e = engine_with(cap, Capabilities::PIPELINING);
        assert_eq!(e.max_frame_size(), cap, "before HELLO the cap is the limit");
        let (p, out) = feed(&mut e, &hello_with(b"2.0", offer, b"pipelining"));
        assert_eq!(p.flow, Flow::NeedInput, "cap {cap} offer {offer}");
        let hello = AgentHello::parse(one_frame(&out).payload).unwrap();
        assert_eq!(hello.max_frame_size, expected, "cap {cap} offer {offer}");
        assert_eq!(e.max_frame_size(), expected, "cap {cap} offer {offer}");
    }
}

#[test]
fn engine_remembers_haproxys_offer_even_when_it_answers_less() {
    let mut e = engine_with(65532, Capabilities::PIPELINING);
    assert_eq!(e.peer_max_frame_size(), 0);
    feed(&mut e, &hello_with(b"2.0", 98300, b"pipelining"));
    assert_eq!(e.peer_max_frame_size(), 98300);
    assert_eq!(e.max_frame_size(), 65532);
}

#[test]
fn engine_caps_a_max_frame_size_whose_frames_could_not_be_addressed() {
    let e = engine_with(u32::MAX, Capabilities::PIPELINING);
    assert_eq!(e.max_frame_size(), MAX_FRAME_SIZE_LIMIT);
    // A frame of the largest size and its LENGTH bytes fit in usize on this target.
    assert_eq!(e.input_capacity(), MAX_FRAME_SIZE_LIMIT as usize + 4);
}

#[test]
fn engine_with_the_largest_cap_refuses_length_ffffffff_with_status_3() {
    let mut e = engine_with(u32::MAX, Capabilities::PIPELINING);
    let (status, close) = fault(&mut e, &hex("ffffffff 01 00000001 00 00"));
    assert_eq!(status, 3);
    assert!(
        matches!(error_of(close), Error::FrameTooBig { .. }),
        "{close:?}"
    );
}

#[test]
fn engine_input_capacity_is_one_frame_of_the_size_in_force() {
    let mut e = engine_with(2044, Capabilities::PIPELINING);
    assert_eq!(e.input_capacity(), 2048);
    feed(&mut e, &hello_with(b"2.0", 1020, b"pipelining"));
    assert_eq!(e.input_capacity(), 1024);
}

#[test]
fn engine_reproduces_agent_hello_hex_with_pipelining_and_async() {
    let mut e = engine_with(
        DEFAULT_MAX_FRAME_SIZE,
        Capabilities::PIPELINING | Capabilities::ASYNC,
    );
    assert_eq!(handshake(&mut e), vector("agent-hello"));
}

#[test]
fn engine_reproduces_agent_hello_frag_hex_with_fragmentation() {
    let mut e: Engine<4096> = Engine::new(frag_config(256)).unwrap();
    assert_eq!(handshake(&mut e), vector("agent-hello-frag"));
}

#[test]
fn engine_reproduces_agent_hello_no_caps_hex_without_capabilities() {
    let mut e = engine_with(DEFAULT_MAX_FRAME_SIZE, Capabilities::NONE);
    // An empty capabilities list is still announced (the 3.x health check requires the key).
    let out = handshake(&mut e);
    let hello = AgentHello::parse(one_frame(&out).payload).unwrap();
    assert_eq!(hello.capabilities, Some(&b""[..]));
}

#[test]
fn engine_refuses_configs_it_cannot_run() {
    assert_eq!(
        Engine::<0>::new(Config {
            max_frame_size: 255,
            capabilities: Capabilities::PIPELINING
        })
        .err(),
        Some(ConfigError::MaxFrameSizeTooSmall(255))
    );
    assert_eq!(
        Engine::<0>::new(frag_config(4096)).err(),
        Some(ConfigError::NoReassemblyBuffer)
    );
}

#[test]
fn engine_accepts_the_3_1_and_3_4_hellos() {
    for file in [
        "haproxy-3.x/v31-haproxy-hello",
        "haproxy-3.x/v34-haproxy-hello",
    ] {
        let mut e = engine();
        let (p, out) = feed(&mut e, &vector(file));
        assert_eq!(p.flow, Flow::NeedInput, "{file}");
        let hello = AgentHello::parse(one_frame(&out).payload).unwrap();
        assert_eq!(hello.max_frame_size, 16380, "{file}");
        assert_eq!(e.peer_capabilities(), Capabilities::PIPELINING, "{file}");
    }
}

#[test]
fn engine_accepts_every_spelling_of_version_2() {
    for versions in [
        &b"2.0"[..],
        b" 2.0 ",
        b"2.00",
        b"1.0,2.0",
        b"2.5",
        b"3.0, 2.0",
    ] {
        let mut e = engine();
        let (p, out) = feed(&mut e, &hello_with(versions, 16380, b""));
        assert_eq!(
            p.flow,
            Flow::NeedInput,
            "{:?}",
            String::from_utf8_lossy(versions)
        );
        assert_eq!(one_frame(&out).header.frame_type, FrameType::AgentHello);
    }
}

// =============================================================================================
// NOTIFY / ACK
// =============================================================================================

#[test]
fn engine_acks_the_2_6_ipv4_notify_with_ack_ipv4_hex() {
    let mut e = engine();
    handshake(&mut e);
    let (p, out) = feed(&mut e, &vector("notify-ipv4"));
    assert_eq!((p.consumed, p.flow), (34, Flow::NeedInput));
    assert_eq!(out, vector("ack-ipv4"));
    assert_eq!(e.stats().acks, 1);
}

#[test]
fn engine_acks_the_2_6_ipv6_notify_with_ack_ipv6_hex() {
    let mut e = engine();
    handshake(&mut e);
    let (_, out) = feed(&mut e, &vector("notify-ipv6"));
    assert_eq!(out, vector("ack-ipv6"));
}

#[test]
fn engine_acks_3_1_notifies_echoing_their_ids() {
    let mut e = engine();
    let (_, hello) = feed(&mut e, &vector("haproxy-3.x/v31-haproxy-hello"));
    assert_eq!(one_frame(&hello).header.frame_type, FrameType::AgentHello);
    let (_, out) = feed(&mut e, &vector("haproxy-3.x/v31-notify-ipv4"));
    assert_eq!(out, vector("haproxy-3.x/v31-ack-ipv4"));
    let (_, out) = feed(&mut e, &vector("haproxy-3.x/v31-notify-ipv6"));
    let f = one_frame(&out);
    assert_eq!(f.header.frame_type, FrameType::Ack);
    assert_eq!((f.header.stream_id.0, f.header.frame_id.0), (3, 1));
    // Same action as ack-ipv6, other ids.
    assert_eq!(f.payload, one_frame(&vector("ack-ipv6")).payload);
}

#[test]
fn engine_acks_the_3_4_notify_with_the_3_1_ack_bytes() {
    let mut e = engine();
    feed(&mut e, &vector("haproxy-3.x/v34-haproxy-hello"));
    let (_, out) = feed(&mut e, &vector("haproxy-3.x/v34-notify-ipv4"));
    assert_eq!(out, vector("haproxy-3.x/v31-ack-ipv4"));
}

#[test]
fn engine_acks_a_notify_the_handler_ignores_with_an_empty_ack() {
    let mut e = engine();
    handshake(&mut e);
    // notify-types has no check-client-ip message: the ACK has no action.
    let (_, out) = feed(&mut e, &vector("notify-types-ipv4"));
    let f = one_frame(&out);
    assert_eq!(f.header.frame_type, FrameType::Ack);
    assert_eq!((f.header.stream_id.0, f.header.frame_id.0), (0, 2));
    assert!(f.payload.is_empty());
}

#[test]
fn engine_acks_a_notify_with_no_message() {
    let mut e = engine();
    handshake(&mut e);
    let (_, out) = feed(&mut e, &frame(NOTIFY, FIN, 5, 1, b""));
    assert_eq!(out, common::frame(0x67, FIN, 5, 1, b""));
}

#[test]
fn engine_acks_pipelined_notifies_in_one_feed_in_order() {
    let mut e = engine();
    let mut handler = IpScore::new(42);
    let input = cat(&[
        &vector("haproxy-hello"),
        &vector("notify-ipv4"),
        &vector("notify-ipv6"),
        &vector("haproxy-3.x/v31-notify-ipv4"),
        &vector("notify-types-ipv6"),
    ]);
    let mut out = vec![0u8; OUT];
    let p = e.feed(&input, &mut out, &mut handler);
    assert_eq!((p.consumed, p.flow), (input.len(), Flow::NeedInput));
    let frames = frames(&out[..p.written]);
    assert_eq!(frames.len(), 5);
    assert_eq!(frames[0].frame_type, FrameType::AgentHello);
    assert_eq!(frames[1].bytes, vector("ack-ipv4"));
    assert_eq!(frames[2].bytes, vector("ack-ipv6"));
    assert_eq!(frames[3].bytes, vector("haproxy-3.x/v31-ack-ipv4"));
    assert_eq!((frames[4].stream_id, frames[4].frame_id), (2, 2));
    assert_eq!(handler.seen, vec![(0, 1), (2, 1), (1, 1), (2, 2)]);
    assert_eq!(e.stats().acks, 4);
    assert_eq!(e.stats().frames, 5);
    assert_eq!((e.stats().hellos, e.stats().notifies), (1, 4));
    assert_eq!((e.stats().reassembled, e.stats().disconnects), (0, 0));
}

#[test]
fn engine_answers_a_repeated_stream_and_frame_id_pair() {
    let mut e = engine();
    handshake(&mut e);
    let notify = vector("notify-ipv4");
    let (_, out) = feed(&mut e, &cat(&[&notify, &notify]));
    assert_eq!(out, cat(&[&vector("ack-ipv4"), &vector("ack-ipv4")]));
}

#[test]
fn engine_takes_a_notify_of_exactly_the_negotiated_size() {
    let mut e = engine_with(1024, Capabilities::PIPELINING);
    feed(&mut e, &vector("haproxy-hello"));
    assert_eq!(e.max_frame_size(), 1024);
    // 7 header bytes + "m"(2) + nb-args(1) + ""(1) + STRING: 1 + 2 + 1010 = 1024.
    let value = vec![b'z'; 1010];
    let notify = frame(NOTIFY, FIN, 9, 1, &message(b"m", &[(b"", t_str(&value))]));
    assert_eq!(notify.len(), 4 + 1024);
    let (p, out) = feed(&mut e, &notify);
    assert_eq!(p.flow, Flow::NeedInput);
    assert_eq!(out, frame(0x67, FIN, 9, 1, b""));
}

#[test]
fn engine_waits_for_the_rest_of_a_partial_frame() {
    let mut e = engine();
    handshake(&mut e);
    let notify = vector("notify-ipv4");
    for cut in 0..notify.len() {
        let (p, out) = feed(&mut e, &notify[..cut]);
        assert_eq!((p.consumed, p.written, p.flow), (0, 0, Flow::NeedInput));
        assert!(out.is_empty());
    }
    let (_, out) = feed(&mut e, &notify);
    assert_eq!(out, vector("ack-ipv4"));
}

#[test]
fn engine_gives_the_same_output_for_every_chunk_size() {
    let input = cat(&[
        &vector("haproxy-hello"),
        &vector("notify-ipv4"),
        &vector("notify-types-ipv4"),
        &vector("notify-ipv6"),
        &vector("haproxy-disconnect-normal"),
    ]);
    let reference = converse(&mut engine(), &input, 0, OUT, &mut IpScore::new(42));
    assert_eq!(reference.close, Some(Close::PeerDisconnect(Status::Normal)));
    for chunk in 1..=input.len() {
        let c = converse(&mut engine(), &input, chunk, OUT, &mut IpScore::new(42));
        assert_eq!(c.output, reference.output, "chunk {chunk}");
        assert_eq!(c.close, reference.close, "chunk {chunk}");
    }
}

// =============================================================================================
// Health check and disconnects
// =============================================================================================

#[test]
fn engine_answers_a_health_check_with_agent_hello_then_closes() {
    for file in [
        "haproxy-hello-healthcheck",
        "haproxy-3.x/v31-haproxy-hello-healthcheck",
    ] {
        let mut e = engine();
        let (p, out) = feed(&mut e, &vector(file));
        assert_eq!(p.flow, Flow::Close(Close::Healthcheck), "{file}");
        assert_eq!(p.consumed, 82, "{file}");
        let f = one_frame(&out);
        assert_eq!(f.header.frame_type, FrameType::AgentHello);
        // 3.x health checks demand flags == FIN exactly and the three exact keys.
        assert_eq!(f.header.flags.0, 0x0000_0001);
        assert_eq!((f.header.stream_id.0, f.header.frame_id.0), (0, 0));
        let keys: Vec<&[u8]> = kv_items(f.payload).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            vec![&b"version"[..], b"max-frame-size", b"capabilities"]
        );
        assert!(e.is_closed());
        // Nothing more is written on a closed connection.
        let (p, out) = feed(&mut e, &vector("notify-ipv4"));
        assert_eq!((p.written, p.flow), (0, Flow::Close(Close::Healthcheck)));
        assert!(out.is_empty());
    }
}

#[test]
fn engine_answers_haproxy_disconnect_with_agent_disconnect_0_and_closes() {
    for (file, status) in [
        ("haproxy-disconnect-normal", Status::Normal),
        ("haproxy-disconnect-timeout", Status::Timeout),
        ("haproxy-disconnect-too-big", Status::TooBig),
    ] {
        let mut e = engine();
        handshake(&mut e);
        let (p, out) = feed(&mut e, &vector(file));
        assert_eq!(p.flow, Flow::Close(Close::PeerDisconnect(status)), "{file}");
        assert_eq!(disconnect_status(&out), 0, "{file}");
        assert!(e.is_closed());
    }
}

#[test]
fn engine_answers_haproxy_disconnect_before_the_handshake() {
    let mut e = engine();
    let (p, out) = feed(&mut e, &vector("haproxy-disconnect-normal"));
    assert_eq!(p.flow, Flow::Close(Close::PeerDisconnect(Status::Normal)));
    assert_eq!(disconnect_status(&out), 0);
}

#[test]
fn engine_ignores_frames_after_a_disconnect_in_the_same_input() {
    let mut e = engine();
    handshake(&mut e);
    let input = cat(&[&vector("haproxy-disconnect-normal"), &vector("notify-ipv4")]);
    let (p, out) = feed(&mut e, &input);
    assert_eq!(p.consumed, 41);
    assert_eq!(disconnect_status(&out), 0);
}

#[test]
fn engine_shutdown_writes_agent_disconnect_0_once() {
    let mut e = engine();
    handshake(&mut e);
    let mut out = [0u8; 512];
    let n = e.shutdown(&mut out);
    assert_eq!(disconnect_status(&out[..n]), 0);
    assert_eq!(e.close_reason(), Some(Close::Shutdown));
    assert_eq!(e.shutdown(&mut out), 0);
    assert_eq!(e.abort(Error::Timeout, &mut out), 0);
}

#[test]
fn engine_abort_for_a_timeout_writes_status_2() {
    let mut e = engine();
    let mut out = [0u8; 512];
    let n = e.abort(Error::Timeout, &mut out);
    assert_eq!(disconnect_status(&out[..n]), 2);
    assert_eq!(e.close_reason(), Some(Close::Error(Error::Timeout)));
}

// =============================================================================================
// Unknown frames, fragments
// =============================================================================================

#[test]
fn engine_skips_and_counts_unknown_frame_types() {
    let mut e = engine();
    handshake(&mut e);
    let input = cat(&[
        &frame(42, FIN, 0, 0, b"whatever"),
        &frame(200, 0, 1, 1, &[0xff; 20]),
        &vector("notify-ipv4"),
    ]);
    let (p, out) = feed(&mut e, &input);
    assert_eq!((p.consumed, p.flow), (input.len(), Flow::NeedInput));
    assert_eq!(out, vector("ack-ipv4"));
    assert_eq!(e.stats().unknown_frames, 2);
}

fn frag_input() -> Vec<u8> {
    cat(&[
        &vector("haproxy-hello"),
        &vector("notify-frag-1"),
        &vector("notify-frag-2"),
        &vector("notify-frag-3"),
    ])
}

#[test]
fn engine_reassembles_three_fragments_into_one_ack() {
    for chunk in [0, 1] {
        let mut e: Engine<4096> = Engine::new(frag_config(256)).unwrap();
        let mut handler = ScoreEveryMessage::default();
        let c = converse(&mut e, &frag_input(), chunk, OUT, &mut handler);
        assert_eq!(c.close, None, "chunk {chunk}");
        assert_eq!(c.leftover, 0);
        let frames = frames(&c.output);
        assert_eq!(frames.len(), 2, "chunk {chunk}");
        assert_eq!(frames[0].bytes, vector("agent-hello-frag"));
        // One ACK for stream 0 frame 2, as accepted by HAProxy 2.6 (ack-frag.hex).
        assert_eq!(frames[1].bytes, vector("ack-frag"), "chunk {chunk}");
        assert_eq!(e.stats().acks, 1);
        assert!(!e.is_reassembling());
        // The handler saw the reassembled messages whole.
        assert_eq!(handler.messages.len(), 2);
        let (name, args) = &handler.messages[0];
        assert_eq!(name, b"all-types");
        assert_eq!(args.len(), 17);
        assert_eq!(args[15].0, b"long");
        assert_eq!(args[15].1, format!("string(\"{}\")", "a".repeat(300)));
        assert_eq!(handler.messages[1].0, b"second-msg");
    }
}

#[test]
fn engine_holds_fragments_without_answering_until_fin() {
    let mut e: Engine<4096> = Engine::new(frag_config(256)).unwrap();
    handshake(&mut e);
    for file in ["notify-frag-1", "notify-frag-2"] {
        let (p, out) = feed(&mut e, &vector(file));
        assert_eq!((p.flow, out.len()), (Flow::NeedInput, 0), "{file}");
        assert!(e.is_reassembling(), "{file}");
    }
    let (_, out) = feed(&mut e, &vector("notify-frag-3"));
    let f = one_frame(&out);
    assert_eq!((f.header.stream_id.0, f.header.frame_id.0), (0, 2));
    // Three frames, one NOTIFY, reassembled once.
    assert_eq!(
        (e.stats().notifies, e.stats().reassembled, e.stats().acks),
        (1, 1, 1)
    );
}

#[test]
fn engine_drops_an_aborted_fragmented_notify_and_answers_the_next() {
    let mut e: Engine<4096> = Engine::new(frag_config(256)).unwrap();
    handshake(&mut e);
    let input = cat(&[
        &vector("notify-frag-1"),
        &vector("notify-frag-2"),
        &frame(UNSET, FIN | ABORT, 0, 2, b""),
        &vector("notify-ipv4"),
    ]);
    let (p, out) = feed(&mut e, &input);
    assert_eq!((p.consumed, p.flow), (input.len(), Flow::NeedInput));
    assert_eq!(out, vector("ack-ipv4"), "no ACK for the aborted NOTIFY");
    assert_eq!(e.stats().aborted, 1);
    assert_eq!(e.stats().acks, 1);
    assert!(!e.is_reassembling());
    // A fragmented NOTIFY after the abort starts from scratch.
    let (_, out) = feed(
        &mut e,
        &cat(&[
            &vector("notify-frag-1"),
            &vector("notify-frag-2"),
            &vector("notify-frag-3"),
        ]),
    );
    assert_eq!(one_frame(&out).header.frame_type, FrameType::Ack);
}

// =============================================================================================
// Faults: one test each, with the AGENT-DISCONNECT status on the wire
// =============================================================================================

#[test]
fn fault_length_above_the_negotiated_size_is_status_3() {
    let (status, close) = fault_after_hello(&hex("00 00 3f fd"));
    assert_eq!(status, 3);
    assert_eq!(
        close,
        Close::Error(Error::FrameTooBig {
            length: 16381,
            max: 16380
        })
    );
}

#[test]
fn fault_length_above_the_cap_before_hello_is_status_3_from_four_bytes() {
    for (length, bytes) in [(65537u32, "00 01 00 01"), (u32::MAX, "ff ff ff ff")] {
        let mut e = engine();
        // Only the LENGTH has arrived.
        let (p, out) = feed(&mut e, &hex(bytes));
        assert_eq!(p.consumed, 0);
        assert_eq!(
            p.flow,
            Flow::Close(Close::Error(Error::FrameTooBig {
                length,
                max: DEFAULT_MAX_FRAME_SIZE
            }))
        );
        assert_eq!(disconnect_status(&out), 3);
    }
    // 65533 is just above the default cap of 65532.
    let (status, _) = fault(&mut engine(), &hex("00 00 ff fd"));
    assert_eq!(status, 3);
}

#[test]
fn fault_an_http_request_as_first_bytes_is_status_3() {
    let (status, close) = fault(
        &mut engine(),
        b"GET / HTTP/1.1\r\nHost: agent\r\nUser-Agent: curl\r\n\r\n",
    );
    assert_eq!(status, 3);
    assert_eq!(
        close,
        Close::Error(Error::FrameTooBig {
            length: u32::from_be_bytes(*b"GET "),
            max: DEFAULT_MAX_FRAME_SIZE
        })
    );
}

/// The message of the fault `bytes` cause as a connection's first bytes.
fn first_bytes_fault_message(bytes: &[u8]) -> String {
    match fault(&mut engine(), bytes) {
        (3, Close::Error(error)) => error.to_string(),
        other => panic!("{bytes:?}: {other:?}"),
    }
}

/// `bytes` as a connection's first bytes are a too-big frame whose message ends `(said)`.
fn assert_first_bytes_named(bytes: &[u8], said: &str) {
    let message = first_bytes_fault_message(bytes);
    assert!(message.starts_with("frame length "), "{message}");
    assert!(message.ends_with(&format!("({said})")), "{message}");
}

#[test]
fn fault_an_http_request_is_named_in_the_message() {
    for request in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"POST /x HTTP/1.1\r\n\r\n",
        b"HEAD / HTTP/1.0\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let quoted = format!("{:?}", std::str::from_utf8(&request[..4]).unwrap());
        assert_first_bytes_named(
            request,
            &format!(
                "its first bytes read {quoted}: an HTTP client, not HAProxy's SPOE; \
                 a health check needs option spop-check"
            ),
        );
    }
}

#[test]
fn fault_a_tls_client_hello_is_named_in_the_message() {
    assert_first_bytes_named(
        &hex("16 03 01 02 00 01 00 01 fc 03 03"),
        "its first bytes are a TLS handshake: a TLS client, not HAProxy's SPOE, \
         which the agent speaks in clear",
    );
}

#[test]
fn fault_other_text_is_named_in_the_message() {
    assert_first_bytes_named(
        b"SSH-2.0-OpenSSH_9.6\r\n",
        "its first bytes read \"SSH-\": text, not HAProxy's SPOE",
    );
}

#[test]
fn fault_upper_case_text_that_is_no_http_method_is_named_text() {
    // SMTP's greeting from a client: four capitals, not an HTTP request.
    assert_first_bytes_named(
        b"HELO mail.example\r\n",
        "its first bytes read \"HELO\": text, not HAProxy's SPOE",
    );
}

#[test]
fn fault_a_binary_length_too_big_says_only_the_sizes() {
    let message = first_bytes_fault_message(&hex("00 01 00 01"));
    assert_eq!(message, "frame length 65537 exceeds max-frame-size 65532");
}

#[test]
fn fault_length_0_is_status_4() {
    let (status, close) = fault(&mut engine(), &hex("00 00 00 00"));
    assert_eq!(status, 4);
    assert!(matches!(
        error_of(close),
        Error::Malformed {
            cause: DecodeError::FrameTooShort(0),
            ..
        }
    ));
}

#[test]
fn fault_length_6_is_status_4() {
    let (status, close) = fault_after_hello(&hex("00 00 00 06 03 00 00 00 01 00"));
    assert_eq!(status, 4);
    assert!(matches!(
        error_of(close),
        Error::Malformed {
            cause: DecodeError::FrameTooShort(6),
            ..
        }
    ));
}

#[test]
fn fault_a_never_ending_varint_is_status_4() {
    // A NOTIFY whose stream-id varint never ends within the frame.
    let body = cat(&[&[NOTIFY], &FIN.to_be_bytes(), &[0xf0], &[0x80; 40]]);
    let input = cat(&[&(body.len() as u32).to_be_bytes(), &body]);
    let (status, close) = fault_after_hello(&input);
    assert_eq!(status, 4);
    assert_eq!(
        close,
        Close::Error(Error::Malformed {
            frame: FrameType::Notify,
            cause: DecodeError::VarintTooLong
        })
    );
}

#[test]
fn fault_a_varint_cut_by_the_frame_end_is_status_4() {
    let input = hex("00 00 00 08 03 00000001 00 f0 80");
    let (status, close) = fault_after_hello(&input);
    assert_eq!(status, 4);
    assert_eq!(
        close,
        Close::Error(Error::Malformed {
            frame: FrameType::Notify,
            cause: DecodeError::Truncated
        })
    );
}

#[test]
fn fault_nb_args_larger_than_what_follows_is_status_4() {
    let mut payload = message(b"check-client-ip", &[(b"", t_ipv4([127, 0, 0, 1]))]);
    payload[16] = 2; // nb-args
    let (status, close) = fault_after_hello(&frame(NOTIFY, FIN, 0, 1, &payload));
    assert_eq!(status, 4);
    assert_eq!(
        close,
        Close::Error(Error::Malformed {
            frame: FrameType::Notify,
            cause: DecodeError::Truncated
        })
    );
}

#[test]
fn fault_a_truncated_value_is_status_4() {
    let payload = message(b"check-client-ip", &[(b"", vec![0x06, 127, 0])]);
    let (status, close) = fault_after_hello(&frame(NOTIFY, FIN, 0, 1, &payload));
    assert_eq!(status, 4);
    assert_eq!(
        close,
        Close::Error(Error::Malformed {
            frame: FrameType::Notify,
            cause: DecodeError::Truncated
        })
    );
}

#[test]
fn fault_a_reserved_type_id_is_status_4() {
    let payload = message(b"check-client-ip", &[(b"", vec![0x0b, 1, 2, 3, 4])]);
    let (status, close) = fault_after_hello(&frame(NOTIFY, FIN, 0, 1, &payload));
    assert_eq!(status, 4);
    assert_eq!(
        close,
        Close::Error(Error::Malformed {
            frame: FrameType::Notify,
            cause: DecodeError::ReservedType(11)
        })
    );
}

#[test]
fn fault_a_malformed_hello_kv_list_is_status_4() {
    let hello = haproxy_hello(&[kv(b"supported-versions", &t_str(b"2.0")), vec![0x05, b'a']]);
    let (status, close) = fault(&mut engine(), &hello);
    assert_eq!(status, 4);
    assert_eq!(
        close,
        Close::Error(Error::Malformed {
            frame: FrameType::HaproxyHello,
            cause: DecodeError::Truncated
        })
    );
}

#[test]
fn fault_notify_before_hello_is_status_4() {
    let (status, close) = fault(&mut engine(), &vector("notify-ipv4"));
    assert_eq!(status, 4);
    assert_eq!(
        close,
        Close::Error(Error::UnexpectedFrame {
            frame: FrameType::Notify,
            after_hello: false
        })
    );
}

#[test]
fn fault_a_second_hello_is_status_4() {
    let (status, close) = fault_after_hello(&vector("haproxy-hello"));
    assert_eq!(status, 4);
    assert_eq!(
        close,
        Close::Error(Error::UnexpectedFrame {
            frame: FrameType::HaproxyHello,
            after_hello: true
        })
    );
}

#[test]
fn fault_an_agent_frame_type_from_haproxy_is_status_4() {
    let (status, close) = fault_after_hello(&vector("ack-ipv4"));
    assert_eq!(status, 4);
    assert_eq!(
        close,
        Close::Error(Error::UnexpectedFrame {
            frame: FrameType::Ack,
            after_hello: true
        })
    );
}

#[test]
fn fault_unset_without_a_fragmented_notify_is_status_4() {
    let mut e: Engine<4096> = Engine::new(frag_config(256)).unwrap();
    handshake(&mut e);
    let (status, close) = fault(&mut e, &vector("notify-frag-3"));
    assert_eq!(status, 4);
    assert_eq!(
        close,
        Close::Error(Error::UnexpectedFrame {
            frame: FrameType::Unset,
            after_hello: true
        })
    );
}

#[test]
fn fault_hello_without_supported_versions_is_status_5() {
    let hello = haproxy_hello(&[
        kv(b"max-frame-size", &t_u32(16380)),
        kv(b"capabilities", &t_str(b"pipelining")),
    ]);
    let (status, close) = fault(&mut engine(), &hello);
    assert_eq!(status, 5);
    assert_eq!(close, Close::Error(Error::MissingVersion));
}

#[test]
fn fault_hello_without_max_frame_size_is_status_6() {
    let hello = haproxy_hello(&[
        kv(b"supported-versions", &t_str(b"2.0")),
        kv(b"capabilities", &t_str(b"pipelining")),
    ]);
    let (status, close) = fault(&mut engine(), &hello);
    assert_eq!(status, 6);
    assert_eq!(close, Close::Error(Error::MissingMaxFrameSize));
}

#[test]
fn fault_hello_offering_only_3_0_or_1_0_is_status_8() {
    for versions in [
        &b"3.0"[..],
        b"1.0",
        b"1.0,3.0",
        b"",
        b"two",
        b"2",
        b"2.0000",
    ] {
        let (status, close) = fault(&mut engine(), &hello_with(versions, 16380, b""));
        assert_eq!(status, 8, "{:?}", String::from_utf8_lossy(versions));
        assert_eq!(close, Close::Error(Error::UnsupportedVersion));
    }
}

#[test]
fn fault_hello_with_max_frame_size_255_is_status_9_while_256_works() {
    let (status, close) = fault(&mut engine(), &hello_with(b"2.0", 255, b""));
    assert_eq!(status, 9);
    assert_eq!(
        close,
        Close::Error(Error::MaxFrameSizeTooSmall { offered: 255 })
    );
    let mut e = engine();
    let (p, out) = feed(&mut e, &hello_with(b"2.0", 256, b""));
    assert_eq!(p.flow, Flow::NeedInput);
    assert_eq!(
        AgentHello::parse(one_frame(&out).payload)
            .unwrap()
            .max_frame_size,
        256
    );
}

#[test]
fn fault_notify_without_fin_when_fragmentation_is_not_negotiated_is_status_10() {
    let (status, close) = fault_after_hello(&vector("notify-frag-1"));
    assert_eq!(status, 10);
    assert_eq!(
        close,
        Close::Error(Error::FragmentationNotSupported {
            frame: FrameType::Notify
        })
    );
}

#[test]
fn fault_hello_without_fin_is_status_10() {
    // Even on an engine that reassembles NOTIFY fragments.
    let mut hello = vector("haproxy-hello");
    hello[8] = 0; // flags = 0
    let mut e: Engine<4096> = Engine::new(frag_config(256)).unwrap();
    let (status, close) = fault(&mut e, &hello);
    assert_eq!(status, 10);
    assert_eq!(
        close,
        Close::Error(Error::FragmentationNotSupported {
            frame: FrameType::HaproxyHello
        })
    );
}

#[test]
fn fault_interlaced_fragments_are_status_11() {
    // A new NOTIFY while one is being reassembled.
    let mut e: Engine<4096> = Engine::new(frag_config(256)).unwrap();
    handshake(&mut e);
    let input = cat(&[&vector("notify-frag-1"), &vector("notify-ipv4")]);
    let (status, close) = fault(&mut e, &input);
    assert_eq!(status, 11);
    assert_eq!(close, Close::Error(Error::InterlacedFrames));
    // A continuation for other ids.
    let mut e: Engine<4096> = Engine::new(frag_config(256)).unwrap();
    handshake(&mut e);
    let mut other = vector("notify-frag-2");
    other[10] = 3; // frame-id 3 instead of 2
    let (status, _) = fault(&mut e, &cat(&[&vector("notify-frag-1"), &other]));
    assert_eq!(status, 11);
}

#[test]
fn fault_reassembly_overflow_is_status_13() {
    let mut e: Engine<300> = Engine::new(frag_config(256)).unwrap();
    handshake(&mut e);
    let (status, close) = fault(&mut e, &frag_input()[133..]);
    assert_eq!(status, 13);
    assert_eq!(
        close,
        Close::Error(Error::ReassemblyOverflow { capacity: 300 })
    );
}

// =============================================================================================
// Output backpressure
// =============================================================================================

#[test]
fn engine_asks_for_output_room_and_resumes_where_it_stopped() {
    let mut e = engine();
    handshake(&mut e);
    let ack = vector("ack-ipv4").len(); // 25
    let notifies = cat(&[
        &vector("notify-ipv4"),
        &vector("notify-ipv6"),
        &vector("haproxy-3.x/v31-notify-ipv4"),
    ]);
    let mut out = vec![0u8; ack];
    let mut handler = IpScore::new(42);
    let mut input = &notifies[..];
    let mut sent = Vec::new();
    let mut steps = Vec::new();
    loop {
        let p = e.feed(input, &mut out, &mut handler);
        sent.extend_from_slice(&out[..p.written]);
        input = &input[p.consumed..];
        steps.push((p.consumed, p.written, p.flow));
        if p.flow != Flow::NeedOutput {
            break;
        }
    }
    assert_eq!(
        steps,
        vec![
            (34, 25, Flow::NeedOutput),
            (46, 25, Flow::NeedOutput),
            (34, 25, Flow::NeedInput),
        ]
    );
    assert_eq!(
        sent,
        cat(&[
            &vector("ack-ipv4"),
            &vector("ack-ipv6"),
            &vector("haproxy-3.x/v31-ack-ipv4")
        ])
    );
}

#[test]
fn engine_with_small_output_gives_the_same_conversation() {
    let input = cat(&[
        &vector("haproxy-hello"),
        &vector("notify-ipv4"),
        &vector("notify-ipv6"),
        &vector("notify-types-ipv4"),
        &vector("haproxy-disconnect-normal"),
    ]);
    let reference = converse(&mut engine(), &input, 0, OUT, &mut IpScore::new(42));
    // 68 bytes hold the AGENT-HELLO, then one ACK at a time.
    for out_len in [68, 100, 200, 1000] {
        let c = converse(&mut engine(), &input, 0, out_len, &mut IpScore::new(42));
        assert_eq!(c.output, reference.output, "out {out_len}");
        assert_eq!(c.close, reference.close, "out {out_len}");
        assert!(c.feeds > 1, "out {out_len}");
    }
}

#[test]
fn engine_still_sends_the_disconnect_when_a_bad_length_follows_replies() {
    // An ACK fills part of the output, then a LENGTH above the limit arrives in the same input:
    // the AGENT-DISCONNECT must not be lost for lack of room.
    let mut e = engine();
    handshake(&mut e);
    let input = cat(&[&vector("notify-ipv4"), &hex("ff ff ff ff")]);
    let c = converse(&mut e, &input, 0, 100, &mut IpScore::new(42));
    let frames = frames(&c.output);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0].bytes, vector("ack-ipv4"));
    assert_eq!(disconnect_status(&frames[1].bytes), 3);
    assert!(matches!(
        c.close,
        Some(Close::Error(Error::FrameTooBig { .. }))
    ));
}

/// Declares an ACK size bound and writes one SET-VAR of `value_len` bytes per message.
struct Hinted {
    hint: usize,
    value_len: usize,
    results: Vec<Result<(), spop_core::EncodeError>>,
}

impl spop_core::Handler for Hinted {
    fn on_message(&mut self, _: &spop_core::Message<'_>, ack: &mut spop_core::AckWriter<'_>) {
        let value = vec![b'x'; self.value_len];
        let result = ack.set_var(
            spop_core::Scope::Transaction,
            b"big",
            spop_core::TypedData::String(&value),
        );
        self.results.push(result);
    }

    fn ack_size_hint(&self) -> Option<usize> {
        Some(self.hint)
    }
}

#[test]
fn engine_bounds_each_ack_by_the_handlers_size_hint_whatever_the_output_room() {
    // Hint 300: an ACK of 11 + 410 bytes is refused even with plenty of output room, so the ACKs
    // do not depend on how full the output buffer happens to be.
    for out_len in [300, 1000, OUT] {
        let mut e = engine();
        handshake(&mut e);
        let mut h = Hinted {
            hint: 300,
            value_len: 400,
            results: Vec::new(),
        };
        let input = cat(&[&vector("notify-ipv4"), &vector("notify-ipv4")]);
        let c = converse(&mut e, &input, 0, out_len, &mut h);
        assert_eq!(
            h.results,
            vec![Err(spop_core::EncodeError::BufferTooSmall); 2],
            "out {out_len}"
        );
        assert_eq!(
            c.output,
            cat(&[&vector("ack-empty"), &vector("ack-empty")]),
            "out {out_len}"
        );
    }
    // Within the hint, the action is written.
    let mut e = engine();
    handshake(&mut e);
    let mut h = Hinted {
        hint: 300,
        value_len: 200,
        results: Vec::new(),
    };
    let (p, _) = {
        let mut out = vec![0u8; OUT];
        let p = e.feed(&vector("notify-ipv4"), &mut out, &mut h);
        (p, out)
    };
    assert_eq!(h.results, vec![Ok(())]);
    assert_eq!(p.written, 11 + 209);
}

#[test]
fn engine_reports_output_too_small_for_the_agent_hello() {
    let mut e = engine();
    let mut out = [0u8; 40];
    let p = e.feed(&vector("haproxy-hello"), &mut out, &mut Silent);
    assert_eq!(p.flow, Flow::Close(Close::Error(Error::OutputTooSmall)));
    assert_eq!(p.written, 0, "nothing fits, nothing half-written");
}

// =============================================================================================
// Size
// =============================================================================================

#[test]
fn engine_stays_small() {
    let size = std::mem::size_of::<Engine>();
    println!(
        "size_of::<Engine>() = {size}, Engine<4096> = {}",
        std::mem::size_of::<Engine<4096>>()
    );
    assert!(size <= 128, "Engine<0> is {size} bytes");
    assert!(std::mem::size_of::<Engine<4096>>() <= 128 + 4096);
}

// =============================================================================================
// Resuming a connection another engine (another process) handshook
// =============================================================================================

#[test]
fn a_resumed_engine_answers_the_same_notify_as_the_engine_that_handshook() {
    let mut first = engine();
    handshake(&mut first);
    let handshake_state = first.handshake().expect("running");
    let (_, first_ack) = feed(&mut first, &vector("notify-ipv4"));
    let mut resumed = Engine::<0>::resume(Config::default(), handshake_state).unwrap();
    assert!(!resumed.is_handshaking());
    assert_eq!(resumed.max_frame_size(), first.max_frame_size());
    assert_eq!(resumed.handshake(), Some(handshake_state));
    let (p, ack) = feed(&mut resumed, &vector("notify-ipv4"));
    assert_eq!(p.flow, Flow::NeedInput);
    assert_eq!(ack, first_ack);
}

#[test]
fn a_hello_on_a_resumed_connection_is_refused_as_on_any_established_one() {
    let mut first = engine();
    handshake(&mut first);
    let mut resumed = Engine::<0>::resume(Config::default(), first.handshake().unwrap()).unwrap();
    let (status, close) = fault(&mut resumed, &vector("haproxy-hello"));
    assert_eq!(
        error_of(close),
        Error::UnexpectedFrame {
            frame: FrameType::HaproxyHello,
            after_hello: true
        }
    );
    assert_eq!(status, Status::Invalid.code());
}

#[test]
fn an_engine_has_no_handshake_to_carry_before_hello() {
    assert_eq!(engine().handshake(), None);
}

#[test]
fn resuming_refuses_a_frame_size_or_capabilities_this_agent_does_not_have() {
    let mut first = engine();
    handshake(&mut first);
    let carried = first.handshake().unwrap();
    let small = Config {
        max_frame_size: carried.max_frame_size - 1,
        ..Config::default()
    };
    assert!(matches!(
        Engine::<0>::resume(small, carried),
        Err(ResumeError::FrameSize { .. })
    ));
    let other = Config {
        capabilities: Capabilities::NONE,
        ..Config::default()
    };
    assert!(matches!(
        Engine::<0>::resume(other, carried),
        Err(ResumeError::Capabilities { .. })
    ));
    for negotiated in [255, carried.peer_max_frame_size + 1] {
        let bad = spop_core::Handshake {
            max_frame_size: negotiated,
            ..carried
        };
        assert!(matches!(
            Engine::<0>::resume(Config::default(), bad),
            Err(ResumeError::FrameSize { .. })
        ));
    }
}
