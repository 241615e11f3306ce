//! An in-process uring server and a test handler; HAProxy's side is `spop_testkit::peer`,
//! re-exported here.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::thread::{self, JoinHandle};

use runtime_core::{HandlerFactory, ServerConfig};
use runtime_uring::{Server, ShutdownHandle, UringOptions};
use spop_core::{AckWriter, Action, FrameHeader, Handler, Message, Scope, TypedData};
use spop_testkit::peer;

// What serve.rs uses; alloc.rs, which includes this module too, uses only some.
#[allow(unused_imports)]
pub use spop_testkit::{
    peer::{connect, disconnect_status, hello, read_frame, session},
    server::loopback as config,
};

/// Whether io_uring works here; tests that need it return early (with a note) when not. Under
/// CI (`CI=true`) the runtime must run: a green run must have tested it.
pub fn uring_available(workers: usize) -> bool {
    match runtime_uring::probe(workers) {
        Ok(()) => true,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but the uring runtime cannot run here: {why}")
        }
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

/// Answers every message with a 1 KiB variable: ACKs far larger than the NOTIFYs they answer.
pub struct Padded;

impl Handler for Padded {
    fn on_message(&mut self, _: &Message<'_>, ack: &mut AckWriter<'_>) {
        let _ = ack.set_var(Scope::Session, b"padding", TypedData::Binary(&[0; 1024]));
    }

    fn ack_size_hint(&self) -> Option<usize> {
        Some(1100)
    }
}

pub struct PaddedFactory;

impl HandlerFactory for PaddedFactory {
    type Handler = Padded;

    fn handler(&self, _: usize) -> Padded {
        Padded
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

pub fn start<F: HandlerFactory>(config: ServerConfig, factory: F) -> Running {
    start_with(config, UringOptions::default(), factory)
}

/// [`start`] with `options`.
pub fn start_with<F: HandlerFactory>(
    config: ServerConfig,
    options: UringOptions,
    factory: F,
) -> Running {
    let server = Server::bind(config, options).expect("bind");
    let addr = server.local_addrs()[0];
    let stop = server.shutdown_handle();
    let thread = thread::spawn(move || server.run(factory));
    Running { addr, stop, thread }
}

/// A NOTIFY with one `check-client-ip` message carrying an IPv4 address.
pub fn notify(stream: u64, frame: u64) -> Vec<u8> {
    peer::notify(stream, frame, ip())
}

/// A NOTIFY with one message `name` carrying an IPv4 address.
pub fn notify_named(stream: u64, frame: u64, name: &[u8]) -> Vec<u8> {
    peer::notify_message(stream, frame, name, &[(b"", ip())])
}

fn ip() -> TypedData<'static> {
    TypedData::Ipv4(Ipv4Addr::new(192, 0, 2, 1))
}

/// Checks an ACK of (stream, frame); returns the `worker` it carries.
pub fn ack_worker(header: &FrameHeader, payload: &[u8], stream: u64, frame: u64) -> i32 {
    peer::assert_ack_of(header, stream, frame);
    match peer::ack_actions(header, payload).as_slice() {
        [Action::SetVar {
            name: b"worker",
            value: TypedData::Int32(w),
            ..
        }] => *w,
        other => panic!("unexpected actions {other:?}"),
    }
}
