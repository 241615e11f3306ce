//! Listeners, accept threads and one thread per connection.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
#[cfg(unix)]
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[cfg(unix)]
use runtime_core::handoff::{Adopted, HandOver, HandOverAtStop};
use runtime_core::log_context;
use runtime_core::session::{self, Next, Serve, Session, SocketTimeout};
use runtime_core::{
    handoff, listen_all, log_accept_failure, log_accept_warning, log_refusal, report, AcceptWake,
    Connections, End, HandlerFactory, ListenAddress, Listener, Listeners, Live, Peer, ServerConfig,
    ServerState, Stream, ACCEPT_BACKOFF,
};
use spop_core::{Capabilities, Handler, Handshake};

/// Connection threads keep their buffers on the heap; a small stack lets thousands coexist.
const CONNECTION_STACK: usize = 256 * 1024;
/// With fragmentation the engine builds its reassembly buffer on the thread's stack first.
const FRAGMENTING_CONNECTION_STACK: usize = 2 * 1024 * 1024;
/// With a hand-over at the stop, how often an idle connection's blocked read returns to see
/// whether the agent is stopping: a read cannot be woken otherwise without `shutdown()`, which
/// acts on the socket itself and would end the connection for the next agent too. A
/// connection with traffic sees the stop at its next read; an idle one costs a wake-up per
/// tick.
const HANDOFF_TICK: Duration = Duration::from_millis(50);

/// Bound listeners, ready to serve.
pub struct Server {
    state: ServerState,
    config: ServerConfig,
    shared: Arc<Shared>,
}

struct Shared {
    stopping: AtomicBool,
    stop_requested: Mutex<bool>,
    stop_signal: Condvar,
    connections: Arc<Connections>,
    /// How the accept threads are woken at a stop.
    wake: AcceptWake,
    /// A second handle on every open connection, to wake its blocked read at shutdown. Touched
    /// at connect and disconnect only.
    streams: Mutex<HashMap<u64, Stream>>,
    /// Where open connections go at the stop, if they are handed over; its phase is closed
    /// (under the `streams` lock) when the rest are drained as without one.
    #[cfg(unix)]
    at_stop: HandOverAtStop,
}

impl Shared {
    /// Whether the stop hands connections over (connections keep waking at [`HANDOFF_TICK`]).
    fn hands_over(&self) -> bool {
        #[cfg(unix)]
        return self.at_stop.get().is_some();
        #[cfg(not(unix))]
        false
    }
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
        let listeners = listen_all(&config.addresses, &config.unix)?;
        Ok(Server::with_listeners(config, listeners))
    }

    /// Serves on listeners made elsewhere (passed by a service manager: see
    /// [`runtime_core::inherit`] and [`Listeners::adopted`]) instead of binding
    /// `config.addresses`. They must be listening and blocking.
    pub fn with_listeners(config: ServerConfig, listeners: Listeners) -> Server {
        let connections = Connections::new(1);
        config.metrics.watch(&connections);
        Server {
            state: ServerState::new(listeners),
            config,
            shared: Arc::new(Shared {
                stopping: AtomicBool::new(false),
                stop_requested: Mutex::new(false),
                stop_signal: Condvar::new(),
                connections,
                wake: AcceptWake::new(),
                streams: Mutex::new(HashMap::new()),
                #[cfg(unix)]
                at_stop: HandOverAtStop::new(),
            }),
        }
    }

    /// Serves these connections too, handed over by the previous agent (see
    /// [`runtime_core::handoff`]): each resumes as an established session.
    #[cfg(unix)]
    pub fn adopt(&mut self, connections: Vec<Adopted>) {
        self.state.adopt(connections);
    }

    /// At the stop, hands each open connection to the service manager behind `hand_over` at
    /// its next frame boundary instead of ending it with AGENT-DISCONNECT; connections that
    /// reach none within half the shutdown timeout are drained as without it. A second call
    /// replaces the first ([`ServerState::hand_over_at_stop`]).
    #[cfg(unix)]
    pub fn hand_over_at_stop(&mut self, hand_over: HandOver) {
        self.state.hand_over_at_stop(hand_over);
    }

    /// The bound TCP addresses (with the real port when 0 was asked).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.state.local_addrs()
    }

    /// Every bound address, TCP and Unix.
    pub fn listen_addresses(&self) -> Vec<ListenAddress> {
        self.state.listen_addresses()
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
        let addrs = self.state.listen_addresses();
        #[cfg(unix)]
        let (listeners, adopted) = self.state.start(&self.shared.at_stop);
        #[cfg(not(unix))]
        let listeners = self.state.start();
        // The socket files stay until every connection is done: dropped when this returns.
        let Listeners {
            sockets,
            #[cfg(unix)]
                files: _files,
        } = listeners;
        let started = Instant::now();
        #[cfg(unix)]
        for adopted in adopted {
            let live = self.shared.connections.open(0);
            log::debug!(
                "{}: connection #{} adopted from descriptor {} ({})",
                adopted.peer,
                live.id(),
                adopted.fd,
                adopted.name
            );
            start_connection(
                adopted.stream,
                adopted.peer,
                Some(adopted.handshake),
                live,
                &factory,
                &config,
                &self.shared,
                started,
            );
        }
        let mut acceptors = Vec::new();
        for listener in sockets {
            let (factory, config, shared) = (
                Arc::clone(&factory),
                Arc::clone(&config),
                Arc::clone(&self.shared),
            );
            let name = format!("accept {}", listener.address()?);
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

        // Stop accepting: wake each accept thread with a connection of our own, kept open until
        // the threads are done.
        let wakes: Vec<_> = addrs
            .iter()
            .filter_map(|addr| self.shared.wake.wake(addr).ok())
            .collect();
        for acceptor in acceptors {
            let _ = acceptor.join();
        }
        drop(wakes);

        let stopped = Instant::now();
        let deadline = stopped + config.shutdown_timeout;
        if self.shared.hands_over() {
            // Connections hand themselves over at their next frame boundary (an idle one within
            // HANDOFF_TICK); those that reach none in half the shutdown timeout are drained.
            let handing_deadline = handoff::handing_deadline(stopped, config.shutdown_timeout);
            while self.shared.connections.count() > 0 && Instant::now() < handing_deadline {
                thread::sleep(Duration::from_millis(2));
            }
        }
        // Wake every connection blocked in a read: data already received is still read and
        // answered, then the connection sees end-of-input and says AGENT-DISCONNECT 0.
        if let Ok(streams) = self.shared.streams.lock() {
            #[cfg(unix)]
            self.shared.at_stop.close();
            for stream in streams.values() {
                let _ = stream.shutdown(Shutdown::Read);
            }
        }
        while self.shared.connections.count() > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let left = self.shared.connections.count();
        if left > 0 {
            log::warn!("shutdown timeout: {left} connections still open, closing them");
            if let Ok(streams) = self.shared.streams.lock() {
                for stream in streams.values() {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
        #[cfg(unix)]
        self.shared.at_stop.finish(left);
        Ok(left)
    }
}

/// Accepts a connection: the stream and who it is from.
fn accept(listener: &Listener, unix_peer: Option<&Peer>) -> io::Result<(Stream, Peer)> {
    match (listener, unix_peer) {
        (Listener::Tcp(l), _) => l.accept().map(|(s, addr)| (Stream::Tcp(s), Peer::Ip(addr))),
        #[cfg(unix)]
        (Listener::Unix(l), peer) => l.accept().map(|(s, _)| {
            let peer = peer
                .cloned()
                .unwrap_or_else(|| Peer::Unix(std::path::Path::new("(unnamed)").into()));
            (Stream::Unix(s), peer)
        }),
    }
}

fn accept_loop<F: HandlerFactory>(
    listener: Listener,
    factory: Arc<F>,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
) {
    let unix_peer = listener.unix_peer();
    loop {
        let accepted = accept(&listener, unix_peer.as_ref());
        let stopping = shared.stopping.load(Ordering::SeqCst);
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(_) if stopping => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                log_accept_failure(&e);
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        // Once stopping, the loop ends at its own wake-up; a connection queued before it is
        // served and drained like the others (see `AcceptWake`).
        if stopping && shared.wake.is_wake(&stream) {
            return;
        }
        if let Err(refusal) = config.admit(&peer, shared.connections.count()) {
            log_refusal(&peer, refusal);
            continue;
        }
        let live = shared.connections.open(0);
        start_connection(
            stream,
            peer,
            None,
            live,
            &factory,
            &config,
            &shared,
            Instant::now(),
        );
    }
}

/// Serves a connection on a thread of its own: an accepted one, or (with the `handshake` its
/// previous agent completed) one handed over.
#[allow(clippy::too_many_arguments)]
fn start_connection<F: HandlerFactory>(
    stream: Stream,
    peer: Peer,
    handshake: Option<Handshake>,
    live: Live,
    factory: &Arc<F>,
    config: &Arc<ServerConfig>,
    shared: &Arc<Shared>,
    now: Instant,
) {
    let id = live.id();
    let stack = if config
        .engine
        .capabilities
        .contains(Capabilities::FRAGMENTATION)
    {
        FRAGMENTING_CONNECTION_STACK
    } else {
        CONNECTION_STACK
    };
    let registered = Registered::new(shared, id, &stream);
    let (factory, config, shared) = (Arc::clone(factory), Arc::clone(config), Arc::clone(shared));
    let name = peer.clone();
    let spawned = thread::Builder::new()
        .name(format!("conn {id}"))
        .stack_size(stack)
        .spawn(move || {
            log::debug!(peer:% = peer, connection = id; "{peer}: connection #{id} opened");
            let conn = Connection {
                stream,
                peer,
                handler: factory.handler(0),
                shared: &shared,
                _registered: registered,
                live,
            };
            let hint = conn.handler.ack_size_hint();
            if let Err(e) = session::open(&config, hint, handshake, now, conn) {
                log::error!("{name}: {e}");
            }
        });
    if let Err(e) = spawned {
        log_accept_warning(format_args!("connection #{id}: cannot start a thread: {e}"));
    }
}

/// A second handle on an open connection, kept in [`Shared::streams`] so that a stop can wake
/// its blocked read; removed when the connection ends, however it ends.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Registered {
    fn new(shared: &Arc<Shared>, id: u64, stream: &Stream) -> Registered {
        if let (Ok(clone), Ok(mut streams)) = (stream.try_clone(), shared.streams.lock()) {
            streams.insert(id, clone);
        }
        Registered {
            shared: Arc::clone(shared),
            id,
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut streams) = self.shared.streams.lock() {
            streams.remove(&self.id);
        }
    }
}

/// One connection on its own thread: blocking reads and writes, with the socket's timeouts
/// following the session's deadlines.
struct Connection<'a, H> {
    stream: Stream,
    peer: Peer,
    handler: H,
    shared: &'a Shared,
    _registered: Registered,
    live: Live,
}

impl<H> Connection<'_, H> {
    /// At the stop, hands the connection to the service manager if the hand-over phase is
    /// still open; under the `streams` lock, so that the phase cannot close (and the stop shut
    /// the socket down) in between. True once the manager has it: close without a word.
    #[cfg(unix)]
    fn hand_over(&self, handshake: &Handshake) -> bool {
        let id = self.live.id();
        let Ok(mut streams) = self.shared.streams.lock() else {
            return false;
        };
        let Some(hand_over) = self.shared.at_stop.handing_over() else {
            return false;
        };
        if hand_over
            .hand_over(self.stream.as_fd(), handshake, id)
            .is_err()
        {
            return false;
        }
        streams.remove(&id);
        true
    }

    #[cfg(not(unix))]
    fn hand_over(&self, _handshake: &Handshake) -> bool {
        false
    }
}

impl<H: Handler> Serve for Connection<'_, H> {
    type Output = ();

    fn serve<const FRAG: usize>(mut self, mut session: Box<Session<FRAG>>) {
        self.stream.set_nodelay();
        let (mut read_timeout, mut write_timeout) =
            (SocketTimeout::default(), SocketTimeout::default());
        // One clock read per read or write: the instant an I/O completed is the session's `now`
        // until the next one completes.
        let mut now = Instant::now();
        let hands_over = self.shared.hands_over();
        let id = self.live.id();
        // The hand-over was tried and failed: drained as without one.
        let mut handing_failed = false;
        let end = loop {
            match log_context::serving(id, || session.next(&mut self.handler, now)) {
                Next::Read => {
                    // At the stop, a connection at a frame boundary hands itself over.
                    let at_boundary = hands_over
                        && !handing_failed
                        && self.shared.stopping.load(Ordering::SeqCst)
                        && session.can_hand_over();
                    if let Some(handshake) = at_boundary.then(|| session.handshake()).flatten() {
                        if self.hand_over(&handshake) {
                            break End::HandedOver;
                        }
                        handing_failed = true;
                        session.drain();
                        let _ = self.stream.shutdown(Shutdown::Read);
                    }
                    // With a hand-over, an idle read wakes every tick to see the stop.
                    let deadline = session
                        .poll_timeout()
                        .or_else(|| hands_over.then(|| now + HANDOFF_TICK));
                    if let Some(t) = read_timeout.update(deadline, now) {
                        let _ = self.stream.set_read_timeout(t);
                    }
                    let result = self.stream.read(session.read_buf());
                    now = Instant::now();
                    if matches!(result, Ok(0)) && self.shared.stopping.load(Ordering::SeqCst) {
                        session.drain();
                    }
                    session.on_read(result, now);
                }
                Next::Write => {
                    if let Some(t) = write_timeout.update(session.poll_timeout(), now) {
                        let _ = self.stream.set_write_timeout(t);
                    }
                    let result = self.stream.write(session.output());
                    now = Instant::now();
                    session.on_write(result, now);
                }
                Next::Close(end) => break end,
            }
        };
        // Uncounted before the peer sees the close: a peer that reconnects at once is not
        // refused at max-connections by its own old connection.
        drop(self.live);
        if let End::HandedOver = end {
            // Closed without shutdown(): the socket lives on in the service manager's store.
            drop(self.stream);
        } else {
            let _ = self.stream.shutdown(Shutdown::Both);
            #[cfg(unix)]
            if self.shared.stopping.load(Ordering::SeqCst) {
                self.shared.at_stop.ended();
            }
        }
        report(&self.peer, id, &session, end);
    }
}
