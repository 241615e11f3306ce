//! Listeners, accept threads and one thread per connection.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use spop_core::{Capabilities, Close, Error, Handler};

use crate::config::{HandlerFactory, ServerConfig};
use crate::limited_warn;
use crate::limiter::LogLimiter;
use crate::report::{report, End};
use crate::session::{Session, Step};

/// Reassembly capacity when fragmentation is on: HAProxy 2.x fragments a NOTIFY only when it is
/// larger than the agent's max-frame-size, and never beyond its `tune.bufsize`.
pub const FRAGMENT_CAPACITY: usize = 128 * 1024;
/// Connection threads keep their buffers on the heap; a small stack lets thousands coexist.
const CONNECTION_STACK: usize = 256 * 1024;
/// With fragmentation the engine holds its reassembly buffer inline, on the thread's stack.
const FRAGMENTING_CONNECTION_STACK: usize = 2 * 1024 * 1024;

/// Warnings about accept failures and refused connections.
static ACCEPT_WARNINGS: LogLimiter = LogLimiter::new(5);

/// Bound listeners, ready to serve.
pub struct Server {
    listeners: Vec<TcpListener>,
    config: ServerConfig,
    shared: Arc<Shared>,
}

struct Shared {
    stopping: AtomicBool,
    stop_requested: Mutex<bool>,
    stop_signal: Condvar,
    active: AtomicUsize,
    next_id: AtomicU64,
    /// A second handle on every open connection, to wake its blocked read at shutdown. Touched
    /// at connect and disconnect only.
    streams: Mutex<HashMap<u64, TcpStream>>,
}

/// Asks a running [`Server`] to stop; cloneable and usable from any thread (a signal handler
/// thread, a test).
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Stops accepting, lets every connection answer what it has received, sends each an
    /// AGENT-DISCONNECT 0 and closes it. [`Server::run`] returns when all are done or the
    /// shutdown timeout passed.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Ok(mut requested) = self.shared.stop_requested.lock() {
            *requested = true;
        }
        self.shared.stop_signal.notify_all();
    }
}

impl Server {
    /// Binds every address of `config`.
    pub fn bind(config: ServerConfig) -> io::Result<Server> {
        if config.addresses.is_empty() {
            return Err(io::Error::new(ErrorKind::InvalidInput, "no listen address"));
        }
        let mut listeners = Vec::with_capacity(config.addresses.len());
        for addr in &config.addresses {
            let listener = listen(*addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            listeners.push(listener);
        }
        Ok(Server {
            listeners,
            config,
            shared: Arc::new(Shared {
                stopping: AtomicBool::new(false),
                stop_requested: Mutex::new(false),
                stop_signal: Condvar::new(),
                active: AtomicUsize::new(0),
                next_id: AtomicU64::new(0),
                streams: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The bound addresses (with the real port when 0 was asked).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// A handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves until [`ShutdownHandle::shutdown`], then drains. Returns the number of connections
    /// still open when the shutdown timeout passed (0 after a clean drain).
    pub fn run<F: HandlerFactory>(self, factory: F) -> io::Result<usize> {
        let factory = Arc::new(factory);
        let config = Arc::new(self.config);
        let addrs: Vec<SocketAddr> = self
            .listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let mut acceptors = Vec::new();
        for listener in self.listeners {
            let (factory, config, shared) = (
                Arc::clone(&factory),
                Arc::clone(&config),
                Arc::clone(&self.shared),
            );
            let name = format!("accept {}", listener.local_addr()?);
            acceptors.push(
                thread::Builder::new()
                    .name(name)
                    .spawn(move || accept_loop(listener, factory, config, shared))?,
            );
        }

        // Wait for the stop request.
        {
            let mut requested = self
                .shared
                .stop_requested
                .lock()
                .map_err(|_| io::Error::other("stop lock poisoned"))?;
            while !*requested {
                requested = self
                    .shared
                    .stop_signal
                    .wait(requested)
                    .map_err(|_| io::Error::other("stop lock poisoned"))?;
            }
        }

        // Stop accepting: wake each accept thread with a connection of our own.
        for addr in &addrs {
            let _ = TcpStream::connect_timeout(&wake_address(*addr), Duration::from_millis(200));
        }
        for acceptor in acceptors {
            let _ = acceptor.join();
        }

        // Wake every connection blocked in a read: data already received is still read and
        // answered, then the connection sees end-of-input and says AGENT-DISCONNECT 0.
        if let Ok(streams) = self.shared.streams.lock() {
            for stream in streams.values() {
                let _ = stream.shutdown(Shutdown::Read);
            }
        }
        let deadline = Instant::now() + config.shutdown_timeout;
        while self.shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let left = self.shared.active.load(Ordering::SeqCst);
        if left > 0 {
            log::warn!("shutdown timeout: {left} connections still open, closing them");
            if let Ok(streams) = self.shared.streams.lock() {
                for stream in streams.values() {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
        Ok(left)
    }
}

/// The accept queue asked of the kernel (capped by `net.core.somaxconn`). std's own `bind` asks
/// for 128, which a HAProxy reload overflows: on reload every SPOE connection reopens at once,
/// and connections beyond the queue wait for SYN-ACK retransmits (1 s, 2 s, 4 s...).
pub const LISTEN_BACKLOG: i32 = 4096;

/// A listening socket with a deep accept queue, SO_REUSEADDR (restart while old connections are
/// in TIME_WAIT), and IPv6 sockets v6-only so `0.0.0.0` and `::` can share a port.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Where to connect to reach a listener bound to `addr` (a wildcard address is reached on
/// loopback): how a runtime wakes its own accept loops at shutdown.
pub fn wake_address(addr: SocketAddr) -> SocketAddr {
    let mut target = addr;
    if addr.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    target
}

fn accept_loop<F: HandlerFactory>(
    listener: TcpListener,
    factory: Arc<F>,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: back off instead of spinning on a full descriptor table.
                limited_warn!(ACCEPT_WARNINGS, "accept failed: {e}; retrying in 100 ms");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if !config.allows(peer.ip()) {
            limited_warn!(ACCEPT_WARNINGS, "{peer}: refused, not in --allow-from");
            continue;
        }
        if shared.active.load(Ordering::SeqCst) >= config.max_connections {
            limited_warn!(
                ACCEPT_WARNINGS,
                "{peer}: refused, {} connections already open (--max-connections)",
                config.max_connections
            );
            continue;
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let stack = if config
            .engine
            .capabilities
            .contains(Capabilities::FRAGMENTATION)
        {
            FRAGMENTING_CONNECTION_STACK
        } else {
            CONNECTION_STACK
        };
        if let Ok(clone) = stream.try_clone() {
            if let Ok(mut streams) = shared.streams.lock() {
                streams.insert(id, clone);
            }
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let (factory, config, conn_shared) = (
            Arc::clone(&factory),
            Arc::clone(&config),
            Arc::clone(&shared),
        );
        let spawned = thread::Builder::new()
            .name(format!("conn {id}"))
            .stack_size(stack)
            .spawn(move || {
                let worker = (id % config.workers.max(1) as u64) as usize;
                let handler = factory.handler(worker);
                log::debug!("{peer}: connection #{id} opened (worker {worker})");
                serve(stream, peer, id, handler, &config, &conn_shared);
                conn_shared.forget(id);
            });
        if let Err(e) = spawned {
            limited_warn!(ACCEPT_WARNINGS, "{peer}: cannot start a thread: {e}");
            shared.forget(id);
        }
    }
}

impl Shared {
    fn forget(&self, id: u64) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.remove(&id);
        }
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    mut handler: H,
    config: &ServerConfig,
    shared: &Shared,
) {
    if config
        .engine
        .capabilities
        .contains(Capabilities::FRAGMENTATION)
    {
        serve_with::<H, FRAGMENT_CAPACITY>(stream, peer, id, &mut handler, config, shared);
    } else {
        serve_with::<H, 0>(stream, peer, id, &mut handler, config, shared);
    }
}

/// Kept out of line so a connection without fragmentation never pays for the stack frame of
/// the reassembling engine.
#[inline(never)]
fn serve_with<H: Handler, const FRAG: usize>(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    handler: &mut H,
    config: &ServerConfig,
    shared: &Shared,
) {
    match Session::<FRAG>::new(config.engine, handler.ack_size_hint()) {
        Ok(session) => drive(stream, peer, id, Box::new(session), handler, config, shared),
        Err(e) => log::error!("{peer}: {e}"),
    }
}

fn drive<H: Handler, const FRAG: usize>(
    mut stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    mut session: Box<Session<FRAG>>,
    handler: &mut H,
    config: &ServerConfig,
    shared: &Shared,
) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(config.write_timeout);
    let mut read_timeout: Option<Duration> = None;

    let end = loop {
        let wanted = session.read_timeout(config);
        if wanted != read_timeout {
            let _ = stream.set_read_timeout(wanted);
            read_timeout = wanted;
        }

        let n = match stream.read(session.read_buf()) {
            Ok(0) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    session.shutdown();
                    let _ = stream.write_all(session.output());
                    break End::Closed(Close::Shutdown);
                }
                break End::Eof;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                session.abort(Error::Timeout);
                let _ = stream.write_all(session.output());
                break End::Closed(Close::Error(Error::Timeout));
            }
            Err(e) => break End::Io(e),
        };
        session.commit_read(n);
        let step = loop {
            let step = session.process(handler);
            if !session.output().is_empty() {
                if let Err(e) = stream.write_all(session.output()) {
                    break Err(e);
                }
                let len = session.output().len();
                session.consume_output(len);
            }
            if step != Step::NeedOutput {
                break Ok(step);
            }
        };
        if let Some(end) = End::after_batch(step) {
            break end;
        }
    };
    let _ = stream.shutdown(Shutdown::Both);
    report(peer, id, &session, end);
}
