//! Executors, the acceptor, the hand-off of connections, and the graceful stop.

use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use glommio::channels::shared_channel::{self, ConnectedSender, SharedReceiver, SharedSender};
use glommio::net::{AcceptedTcpStream, TcpListener, TcpStream};
use glommio::{GlommioError, LocalExecutorBuilder, Placement, ResourceType};
use runtime_core::handoff::{Adopted, HandOver, HandOverAtStop};
use runtime_core::{
    handoff, listen_all, log_accept_failure, log_accept_warning, log_refusal, AcceptWake,
    Connections, HandlerFactory, ListenAddress, Listener, Listeners, Live, Peer, ServerConfig,
    ServerState, ACCEPT_BACKOFF,
};
use spop_core::{Handler, Handshake};

use crate::conn::Worker;
use crate::probe::{probe, spread_cpus};
use crate::stop::Stop;
/// Accepted connections waiting in each executor's hand-off queue; the acceptor waits when one
/// is full (a burst on HAProxy's reload), the kernel's backlog holds the rest.
const HANDOFF_QUEUE: usize = 128;

/// How the executors run.
#[derive(Clone, Debug)]
pub struct UringOptions {
    /// Busy-poll this long before an idle executor sleeps: a faster wake-up for the next frame,
    /// paid for with a CPU kept busy (`--spin-us`). `None`: sleep at once. The spin backs off
    /// while it finds nothing (glommio's `adaptive_spin`, PATCHES.md change 16): measured as
    /// fast as spinning before every sleep under load, and an idle executor spins before one
    /// wait in 64 at most.
    pub spin: Option<Duration>,
    /// glommio's registered I/O memory per executor, in bytes. It serves file I/O only (this
    /// runtime's sockets read into each connection's own buffers), so the 64 KiB minimum is
    /// enough; glommio's default of 10 MiB would cost 10 MiB of RSS per executor for nothing.
    pub io_memory: usize,
    /// The CPUs executors may be pinned to (`None`: every usable CPU). On a box shared with
    /// HAProxy, give the agent CPUs that HAProxy's `cpu-map` leaves free.
    pub cpus: Option<Vec<usize>>,
    /// Entries of each of an executor's io_uring rings. Socket reads try a plain `recv` first
    /// and only submit a poll when it would block, so a ring holds at most about one entry per
    /// idle connection and timer per tick; 128 covers hundreds of HAProxy connections per
    /// executor (glommio queues any excess for the next submission).
    pub ring_depth: usize,
    /// A connection's receive queued right after its reply arms its poll on the socket at once
    /// (io_uring's `IORING_RECVSEND_POLL_FIRST`, glommio change 17) when the previous receive
    /// drained the socket, instead of first trying a receive that finds nothing: one socket
    /// receive per request instead of two at one request in flight. Takes effect only on
    /// Linux 5.19 and later ([`receive_poll_first_supported`]); `false` forces the plain
    /// receive everywhere.
    ///
    /// [`receive_poll_first_supported`]: crate::receive_poll_first_supported
    pub receive_poll_first: bool,
}

impl Default for UringOptions {
    fn default() -> Self {
        UringOptions {
            spin: None,
            io_memory: 64 << 10,
            cpus: None,
            ring_depth: 128,
            receive_poll_first: true,
        }
    }
}

/// Bound listeners and chosen CPUs, ready to serve.
///
/// # Accepting: one shared acceptor, least-loaded hand-off
///
/// Executor 0 accepts on every listener and hands each connection to the executor with the
/// fewest live connections (ties in turn) over a glommio shared channel; that executor serves it
/// until it closes. The alternative, one SO_REUSEPORT listener per executor, lets the kernel
/// spread connections by a hash of their 4-tuple, which only evens out over many connections —
/// and HAProxy opens few, long-lived ones. Measured on this machine (2 executors, a client
/// reconnecting 200 times like a reload; each request costing 50 µs of handler time):
///
/// | connections per reload | SO_REUSEPORT: reloads leaving one executor idle | shared accept |
/// |---|---|---|
/// | 2 | 89 / 200 | 0 / 200 |
/// | 4 | 22 / 200 | 0 / 200 |
/// | 8 | 3 / 200 | 0 / 200 |
///
/// With 4 pipelining connections for 1 s after each of 10 reloads, throughput followed the
/// split: SO_REUSEPORT gave 38.5k req/s at 2+2, 24.5k–38.5k at 3+1 and 18.2k at 0+4 (one
/// executor saturated, the other idle); shared accept split 2+2 every time, 37.9k–39k in 8 runs
/// of 10 (the client shared the two CPUs, so single runs are noisy). A burst of 200
/// connections (a reload) got its first answers in the same time either way (median 7.5 ms,
/// max 10.8–11.6 ms): the hand-off costs nothing measurable. Executor 0 pays for accepting, a
/// few microseconds per connection.
pub struct Server {
    state: ServerState,
    config: ServerConfig,
    options: UringOptions,
    cpus: Vec<usize>,
    shared: Arc<Shared>,
}

/// What the executors and the controlling thread share.
pub(crate) struct Shared {
    /// Set once: stop accepting and drain.
    pub(crate) stopping: AtomicBool,
    /// Open connections, per executor.
    pub(crate) connections: Arc<Connections>,
    /// How the accept loops are woken at a stop.
    wake: AcceptWake,
    /// Where open connections go at the stop, if they are handed over. Each executor ends its
    /// connections' hand-over phase with its own [`Stop`] stage.
    pub(crate) at_stop: HandOverAtStop,
    state: Mutex<RunState>,
    signal: Condvar,
}

#[derive(Default)]
struct RunState {
    stop_requested: bool,
    /// An executor whose thread ended before the stop (a panic): the server stops.
    exited_early: Option<usize>,
}

impl Shared {
    fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Ok(mut state) = self.state.lock() {
            state.stop_requested = true;
        }
        self.signal.notify_all();
    }
}

/// Asks a running [`Server`] to stop; cloneable and usable from any thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Stops accepting, lets every connection answer what it has received, sends each an
    /// AGENT-DISCONNECT 0 and closes it. [`Server::run`] returns when all are done or the
    /// shutdown timeout passed.
    pub fn shutdown(&self) {
        self.shared.request_stop();
    }
}

impl Server {
    /// Checks that io_uring can run `config.workers` executors here ([`probe`]), picks their
    /// CPUs and binds every address of `config`.
    pub fn bind(config: ServerConfig, options: UringOptions) -> io::Result<Server> {
        Server::prepare(config, options, |config| {
            listen_all(&config.addresses, &config.unix)
        })
    }

    /// [`Server::bind`] on listeners made elsewhere (passed by a service manager: see
    /// [`runtime_core::inherit`] and [`Listeners::adopted`]) instead of binding
    /// `config.addresses`. They must be listening and blocking.
    pub fn with_listeners(
        config: ServerConfig,
        options: UringOptions,
        listeners: Listeners,
    ) -> io::Result<Server> {
        Server::prepare(config, options, |_| Ok(listeners))
    }

    fn prepare(
        config: ServerConfig,
        options: UringOptions,
        listen: impl FnOnce(&ServerConfig) -> io::Result<Listeners>,
    ) -> io::Result<Server> {
        if config.workers == 0 {
            return Err(io::Error::new(ErrorKind::InvalidInput, "no worker"));
        }
        probe(config.workers)?;
        let cpus = spread_cpus(config.workers, options.cpus.as_deref())?;
        let listeners = listen(&config)?;
        let connections = Connections::new(cpus.len());
        config.metrics.watch(&connections);
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            connections,
            wake: AcceptWake::new(),
            at_stop: HandOverAtStop::new(),
            state: Mutex::new(RunState::default()),
            signal: Condvar::new(),
        });
        Ok(Server {
            state: ServerState::new(listeners),
            config,
            options,
            cpus,
            shared,
        })
    }

    /// Serves these connections too, handed over by the previous agent (see
    /// [`runtime_core::handoff`]): each resumes as an established session, on the executor
    /// with the fewest connections like an accepted one.
    pub fn adopt(&mut self, connections: Vec<Adopted>) {
        self.state.adopt(connections);
    }

    /// At the stop, hands each open connection to the service manager behind `hand_over` at
    /// its next frame boundary instead of ending it with AGENT-DISCONNECT; connections that
    /// reach none within half the shutdown timeout are drained as without it. A second call
    /// replaces the first ([`ServerState::hand_over_at_stop`]).
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

    /// The CPU each worker's executor is pinned to, by worker.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// A handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Starts one executor per worker, each on its CPU with its own handler (made in worker
    /// order, on the executor's thread), and serves until [`ShutdownHandle::shutdown`], then
    /// drains. Returns the number of connections still open when the shutdown timeout passed
    /// (0 after a clean drain).
    pub fn run<F: HandlerFactory>(self, factory: F) -> io::Result<usize> {
        let Server {
            state,
            config,
            options,
            cpus,
            shared,
        } = self;
        let addrs = state.listen_addresses();
        let (listeners, adopted) = state.start(&shared.at_stop);
        // The socket files stay until every connection is done: dropped when this returns.
        let Listeners {
            sockets: listeners,
            files: _files,
        } = listeners;
        let factory = Arc::new(factory);
        let config = Arc::new(config);

        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 1..cpus.len() {
            let (sender, receiver) = shared_channel::new_bounded(HANDOFF_QUEUE);
            senders.push(sender);
            receivers.push(receiver);
        }
        let adopted = adopted
            .into_iter()
            .map(|a| {
                log::debug!("{}: adopted from descriptor {} ({})", a.peer, a.fd, a.name);
                (OwnedFd::from(a.stream), a.peer, a.handshake)
            })
            .collect();
        let mut roles = std::iter::once(Role::Acceptor {
            listeners,
            senders,
            adopted,
        })
        .chain(receivers.into_iter().map(Role::Receiver));

        // Start the executors one after the other, so handlers are made in worker order.
        let mut threads = Vec::with_capacity(cpus.len());
        let mut gos = Vec::with_capacity(cpus.len());
        let mut failure = None;
        for (index, &cpu) in cpus.iter().enumerate() {
            let Some(role) = roles.next() else { break };
            let (go_tx, go_rx) = mpsc::channel();
            // One channel per executor: if its thread dies before saying ready, `recv` fails.
            let (ready_tx, ready_rx) = mpsc::channel();
            let start = Start {
                index,
                cpu,
                options: options.clone(),
                role,
                factory: Arc::clone(&factory),
                config: Arc::clone(&config),
                shared: Arc::clone(&shared),
                ready: ready_tx,
                go: go_rx,
            };
            match thread::Builder::new()
                .name(format!("spoa-uring-{index}"))
                .spawn(move || start.run())
            {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    failure = Some(format!("cannot start a thread: {e}"));
                    break;
                }
            }
            gos.push(go_tx);
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    failure = Some(why);
                    break;
                }
                Err(_) => {
                    failure = Some(format!("worker {index} died while starting"));
                    break;
                }
            }
        }
        if let Some(why) = failure {
            drop(gos);
            join_all(threads);
            return Err(io::Error::other(format!(
                "cannot start the uring runtime: {why}"
            )));
        }
        for go in &gos {
            let _ = go.send(());
        }

        // Serve until asked to stop, or until an executor ends by itself (it panicked).
        let exited_early = {
            let mut state = shared
                .state
                .lock()
                .map_err(|_| io::Error::other("stop lock poisoned"))?;
            while !state.stop_requested && state.exited_early.is_none() {
                state = shared
                    .signal
                    .wait(state)
                    .map_err(|_| io::Error::other("stop lock poisoned"))?;
            }
            state.exited_early.filter(|_| !state.stop_requested)
        };
        shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loops with a connection of our own (kept open until they are done);
        // the closed hand-off channels then tell the other executors to drain.
        let wakes: Vec<_> = addrs
            .iter()
            .filter_map(|addr| shared.wake.wake(addr).ok())
            .collect();
        let (left, panicked) = join_all(threads);
        drop(wakes);
        if let Some(worker) = exited_early {
            return Err(io::Error::other(format!(
                "uring worker {worker} stopped unexpectedly; the agent stopped"
            )));
        }
        if panicked > 0 {
            return Err(io::Error::other(format!(
                "{panicked} uring workers panicked while stopping"
            )));
        }
        if left > 0 {
            log::warn!("shutdown timeout: {left} connections still open, closing them");
        }
        shared.at_stop.finish(left);
        Ok(left)
    }
}

/// Joins executor threads: connections cut at the shutdown timeout, threads that panicked.
fn join_all(threads: Vec<JoinHandle<usize>>) -> (usize, usize) {
    threads
        .into_iter()
        .fold((0, 0), |(left, panicked), t| match t.join() {
            Ok(n) => (left + n, panicked),
            Err(_) => (left, panicked + 1),
        })
}

/// A connection on its way from the acceptor to another executor.
struct Handoff {
    stream: Incoming,
    peer: Peer,
    live: Live,
}

/// Where a connection comes from.
enum Incoming {
    /// Accepted by executor 0.
    Accepted(AcceptedTcpStream),
    /// Handed over by the previous agent, with what its handshake fixed.
    Adopted(OwnedFd, Handshake),
}

impl Incoming {
    /// The stream, on the executor that serves it, and the handshake to resume from.
    fn bind(self) -> (TcpStream, Option<Handshake>) {
        match self {
            Incoming::Accepted(stream) => (stream.bind_to_executor(), None),
            Incoming::Adopted(fd, handshake) => (TcpStream::from(fd), Some(handshake)),
        }
    }
}

enum Role {
    /// Executor 0: accepts on every listener and hands connections out.
    Acceptor {
        listeners: Vec<Listener>,
        senders: Vec<SharedSender<Handoff>>,
        /// Connections handed over by the previous agent, handed out before accepting.
        adopted: Vec<(OwnedFd, Peer, Handshake)>,
    },
    /// The others: serve what executor 0 hands them.
    Receiver(SharedReceiver<Handoff>),
}

/// Everything one executor thread starts from.
struct Start<F> {
    index: usize,
    cpu: usize,
    options: UringOptions,
    role: Role,
    factory: Arc<F>,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
    ready: mpsc::Sender<Result<(), String>>,
    go: mpsc::Receiver<()>,
}

/// Tells the controlling thread when an executor thread ends, however it ends.
struct ExitNotice {
    shared: Arc<Shared>,
    worker: usize,
}

impl Drop for ExitNotice {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            if !state.stop_requested && state.exited_early.is_none() {
                state.exited_early = Some(self.worker);
            }
        }
        self.shared.signal.notify_all();
    }
}

impl<F: HandlerFactory> Start<F> {
    /// The executor thread: build the executor, make the handler, report ready, wait for the
    /// go, serve. Returns the connections cut at the shutdown timeout.
    fn run(self) -> usize {
        let _exit = ExitNotice {
            shared: Arc::clone(&self.shared),
            worker: self.index,
        };
        let mut builder = LocalExecutorBuilder::new(Placement::Fixed(self.cpu))
            .name(&format!("spoa-uring-{}", self.index))
            .io_memory(self.options.io_memory)
            .ring_depth(self.options.ring_depth);
        if let Some(spin) = self.options.spin {
            builder = builder.spin_before_park(spin).adaptive_spin(true);
        }
        let executor = match builder.make() {
            Ok(executor) => executor,
            Err(e) => {
                let _ = self.ready.send(Err(format!(
                    "worker {} on CPU {}: {e}",
                    self.index, self.cpu
                )));
                return 0;
            }
        };
        let worker = Rc::new(Worker {
            index: self.index,
            handler: RefCell::new(self.factory.handler(self.index)),
            config: self.config,
            shared: self.shared,
            stop: Stop::default(),
            receive_poll_first: self.options.receive_poll_first,
        });
        let _ = self.ready.send(Ok(()));
        if self.go.recv().is_err() {
            return 0;
        }
        log::debug!("uring worker {} pinned to CPU {}", self.index, self.cpu);
        let role = self.role;
        executor.run(async move {
            match role {
                Role::Acceptor {
                    listeners,
                    senders,
                    adopted,
                } => acceptor(worker, listeners, senders, adopted).await,
                Role::Receiver(receiver) => receive(worker, receiver).await,
            }
        })
    }
}

/// Executor 0: one accept loop per listener; when they end (stop), the hand-off channels close
/// and this executor drains its own connections.
async fn acceptor<H: Handler + 'static>(
    worker: Rc<Worker<H>>,
    listeners: Vec<Listener>,
    senders: Vec<SharedSender<Handoff>>,
    adopted: Vec<(OwnedFd, Peer, Handshake)>,
) -> usize {
    let mut connected = Vec::with_capacity(senders.len());
    for sender in senders {
        connected.push(sender.connect().await);
    }
    let dispatch = Rc::new(Dispatch {
        worker: Rc::clone(&worker),
        senders: connected,
        next: Cell::new(0),
    });
    for (fd, peer, handshake) in adopted {
        dispatch
            .hand_out(Incoming::Adopted(fd, handshake), peer)
            .await;
    }
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let unix_peer = listener.unix_peer();
            glommio::spawn_local(accept_loop(
                adopt(listener),
                unix_peer,
                Rc::clone(&dispatch),
            ))
        })
        .collect();
    for accept in loops {
        accept.await;
    }
    drop(dispatch);
    drain(&worker).await
}

/// Executors 1..n: serve what executor 0 hands over until it closes the channel.
async fn receive<H: Handler + 'static>(
    worker: Rc<Worker<H>>,
    receiver: SharedReceiver<Handoff>,
) -> usize {
    let receiver = receiver.connect().await;
    while let Some(handoff) = receiver.recv().await {
        let (stream, handshake) = handoff.stream.bind();
        worker.start(stream, handoff.peer, handoff.live, handshake);
    }
    drain(&worker).await
}

/// Stops this executor's connections and waits for them, up to the shutdown timeout. Returns
/// how many are still open; they are dropped (closed) when the executor ends.
async fn drain<H>(worker: &Worker<H>) -> usize {
    worker.stop.trigger();
    let stopped = Instant::now();
    let deadline = stopped + worker.config.shutdown_timeout;
    let connections = &worker.shared.connections;
    if worker.shared.at_stop.get().is_some() {
        // Connections hand themselves over at their next frame boundary; those that reach none
        // in half the shutdown timeout are drained.
        let handing_deadline = handoff::handing_deadline(stopped, worker.config.shutdown_timeout);
        while connections.load(worker.index) > 0 && Instant::now() < handing_deadline {
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
        worker.stop.trigger();
    }
    while connections.load(worker.index) > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    connections.load(worker.index)
}

/// Takes over a listener bound by [`Server::bind`], so its address is known (port 0 resolved)
/// before any executor exists and no connection is lost between binding and serving.
///
/// A Unix listener is driven through glommio's `TcpListener` too, and its connections through
/// `TcpStream`: glommio 0.9's `UnixStream` has no read or write timeouts (the session's hello,
/// frame and write deadlines would be lost), and its `UnixListener` can neither adopt a bound
/// socket nor take a deep backlog. glommio's TCP types are file descriptors under the same
/// family-blind calls (accept, recv, send, poll, shutdown); the TCP-only ones (`peer_addr`,
/// `set_nodelay`) are never made on a Unix connection ([`Peer::Unix`] says which it is).
#[allow(unsafe_code)]
fn adopt(listener: Listener) -> TcpListener {
    let fd = match listener {
        Listener::Tcp(listener) => OwnedFd::from(listener),
        Listener::Unix(listener) => OwnedFd::from(listener),
    };
    // SAFETY: `into_raw_fd` releases a valid, bound and listening stream socket that nothing
    // else owns any more; glommio's listener becomes its only owner and closes it on drop.
    // glommio has no safe constructor from a std listener, and binding anew in the executor
    // would lose the port chosen for port 0 and race other processes for it.
    unsafe { TcpListener::from_raw_fd(fd.into_raw_fd()) }
}

/// Hands accepted connections to executors.
struct Dispatch<H> {
    /// Executor 0's own worker: serves what is handed to 0.
    worker: Rc<Worker<H>>,
    /// To executors 1..n.
    senders: Vec<ConnectedSender<Handoff>>,
    /// Where the search for the least-loaded executor starts (round-robin among equals).
    next: Cell<usize>,
}

impl<H: Handler + 'static> Dispatch<H> {
    async fn hand_out(&self, stream: Incoming, peer: Peer) {
        let connections = &self.worker.shared.connections;
        let target = connections.least_loaded(self.next.get());
        self.next.set(target + 1);
        let live = connections.open(target);
        let Some(sender) = target.checked_sub(1).and_then(|i| self.senders.get(i)) else {
            let (stream, handshake) = stream.bind();
            self.worker.start(stream, peer, live, handshake);
            return;
        };
        if let Err(e) = sender.send(Handoff { stream, peer, live }).await {
            if let Some(handoff) = returned(e) {
                // AcceptedTcpStream has no Drop: bind it so that dropping it closes it.
                drop(handoff.stream.bind());
                log_accept_warning(format_args!(
                    "{}: uring worker {target} is gone; connection closed",
                    handoff.peer
                ));
            }
        }
    }
}

/// The item a failed send gives back.
fn returned<T>(error: GlommioError<T>) -> Option<T> {
    match error {
        GlommioError::Closed(ResourceType::Channel(item))
        | GlommioError::WouldBlock(ResourceType::Channel(item)) => Some(item),
        _ => None,
    }
}

/// Accepts on one listener; `unix_peer` names its clients when it is a Unix socket.
async fn accept_loop<H: Handler + 'static>(
    listener: TcpListener,
    unix_peer: Option<Peer>,
    dispatch: Rc<Dispatch<H>>,
) {
    let shared = Arc::clone(&dispatch.worker.shared);
    loop {
        // No timer races the accept: a pending timer costs every reactor loop of this executor
        // (glommio processes its timer tree and allocates each time). At shutdown `Server::run`
        // wakes this accept with a connection of its own instead.
        let accepted = listener.shared_accept().await;
        let stopping = shared.stopping.load(Ordering::SeqCst);
        let stream = match accepted {
            Ok(stream) => stream,
            Err(_) if stopping => return,
            Err(e) => {
                log_accept_failure(&e.into());
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let peer = match &unix_peer {
            Some(unix) => unix.clone(),
            None => match stream.peer_addr() {
                Ok(peer) => Peer::Ip(peer),
                Err(e) => {
                    log::debug!("accepted a connection already gone: {e}");
                    drop(stream.bind_to_executor());
                    continue;
                }
            },
        };
        // Once stopping, the loop ends at its own wake-up; a connection queued before it is
        // served and drained like the others (see `AcceptWake`).
        if stopping && shared.wake.is_wake(&stream) {
            drop(stream.bind_to_executor());
            return;
        }
        let config = &dispatch.worker.config;
        if let Err(refusal) = config.admit(&peer, shared.connections.count()) {
            log_refusal(&peer, refusal);
            drop(stream.bind_to_executor());
            continue;
        }
        dispatch.hand_out(Incoming::Accepted(stream), peer).await;
    }
}
