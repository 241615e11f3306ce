//! The canned responder: same TCP framing as an agent, no protocol work. It answers HELLO with a
//! fixed AGENT-HELLO and each NOTIFY with a precomputed ACK after extracting only the ids, so the
//! same shapes against it measure the harness and the loopback, not an agent.
//!
//! One thread, one epoll (mio): it reads everything a socket holds, answers every complete frame
//! of that read, and writes all the answers at once.

use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use spop_core::frame::FrameType;
use spop_core::Parsed;

use crate::proto::{self, CannedReplies};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const READ_CHUNK: usize = 64 * 1024;

/// The line the responder prints on stdout once it listens.
pub const READY_PREFIX: &str = "canned responder listening on ";

/// How the canned responder serves its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// One thread, one epoll for every connection.
    #[default]
    Epoll,
    /// A thread per connection with blocking reads and writes (the std runtime's model).
    Threads,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "epoll" => Ok(Mode::Epoll),
            "threads" => Ok(Mode::Threads),
            _ => Err(format!("responder mode '{s}': epoll or threads")),
        }
    }
}

impl Mode {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Epoll => "epoll",
            Mode::Threads => "threads",
        }
    }
}

/// The input side of a connection: bytes read, answered frame by frame.
struct Framer {
    rbuf: Vec<u8>,
    filled: usize,
    closing: bool,
}

impl Framer {
    fn new() -> Self {
        Framer {
            rbuf: vec![0; READ_CHUNK],
            filled: 0,
            closing: false,
        }
    }

    /// Appends the answer of every complete frame to `out`; false when the connection must close
    /// (garbage in, or an ACK that cannot be encoded).
    fn answer(&mut self, canned: &CannedReplies, out: &mut Vec<u8>) -> bool {
        let mut at = 0;
        while !self.closing {
            match proto::next_frame(&self.rbuf[at..self.filled]) {
                Ok(Parsed::Complete(frame, used)) => {
                    at += used;
                    let h = frame.header;
                    match h.frame_type {
                        FrameType::Notify => {
                            let Ok(()) = canned.push_ack(out, h.stream_id.0, h.frame_id.0) else {
                                return false;
                            };
                        }
                        FrameType::HaproxyHello => out.extend_from_slice(&canned.agent_hello),
                        FrameType::HaproxyDisconnect => {
                            out.extend_from_slice(&canned.agent_disconnect);
                            self.closing = true;
                        }
                        _ => {}
                    }
                }
                Ok(Parsed::Partial) => break,
                Err(_) => return false,
            }
        }
        self.rbuf.copy_within(at..self.filled, 0);
        self.filled -= at;
        true
    }
}

struct Conn {
    stream: TcpStream,
    framer: Framer,
    wbuf: Vec<u8>,
    written: usize,
}

/// Serves on `listener` until `stop` is set (checked when `waker` is woken, or every 100 ms).
fn serve(mut listener: TcpListener, mut poll: Poll, stop: &AtomicBool) -> io::Result<()> {
    let canned = CannedReplies::default();
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(100))) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            match ev.token() {
                WAKER => {}
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let slot = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(
                                &mut stream,
                                Token(slot),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns[slot] = Some(Conn {
                                stream,
                                framer: Framer::new(),
                                wbuf: Vec::with_capacity(4096),
                                written: 0,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // Out of descriptors and the like: try again at the next event.
                        Err(_) => break,
                    }
                },
                Token(slot) => {
                    let Some(Some(c)) = conns.get_mut(slot) else {
                        continue;
                    };
                    let alive = (!ev.is_readable() || read(c, &canned)) && flush(c);
                    if !alive || (c.framer.closing && c.written == c.wbuf.len()) {
                        if let Some(mut c) = conns[slot].take() {
                            let _ = poll.registry().deregister(&mut c.stream);
                        }
                        free.push(slot);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reads and answers; false when the connection is over.
fn read(c: &mut Conn, canned: &CannedReplies) -> bool {
    loop {
        let f = &mut c.framer;
        if f.filled == f.rbuf.len() {
            return false;
        }
        let space = f.rbuf.len() - f.filled;
        match c.stream.read(&mut f.rbuf[f.filled..]) {
            Ok(0) => return false,
            Ok(n) => {
                f.filled += n;
                if c.written == c.wbuf.len() {
                    c.wbuf.clear();
                    c.written = 0;
                }
                if !c.framer.answer(canned, &mut c.wbuf) {
                    return false;
                }
                if n < space {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Writes what the socket takes; false on error.
fn flush(c: &mut Conn) -> bool {
    while c.written < c.wbuf.len() {
        match c.stream.write(&c.wbuf[c.written..]) {
            Ok(0) => return false,
            Ok(n) => c.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    c.wbuf.clear();
    c.written = 0;
    true
}

/// A canned responder on a thread of this process; stopped on drop.
pub struct Responder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Responder {
    /// Listens on `addr` (port 0 for any) and serves on a new thread.
    pub fn start(addr: SocketAddr) -> io::Result<Responder> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("canned-responder".into())
            .spawn(move || serve(listener, poll, &flag))?;
        Ok(Responder {
            addr,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection of [`Mode::Threads`]: blocking read, answer, one write.
fn serve_blocking(mut s: std::net::TcpStream, canned: &CannedReplies) {
    let _ = s.set_nodelay(true);
    let mut framer = Framer::new();
    let mut out = Vec::with_capacity(4096);
    loop {
        if framer.filled == framer.rbuf.len() {
            return;
        }
        match s.read(&mut framer.rbuf[framer.filled..]) {
            Ok(0) => return,
            Ok(n) => framer.filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        out.clear();
        let ok = framer.answer(canned, &mut out);
        if s.write_all(&out).is_err() || !ok || framer.closing {
            return;
        }
    }
}

/// `spoa-loadgen --responder`: serves in `mode`, prints [`READY_PREFIX`]`<addr>` on stdout, and
/// exits when stdin reaches its end (the parent went away) or on a signal.
pub fn run_standalone(addr: SocketAddr, mode: Mode) -> io::Result<()> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    let local = std_listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (poll, waker) = match mode {
        Mode::Epoll => {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            (Some(poll), Some(waker))
        }
        Mode::Threads => (None, None),
    };
    let flag = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            let mut sink = [0u8; 64];
            let mut stdin = io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            flag.store(true, Ordering::Relaxed);
            match waker {
                Some(w) => {
                    let _ = w.wake();
                }
                // Blocking threads cannot be woken: end the process.
                None => std::process::exit(0),
            }
        })?;
    let mut out = io::stdout();
    writeln!(out, "{READY_PREFIX}{local}")?;
    out.flush()?;
    match poll {
        Some(poll) => {
            std_listener.set_nonblocking(true)?;
            serve(TcpListener::from_std(std_listener), poll, &stop)
        }
        None => {
            let canned = Arc::new(CannedReplies::default());
            for stream in std_listener.incoming() {
                let Ok(stream) = stream else { continue };
                let canned = Arc::clone(&canned);
                std::thread::Builder::new()
                    .name("canned-conn".into())
                    .spawn(move || serve_blocking(stream, &canned))?;
            }
            Ok(())
        }
    }
}

/// A canned responder running as a child process (`<exe> --responder`), so its CPU time is
/// measured apart from the load generator's; killed on drop.
pub struct ResponderProcess {
    child: Child,
    addr: SocketAddr,
    // Held open: the child exits when it closes.
    _stdin: Option<ChildStdin>,
}

impl ResponderProcess {
    /// Starts `exe --responder --responder-mode <mode> --listen 127.0.0.1:0` and waits for its
    /// address.
    /// Starts it on `cpus` (any CPU when `None`).
    pub fn spawn(
        exe: &Path,
        mode: Mode,
        cpus: Option<&[usize]>,
    ) -> Result<ResponderProcess, String> {
        let mut child = crate::placement::command(exe, cpus)
            .args(["--responder", "--responder-mode", mode.name()])
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start the canned responder {}: {e}", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let addr = stdout.and_then(|out| {
            let mut line = String::new();
            io::BufReader::new(out).read_line(&mut line).ok()?;
            line.trim().strip_prefix(READY_PREFIX)?.parse().ok()
        });
        match addr {
            Some(addr) => Ok(ResponderProcess {
                child,
                addr,
                _stdin: stdin,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "the canned responder {} did not say where it listens",
                    exe.display()
                ))
            }
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its pid, for CPU accounting.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ResponderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
