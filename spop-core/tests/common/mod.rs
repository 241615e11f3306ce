//! Shared test helpers: the captured vectors, frame builders written independently of the crate's
//! encoders (straight from docs/protocol.md), an in-memory "runtime" that drives an [`Engine`],
//! test handlers, and the checker for everything an agent may write on a connection.
//!
//! This file is also compiled into the fuzz targets (`fuzz/fuzz_targets/*.rs` include it with
//! `#[path]`), so it only uses `std` and `spop-core`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use spop_core::{
    AckWriter, Action, AgentHello, Close, Disconnect, Engine, Flags, Flow, Frame, FrameType,
    Handler, KvList, Message, Notify, Parsed, Scope, TypedData,
};

// ---------------------------------------------------------------------------------------------
// Vectors
// ---------------------------------------------------------------------------------------------

/// The directory holding the `.hex` vectors.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// The bytes of one captured frame: `name` is a path under `tests/vectors/`, `.hex` optional
/// (`"notify-ipv4"`, `"haproxy-3.x/v31-notify-ipv4.hex"`).
pub fn vector(name: &str) -> Vec<u8> {
    let file = if name.ends_with(".hex") {
        name.to_owned()
    } else {
        format!("{name}.hex")
    };
    let path = vectors_dir().join(&file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read vector {}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{file}: one line of hex per frame");
    let bytes = hex(lines[0]);
    let length = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(
        bytes.len(),
        4 + length,
        "{file}: LENGTH covers the whole file"
    );
    bytes
}

/// Every vector, as (path relative to `tests/vectors/`, bytes), sorted by path.
pub fn all_vectors() -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, prefix: &str, found: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let rel = format!("{prefix}{name}");
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &format!("{rel}/"), found);
            } else if name.ends_with(".hex") {
                found.push((rel.clone(), vector(&rel)));
            }
        }
    }
    let mut found = Vec::new();
    walk(&vectors_dir(), "", &mut found);
    found.sort();
    found
}

/// Decodes hex, ignoring ASCII whitespace.
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.chunks_exact(2).remainder().is_empty(),
        "odd number of hex digits"
    );
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Concatenates byte slices.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------------
// Builders (independent of the crate's encoders: docs/protocol.md §1–4)
// ---------------------------------------------------------------------------------------------

pub const NOTIFY: u8 = 3;
pub const HAPROXY_HELLO: u8 = 1;
pub const HAPROXY_DISCONNECT: u8 = 2;
pub const UNSET: u8 = 0;
pub const FIN: u32 = 1;
pub const ABORT: u32 = 2;

/// The varint encoding of docs/protocol.md §2, written out apart from `spop_core::varint`.
pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if v < 240 {
        out.push(v as u8);
        return out;
    }
    out.push((v as u8) | 0xF0);
    v = (v - 240) >> 4;
    while v >= 128 {
        out.push((v as u8) | 0x80);
        v = (v - 128) >> 7;
    }
    out.push(v as u8);
    out
}

/// A bare string: varint length + bytes.
pub fn string(bytes: &[u8]) -> Vec<u8> {
    cat(&[&varint(bytes.len() as u64), bytes])
}

/// Typed STRING.
pub fn t_str(bytes: &[u8]) -> Vec<u8> {
    cat(&[&[0x08], &string(bytes)])
}

/// Typed UINT32.
pub fn t_u32(v: u32) -> Vec<u8> {
    cat(&[&[0x03], &varint(u64::from(v))])
}

/// Typed IPV4.
pub fn t_ipv4(octets: [u8; 4]) -> Vec<u8> {
    cat(&[&[0x06], &octets])
}

/// One KV item.
pub fn kv(key: &[u8], typed_value: &[u8]) -> Vec<u8> {
    cat(&[&string(key), typed_value])
}

/// A whole frame, LENGTH included.
pub fn frame(frame_type: u8, flags: u32, stream_id: u64, frame_id: u64, payload: &[u8]) -> Vec<u8> {
    let body = cat(&[
        &[frame_type],
        &flags.to_be_bytes(),
        &varint(stream_id),
        &varint(frame_id),
        payload,
    ]);
    cat(&[&(body.len() as u32).to_be_bytes(), &body])
}

/// A HAPROXY-HELLO (FIN, ids 0) carrying exactly `items` (already encoded KV items).
pub fn haproxy_hello(items: &[Vec<u8>]) -> Vec<u8> {
    frame(HAPROXY_HELLO, FIN, 0, 0, &items.concat())
}

/// A HAPROXY-HELLO with `supported-versions`, `max-frame-size` and `capabilities` as given.
pub fn hello_with(versions: &[u8], max_frame_size: u32, capabilities: &[u8]) -> Vec<u8> {
    haproxy_hello(&[
        kv(b"supported-versions", &t_str(versions)),
        kv(b"max-frame-size", &t_u32(max_frame_size)),
        kv(b"capabilities", &t_str(capabilities)),
    ])
}

/// One message of a LIST-OF-MESSAGES; `args` are (name, encoded typed value).
pub fn message(name: &[u8], args: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut out = string(name);
    out.push(args.len() as u8);
    for (arg_name, value) in args {
        out.extend(string(arg_name));
        out.extend(value);
    }
    out
}

/// A NOTIFY with FIN and `check-client-ip` carrying one unnamed IPv4 argument.
pub fn notify_ip(stream_id: u64, frame_id: u64, ip: [u8; 4]) -> Vec<u8> {
    frame(
        NOTIFY,
        FIN,
        stream_id,
        frame_id,
        &message(b"check-client-ip", &[(b"", t_ipv4(ip))]),
    )
}

// ---------------------------------------------------------------------------------------------
// Decoding what the agent wrote
// ---------------------------------------------------------------------------------------------

/// A frame copied out of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedFrame {
    pub frame_type: FrameType,
    pub flags: Flags,
    pub stream_id: u64,
    pub frame_id: u64,
    pub payload: Vec<u8>,
    /// The whole frame, LENGTH included.
    pub bytes: Vec<u8>,
}

impl OwnedFrame {
    pub fn frame(&self) -> Frame<'_> {
        match Frame::decode(&self.bytes, u32::MAX).unwrap() {
            Parsed::Complete(frame, _) => frame,
            Parsed::Partial => unreachable!(),
        }
    }
}

/// Splits `bytes` into whole frames; panics on a partial or undecodable one.
pub fn frames(bytes: &[u8]) -> Vec<OwnedFrame> {
    let mut rest = bytes;
    let mut found = Vec::new();
    while !rest.is_empty() {
        match Frame::decode(rest, u32::MAX) {
            Ok(Parsed::Complete(f, n)) => {
                found.push(OwnedFrame {
                    frame_type: f.header.frame_type,
                    flags: f.header.flags,
                    stream_id: f.header.stream_id.0,
                    frame_id: f.header.frame_id.0,
                    payload: f.payload.to_vec(),
                    bytes: rest[..n].to_vec(),
                });
                rest = &rest[n..];
            }
            other => panic!(
                "not a whole frame at {}: {other:?}",
                bytes.len() - rest.len()
            ),
        }
    }
    found
}

/// The one frame `bytes` holds, decoded with no LENGTH limit.
pub fn one_frame(bytes: &[u8]) -> Frame<'_> {
    match Frame::decode(bytes, u32::MAX) {
        Ok(Parsed::Complete(frame, n)) => {
            assert_eq!(n, bytes.len(), "exactly one frame");
            frame
        }
        other => panic!("not one whole frame: {other:?}"),
    }
}

/// The KV items of a payload.
pub fn kv_items(payload: &[u8]) -> Vec<(&[u8], TypedData<'_>)> {
    KvList::parse(payload).unwrap().iter().collect()
}

/// Asserts `bytes` is exactly one AGENT-DISCONNECT (FIN, ids 0) and returns its status code.
pub fn disconnect_status(bytes: &[u8]) -> u32 {
    let f = one_frame(bytes);
    assert_eq!(f.header.frame_type, FrameType::AgentDisconnect);
    assert_eq!(f.header.flags, Flags::FIN);
    assert_eq!((f.header.stream_id.0, f.header.frame_id.0), (0, 0));
    Disconnect::parse(f.payload).unwrap().status.code()
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// The seed agent: `check-client-ip` → `sess.<prefix>.ip_score = INT32 score`.
pub struct IpScore {
    pub score: i32,
    pub seen: Vec<(u64, u64)>,
}

impl IpScore {
    pub fn new(score: i32) -> Self {
        IpScore {
            score,
            seen: Vec::new(),
        }
    }
}

impl Handler for IpScore {
    fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>) {
        if message.name == b"check-client-ip" {
            ack.set_var(Scope::Session, b"ip_score", TypedData::Int32(self.score))
                .unwrap();
        }
    }

    fn on_notify(&mut self, notify: &Notify<'_>, ack: &mut AckWriter<'_>) {
        self.seen.push((notify.stream_id.0, notify.frame_id.0));
        for message in notify.messages() {
            self.on_message(&message, ack);
        }
    }
}

/// Sets `sess.ip_score = 42` once per message, whatever its name (as the capture agent did for
/// ack-types / ack-frag), and records every message it saw.
#[derive(Default)]
pub struct ScoreEveryMessage {
    pub messages: Vec<SeenMessage>,
}

/// (message name, [(arg name, value as Display)]).
pub type SeenMessage = (Vec<u8>, Vec<(Vec<u8>, String)>);

impl Handler for ScoreEveryMessage {
    fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>) {
        let args = message
            .args()
            .map(|a| (a.name.to_vec(), a.value.to_string()))
            .collect();
        self.messages.push((message.name.to_vec(), args));
        ack.set_var(Scope::Session, b"ip_score", TypedData::Int32(42))
            .unwrap();
    }
}

/// Answers every NOTIFY with an empty ACK.
pub struct Silent;

impl Handler for Silent {
    fn on_message(&mut self, _: &Message<'_>, _: &mut AckWriter<'_>) {}
}

/// Writes as many actions as fit (ignoring refusals): exercises the ACK size limits.
pub struct Greedy;

impl Handler for Greedy {
    fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>) {
        for arg in message.args() {
            let _ = ack.set_var(Scope::Transaction, arg.name, arg.value);
        }
        let _ = ack.unset_var(Scope::Request, message.name);
    }
}

// ---------------------------------------------------------------------------------------------
// An in-memory runtime
// ---------------------------------------------------------------------------------------------

/// What a connection produced.
#[derive(Debug)]
pub struct Conversation {
    /// Everything the engine wrote, in order.
    pub output: Vec<u8>,
    /// How it ended: `None` if all input was used and the engine wants more.
    pub close: Option<Close>,
    /// Input bytes the engine never consumed (a partial frame at the end).
    pub leftover: usize,
    /// Number of `feed` calls.
    pub feeds: usize,
}

/// Delivers `input` in chunks of `chunk` bytes (0 = all at once) to `engine`, with an output
/// buffer of `out_len` bytes that the "runtime" empties after each feed. Checks the `feed`
/// contract on every call: whole frames in and out, progress on `NeedOutput`.
pub fn converse<const F: usize, H: Handler>(
    engine: &mut Engine<F>,
    input: &[u8],
    chunk: usize,
    out_len: usize,
    handler: &mut H,
) -> Conversation {
    converse_chunks(engine, input, &[chunk], out_len, handler)
}

/// Like [`converse`], with chunk sizes taken in turn from `chunks` (cycled; 0 = all the rest).
pub fn converse_chunks<const F: usize, H: Handler>(
    engine: &mut Engine<F>,
    input: &[u8],
    chunks: &[usize],
    out_len: usize,
    handler: &mut H,
) -> Conversation {
    let mut chunks = chunks.iter().copied().cycle();
    let mut pending: Vec<u8> = Vec::new();
    let mut out = vec![0u8; out_len];
    let mut output = Vec::new();
    let mut feeds = 0;
    let mut delivered: usize = 0;
    loop {
        let chunk = match chunks.next() {
            Some(0) | None => input.len(),
            Some(n) => n,
        };
        let end = delivered.saturating_add(chunk).min(input.len());
        pending.extend_from_slice(&input[delivered..end]);
        delivered = end;
        loop {
            feeds += 1;
            let p = engine.feed(&pending, &mut out, handler);
            assert!(p.consumed <= pending.len(), "consumed more than given");
            assert!(p.written <= out.len(), "wrote more than the buffer");
            output.extend_from_slice(&out[..p.written]);
            pending.drain(..p.consumed);
            match p.flow {
                Flow::NeedOutput => {
                    assert!(p.written > 0, "NeedOutput without output: no progress");
                }
                Flow::NeedInput => break,
                Flow::Close(close) => {
                    assert!(engine.is_closed(), "Close but not closed");
                    assert_eq!(engine.close_reason(), Some(close));
                    return Conversation {
                        output,
                        close: Some(close),
                        leftover: pending.len(),
                        feeds,
                    };
                }
            }
        }
        if delivered == input.len() {
            assert!(!engine.is_closed(), "closed without saying so");
            return Conversation {
                output,
                close: None,
                leftover: pending.len(),
                feeds,
            };
        }
    }
}

/// The largest AGENT-DISCONNECT the engine writes (its message is at most 128 bytes).
pub const MAX_DISCONNECT_FRAME: usize = 4 + 7 + 14 + 8 + 2 + 128;

/// Checks a whole connection's output against the agent-output rules ([`check_agent_output`])
/// and against how it ended: a DISCONNECT's status matches the close reason, an error close
/// always writes its DISCONNECT when the output buffer could hold one, ACKs match the counters.
/// Then feeds more bytes to a closed engine and checks that it writes nothing.
pub fn check_conversation<const F: usize, H: Handler>(
    engine: &mut Engine<F>,
    c: &Conversation,
    cap: u32,
    out_len: usize,
    handler: &mut H,
) -> AgentOutput {
    let summary = check_agent_output(&c.output, cap)
        .unwrap_or_else(|e| panic!("bad agent output ({e}): {:02x?}", c.output));
    assert_eq!(summary.acks.len() as u64, engine.stats().acks, "ACK count");
    if let Some(m) = summary.hello_max_frame_size {
        assert_eq!(
            m,
            engine.max_frame_size(),
            "announced size is the one in force"
        );
    }
    match (c.close, summary.disconnect) {
        (None, Some(code)) => panic!("DISCONNECT {code} without a close"),
        (Some(Close::Error(e)), Some(code)) => assert_eq!(code, e.status().code(), "{e}"),
        (Some(Close::Error(e)), None) => {
            assert!(out_len < MAX_DISCONNECT_FRAME, "{e}: no DISCONNECT written");
        }
        (Some(Close::PeerDisconnect(_) | Close::Shutdown), Some(code)) => assert_eq!(code, 0),
        (Some(Close::PeerDisconnect(_) | Close::Shutdown), None) => {
            assert!(out_len < MAX_DISCONNECT_FRAME, "no DISCONNECT 0 written");
        }
        (Some(Close::Healthcheck), Some(code)) => panic!("DISCONNECT {code} on a health check"),
        (Some(Close::Healthcheck), None) => {
            assert!(
                summary.hello_max_frame_size.is_some(),
                "health check without HELLO"
            );
        }
        (None, None) => {}
    }
    if let Some(close) = c.close {
        let mut out = vec![0u8; 4096];
        for more in [
            &b""[..],
            b"\x00\x00\x00\x0b\x03\x00\x00\x00\x01\x00\x01",
            &[0xff; 64],
        ] {
            let p = engine.feed(more, &mut out, handler);
            assert_eq!(
                (p.written, p.flow),
                (0, Flow::Close(close)),
                "closed engine wrote"
            );
        }
        assert_eq!(engine.shutdown(&mut out), 0);
        assert_eq!(engine.abort(spop_core::Error::Timeout, &mut out), 0);
    }
    summary
}

// ---------------------------------------------------------------------------------------------
// What an agent may write on a connection
// ---------------------------------------------------------------------------------------------

/// A summary of an agent's output that passed [`check_agent_output`].
#[derive(Debug, Default)]
pub struct AgentOutput {
    /// The AGENT-HELLO's max-frame-size, if one was sent.
    pub hello_max_frame_size: Option<u32>,
    /// Each ACK's (stream-id, frame-id), in order.
    pub acks: Vec<(u64, u64)>,
    /// The AGENT-DISCONNECT status, if one was sent.
    pub disconnect: Option<u32>,
}

/// Checks that `bytes` is a well-formed sequence of agent frames: whole frames only, at most one
/// AGENT-HELLO and only first, then ACKs (only after the HELLO), at most one AGENT-DISCONNECT and
/// nothing after it. Every frame has flags exactly FIN, LENGTH within the limit in force (`cap`
/// before the handshake, the announced max-frame-size after), and a payload that decodes.
pub fn check_agent_output(bytes: &[u8], cap: u32) -> Result<AgentOutput, String> {
    let mut summary = AgentOutput::default();
    let mut limit = cap;
    let mut rest = bytes;
    let mut index = 0;
    while !rest.is_empty() {
        let (f, n) = match Frame::decode(rest, limit) {
            Ok(Parsed::Complete(f, n)) => (f, n),
            other => return Err(format!("frame {index}: not a whole frame: {other:?}")),
        };
        if summary.disconnect.is_some() {
            return Err(format!("frame {index} after AGENT-DISCONNECT"));
        }
        let h = f.header;
        if h.flags != Flags::FIN {
            return Err(format!("frame {index}: flags {:#x}", h.flags.0));
        }
        match h.frame_type {
            FrameType::AgentHello => {
                if index != 0 {
                    return Err(format!("AGENT-HELLO as frame {index}"));
                }
                if (h.stream_id.0, h.frame_id.0) != (0, 0) {
                    return Err("AGENT-HELLO with non-zero ids".into());
                }
                let hello = AgentHello::parse(f.payload).map_err(|e| format!("{e}"))?;
                if hello.version != b"2.0" {
                    return Err("AGENT-HELLO version".into());
                }
                if !(256..=cap).contains(&hello.max_frame_size) {
                    return Err(format!(
                        "AGENT-HELLO max-frame-size {}",
                        hello.max_frame_size
                    ));
                }
                limit = hello.max_frame_size;
                summary.hello_max_frame_size = Some(limit);
            }
            FrameType::Ack => {
                if summary.hello_max_frame_size.is_none() {
                    return Err(format!("ACK as frame {index} before AGENT-HELLO"));
                }
                let actions = spop_core::Actions::new(f.payload);
                for action in actions {
                    let _: Action<'_> = action.map_err(|e| format!("ACK action: {e}"))?;
                }
                summary.acks.push((h.stream_id.0, h.frame_id.0));
            }
            FrameType::AgentDisconnect => {
                if (h.stream_id.0, h.frame_id.0) != (0, 0) {
                    return Err("AGENT-DISCONNECT with non-zero ids".into());
                }
                let d = Disconnect::parse(f.payload).map_err(|e| format!("{e}"))?;
                if d.message.len() > 255 {
                    return Err("AGENT-DISCONNECT message over 255 bytes".into());
                }
                summary.disconnect = Some(d.status.code());
            }
            other => return Err(format!("frame {index}: agent never sends {other}")),
        }
        rest = &rest[n..];
        index += 1;
    }
    Ok(summary)
}
