//! A blocking HAProxy peer over [`TcpStream`] or [`UnixStream`], for tests against an agent on
//! real sockets (its own process or a server on a thread).
//!
//! Connections are plain std streams, so a test can still split, clone, dribble or reset
//! them as it likes. Frames come as `Vec`s built by [`frames`](crate::frames). Every function
//! panics with what was wrong instead of returning an error: that is how a test fails.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use spop_core::frame::LENGTH_SIZE;
use spop_core::{
    Ack, Action, Arg, Disconnect, EncodeError, Frame, FrameHeader, FrameType, Status, TypedData,
};

use crate::frames::{self, Hello};

/// How long a read waits before the test fails: far above any answer on loopback.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest frame [`read_frame`] accepts from the agent: the protocol's 64 KiB limit. A
/// larger LENGTH means the stream is out of step, not a frame worth waiting for.
pub const MAX_READ_FRAME: usize = 65536;

/// Opens a connection (TCP_NODELAY, [`READ_TIMEOUT`]), without the handshake.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(READ_TIMEOUT))
        .expect("set the read timeout");
    s.set_nodelay(true).expect("set TCP_NODELAY");
    s
}

/// Opens a connection to a Unix socket ([`READ_TIMEOUT`]), without the handshake.
pub fn connect_unix(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path)
        .unwrap_or_else(|e| panic!("connect to unix:{}: {e}", path.display()));
    s.set_read_timeout(Some(READ_TIMEOUT))
        .expect("set the read timeout");
    s
}

/// A connection past the handshake: HAProxy 2.6's HELLO offering 16380, AGENT-HELLO read.
pub fn session(addr: SocketAddr) -> TcpStream {
    session_with(addr, &hello(frames::MAX_FRAME_SIZE))
}

/// A Unix socket connection past the handshake, as [`session`].
pub fn session_unix(path: &Path) -> UnixStream {
    let mut s = connect_unix(path);
    handshake(&mut s, &hello(frames::MAX_FRAME_SIZE));
    s
}

/// A connection past the handshake opened with `hello`.
pub fn session_with(addr: SocketAddr, hello: &[u8]) -> TcpStream {
    let mut s = connect(addr);
    handshake(&mut s, hello);
    s
}

/// Sends `hello` and checks that the agent answers with AGENT-HELLO.
pub fn handshake(s: &mut (impl Read + Write), hello: &[u8]) {
    s.write_all(hello).expect("write HAPROXY-HELLO");
    let (h, p) = read_frame(s).expect("AGENT-HELLO");
    assert_eq!(
        h.frame_type,
        FrameType::AgentHello,
        "handshake answered with {}",
        describe(&h, &p)
    );
}

/// Runs one of the [`frames`](crate::frames) builders into a new `Vec`.
fn built(push: impl FnOnce(&mut Vec<u8>) -> Result<usize, EncodeError>) -> Vec<u8> {
    let mut out = Vec::new();
    push(&mut out).unwrap_or_else(|e| panic!("cannot encode the frame: {e}"));
    out
}

/// HAProxy 2.6's HAPROXY-HELLO offering `max_frame_size`.
pub fn hello(max_frame_size: u32) -> Vec<u8> {
    built(|out| Hello::v2_6(max_frame_size).push(out))
}

/// HAProxy 3.x's HAPROXY-HELLO offering `max_frame_size`.
pub fn hello_v3(max_frame_size: u32) -> Vec<u8> {
    built(|out| Hello::v3(max_frame_size).push(out))
}

/// The HAPROXY-HELLO of an `option spop-check` health check.
pub fn healthcheck_hello() -> Vec<u8> {
    built(|out| Hello::healthcheck().push(out))
}

/// A HAPROXY-HELLO with exactly these items, in this order (for the handshake faults).
pub fn hello_with(items: &[(&[u8], TypedData<'_>)]) -> Vec<u8> {
    built(|out| frames::push_hello_items(out, items))
}

/// A NOTIFY carrying `check-client-ip` with `ip` as its one unnamed argument.
pub fn notify(stream: u64, frame: u64, ip: TypedData<'_>) -> Vec<u8> {
    built(|out| frames::push_check_client_ip(out, stream, frame, ip))
}

/// A NOTIFY with one message `name` and these (name, value) arguments.
pub fn notify_message(
    stream: u64,
    frame: u64,
    name: &[u8],
    args: &[(&[u8], TypedData<'_>)],
) -> Vec<u8> {
    let args: Vec<Arg<'_>> = args
        .iter()
        .map(|&(name, value)| Arg { name, value })
        .collect();
    built(|out| frames::push_notify(out, stream, frame, name, &args))
}

/// HAPROXY-DISCONNECT 0 "normal", as HAProxy closes an idle connection.
pub fn haproxy_disconnect() -> Vec<u8> {
    built(|out| frames::push_haproxy_disconnect(out, Status::Normal, b"normal"))
}

/// A well-framed frame (stream-id 1, frame-id 1) of any type byte and flags around `payload`
/// as it is: for the faults inside a frame.
pub fn raw_frame(frame_type: u8, flags: u32, payload: &[u8]) -> Vec<u8> {
    built(|out| frames::push_raw_frame(out, frame_type, flags, payload))
}

/// Reads one whole frame; `None` when the stream ends (or is reset) before its LENGTH. A
/// stream that ends inside a frame, a LENGTH above [`MAX_READ_FRAME`] or a header that does not
/// decode fails the test.
pub fn read_frame(s: &mut impl Read) -> Option<(FrameHeader, Vec<u8>)> {
    let mut len = [0u8; LENGTH_SIZE];
    s.read_exact(&mut len).ok()?;
    let len = u32::from_be_bytes(len) as usize;
    assert!(len <= MAX_READ_FRAME, "agent frame of {len} bytes");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)
        .unwrap_or_else(|e| panic!("frame body ({len} bytes): {e}"));
    let frame = Frame::decode_body(&body).expect("agent frame header");
    Some((frame.header, frame.payload.to_vec()))
}

/// Checks that a frame answers `check-client-ip` as [`frames::check_score_ack`] wants (FIN,
/// exactly one SET-VAR sess.`ip_score` of an integer 0..=100); returns the score.
pub fn check_score_ack(header: &FrameHeader, payload: &[u8]) -> i64 {
    let frame = Frame {
        header: *header,
        payload,
    };
    frames::check_score_ack(&frame).unwrap_or_else(|fault| {
        panic!(
            "stream {} frame {}: {fault}",
            header.stream_id, header.frame_id
        )
    })
}

/// Checks that a frame is the ACK of (`stream`, `frame`).
pub fn assert_ack_of(header: &FrameHeader, stream: u64, frame: u64) {
    assert_eq!(header.frame_type, FrameType::Ack, "expected an ACK");
    assert_eq!(
        (header.stream_id.0, header.frame_id.0),
        (stream, frame),
        "ACK ids"
    );
}

/// The actions of an ACK with FIN, decoded (whatever they are).
pub fn ack_actions<'a>(header: &FrameHeader, payload: &'a [u8]) -> Vec<Action<'a>> {
    assert_eq!(header.frame_type, FrameType::Ack, "expected an ACK");
    assert!(header.flags.is_fin(), "ACK without FIN");
    let frame = Frame {
        header: *header,
        payload,
    };
    let ack = Ack::from_frame(&frame).expect("an ACK");
    ack.actions()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("ACK actions do not decode: {e:?}"))
}

/// The status of an AGENT-DISCONNECT frame.
pub fn disconnect_status(header: &FrameHeader, payload: &[u8]) -> u32 {
    assert_eq!(
        header.frame_type,
        FrameType::AgentDisconnect,
        "expected AGENT-DISCONNECT"
    );
    Disconnect::parse(payload)
        .expect("AGENT-DISCONNECT payload")
        .status
        .code()
}

/// A frame in a few words, for assertion messages.
fn describe(header: &FrameHeader, payload: &[u8]) -> String {
    match Disconnect::parse(payload) {
        Ok(d) if header.frame_type == FrameType::AgentDisconnect => format!(
            "AGENT-DISCONNECT {} \"{}\"",
            d.status.code(),
            String::from_utf8_lossy(d.message)
        ),
        _ => header.frame_type.to_string(),
    }
}

/// A stream whose reads can time out: a TCP or a Unix socket.
pub trait TimedRead: Read {
    /// As [`TcpStream::set_read_timeout`].
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
}

impl TimedRead for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl TimedRead for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
}

/// Reads until the agent closes; true when it did within `timeout` (a reset counts).
pub fn closed_within(s: &mut impl TimedRead, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout))
        .expect("set the read timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Sends `frame` `count` times, each after the ACK of the one before: one frame per read and per
/// write on the agent's side.
pub fn ping_pong(s: &mut (impl Read + Write), frame: &[u8], count: u64) {
    for i in 0..count {
        s.write_all(frame).expect("write NOTIFY");
        expect_ack(s, i);
    }
}

/// Writes `batches` times `batch` copies of `frame` in one write, reading the `batch` ACKs after
/// each: the agent's reads hold several frames and partial ones.
pub fn pipelined(s: &mut (impl Read + Write), frame: &[u8], batches: u64, batch: u64) {
    let bytes = frame.repeat(batch as usize);
    for i in 0..batches {
        s.write_all(&bytes).expect("write NOTIFYs");
        for j in 0..batch {
            expect_ack(s, i * batch + j);
        }
    }
}

fn expect_ack(s: &mut impl Read, n: u64) {
    let (h, p) = read_frame(s).unwrap_or_else(|| panic!("closed before ACK {n}"));
    assert_eq!(h.frame_type, FrameType::Ack, "{}", describe(&h, &p));
}
