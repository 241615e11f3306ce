//! A tiny SPOP client and a test handler, for tests against an in-process uring server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use runtime_core::{HandlerFactory, ServerConfig};
use runtime_uring::{Server, ShutdownHandle, UringOptions};
use spop_core::frame::LENGTH_SIZE;
use spop_core::{
    AckWriter, Arg, Disconnect, Frame, FrameHeader, FrameId, FrameType, Handler, HaproxyHello,
    Message, NotifyWriter, Scope, StreamId, TypedData,
};

/// Whether io_uring works here; tests that need it return early (with a note) when not.
pub fn uring_available(workers: usize) -> bool {
    match runtime_uring::probe(workers) {
        Ok(()) => true,
        Err(why) => {
            eprintln!("NOTE: skipped, the uring runtime cannot run here: {why}");
            false
        }
    }
}

/// Answers every message with `worker` = the executor's worker index.
pub struct WorkerTag(pub i32);

impl Handler for WorkerTag {
    fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>) {
        assert!(message.name != b"panic", "the handler was told to panic");
        let _ = ack.set_var(Scope::Session, b"worker", TypedData::Int32(self.0));
    }

    fn ack_size_hint(&self) -> Option<usize> {
        Some(64)
    }
}

pub struct TagFactory;

impl HandlerFactory for TagFactory {
    type Handler = WorkerTag;

    fn handler(&self, worker: usize) -> WorkerTag {
        WorkerTag(worker as i32)
    }
}

/// A server on 127.0.0.1, port 0, running on its own thread.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: ShutdownHandle,
    pub thread: JoinHandle<io::Result<usize>>,
}

impl Running {
    /// Shuts down and returns `run`'s result.
    pub fn stop(self) -> io::Result<usize> {
        self.stop.shutdown();
        self.thread.join().expect("server thread")
    }
}

pub fn config(workers: usize) -> ServerConfig {
    ServerConfig {
        addresses: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        workers,
        ..ServerConfig::default()
    }
}

pub fn start<F: HandlerFactory>(config: ServerConfig, factory: F) -> Running {
    let server = Server::bind(config, UringOptions::default()).expect("bind");
    let addr = server.local_addrs()[0];
    let stop = server.shutdown_handle();
    let thread = thread::spawn(move || server.run(factory));
    Running { addr, stop, thread }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A connection past the handshake.
pub fn session(addr: SocketAddr) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(&hello(16380)).unwrap();
    let (h, _) = read_frame(&mut s).expect("AGENT-HELLO");
    assert_eq!(h.frame_type, FrameType::AgentHello);
    s
}

pub fn hello(max_frame_size: u32) -> Vec<u8> {
    let mut out = vec![0u8; 1024];
    let n = HaproxyHello {
        supported_versions: Some(b"2.0"),
        max_frame_size: Some(max_frame_size.into()),
        capabilities: Some(b"pipelining"),
        ..HaproxyHello::default()
    }
    .encode(&mut out)
    .unwrap();
    out.truncate(n);
    out
}

/// A NOTIFY with one `check-client-ip` message carrying an IPv4 address.
pub fn notify(stream: u64, frame: u64) -> Vec<u8> {
    notify_named(stream, frame, b"check-client-ip")
}

/// A NOTIFY with one message `name` carrying an IPv4 address.
pub fn notify_named(stream: u64, frame: u64, name: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 256];
    let mut w = NotifyWriter::new(&mut out, StreamId(stream), FrameId(frame), u32::MAX).unwrap();
    let ip = TypedData::Ipv4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    w.message(
        name,
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

/// Reads one whole frame; `None` at end of stream (or on a reset).
pub fn read_frame(s: &mut impl Read) -> Option<(FrameHeader, Vec<u8>)> {
    let mut len = [0u8; LENGTH_SIZE];
    s.read_exact(&mut len).ok()?;
    let len = u32::from_be_bytes(len) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    let frame = Frame::decode_body(&body).expect("agent frame header");
    Some((frame.header, frame.payload.to_vec()))
}

/// Checks an ACK of (stream, frame); returns the `worker` it carries.
pub fn ack_worker(header: &FrameHeader, payload: &[u8], stream: u64, frame: u64) -> i32 {
    assert_eq!(header.frame_type, FrameType::Ack, "expected an ACK");
    assert_eq!((header.stream_id.0, header.frame_id.0), (stream, frame));
    let body = Frame {
        header: *header,
        payload,
    };
    let ack = spop_core::Ack::from_frame(&body).unwrap();
    let actions: Vec<_> = ack.actions().collect::<Result<_, _>>().unwrap();
    match actions.as_slice() {
        [spop_core::Action::SetVar {
            name: b"worker",
            value: TypedData::Int32(w),
            ..
        }] => *w,
        other => panic!("unexpected actions {other:?}"),
    }
}

pub fn disconnect_status(header: &FrameHeader, payload: &[u8]) -> u32 {
    assert_eq!(header.frame_type, FrameType::AgentDisconnect);
    Disconnect::parse(payload).unwrap().status.code()
}
