//! What every runtime is given: where to listen, the engine's settings, the limits and
//! deadlines, and the application's handlers.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use spop_core::Handler;

use crate::address::{ListenAddress, Peer};
use crate::metrics::{Metrics, RefusedBy};

/// Makes the application's handlers: one per worker (uring) or per connection (std), so handler
/// state (a random generator, counters) is never shared between threads and needs no lock.
///
/// Any `Fn(usize) -> H` closure is a factory.
pub trait HandlerFactory: Send + Sync + 'static {
    /// The handler type.
    type Handler: Handler + 'static;

    /// A handler for worker `worker` (0-based, below [`ServerConfig::workers`]; always 0 on a
    /// runtime without workers, which calls this once per connection).
    fn handler(&self, worker: usize) -> Self::Handler;
}

impl<H, F> HandlerFactory for F
where
    H: Handler + 'static,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    type Handler = H;

    fn handler(&self, worker: usize) -> H {
        self(worker)
    }
}

/// How an agent listens and treats its connections.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen: TCP addresses and Unix socket files.
    pub addresses: Vec<ListenAddress>,
    /// Mode and owner of the Unix socket files: their access control, since `allow_from`
    /// cannot apply to clients without an address.
    pub unix: UnixPermissions,
    /// Worker count, for runtimes that have workers (uring: one pinned executor each). The std
    /// runtime has none: each connection is its own thread, bounded by `max_connections`.
    pub workers: usize,
    /// The protocol engine's settings (max-frame-size cap, capabilities).
    pub engine: spop_core::Config,
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// A new connection must complete its HAPROXY-HELLO within this.
    pub hello_timeout: Option<Duration>,
    /// A frame that has started must complete within this.
    pub frame_timeout: Option<Duration>,
    /// A write blocked on a peer that does not read fails after this.
    pub write_timeout: Option<Duration>,
    /// How long a graceful shutdown waits for connections to finish.
    pub shutdown_timeout: Duration,
    /// Networks allowed to connect over TCP; empty: everyone who can reach the listeners. Unix
    /// socket clients have no address: the socket file's [`UnixPermissions`] decide.
    pub allow_from: Vec<ipnet::IpNet>,
    /// What is counted for operators; off by default ([`Metrics::enabled`] to count).
    pub metrics: Metrics,
}

impl ServerConfig {
    /// Whether a connection from `peer` may be served while `open` others are: the admission
    /// both runtimes apply at accept (a refusal is counted in the metrics). An IPv4 peer on an
    /// IPv6 socket (`::ffff:a.b.c.d`) is matched as IPv4; a Unix socket client, which has no
    /// address, is not subject to `allow_from` (its socket file's permissions let it in).
    pub fn admit(&self, peer: &Peer, open: usize) -> Result<(), Refusal> {
        if let Some(ip) = peer.ip() {
            if !self.allowed(ip) {
                self.metrics.refused(RefusedBy::AllowFrom);
                return Err(Refusal::NotAllowed);
            }
        }
        if open >= self.max_connections {
            self.metrics.refused(RefusedBy::Limit);
            return Err(Refusal::AtLimit {
                limit: self.max_connections,
            });
        }
        Ok(())
    }
}

/// The access control of a Unix socket: who may connect is who may write to its file. `None`
/// leaves what `bind` gives (mode `0777` less the umask; the agent's user and group).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnixPermissions {
    /// Permission bits of the socket file (HAProxy's user needs write permission).
    pub mode: Option<u32>,
    /// Owner (uid).
    pub owner: Option<u32>,
    /// Group (gid).
    pub group: Option<u32>,
}

impl ServerConfig {
    fn allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow_from.is_empty() || self.allow_from.iter().any(|net| net.contains(&ip))
    }
}

/// Why a connection is closed at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The peer is in none of the `allow_from` networks.
    NotAllowed,
    /// `max_connections` are already open.
    AtLimit {
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotAllowed => f.write_str("not in allow-from"),
            Refusal::AtLimit { limit } => {
                write!(f, "{limit} connections already open (max-connections)")
            }
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addresses: vec![
                SocketAddr::from(([127, 0, 0, 1], 12345)).into(),
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 12345)).into(),
            ],
            unix: UnixPermissions::default(),
            workers: 5,
            engine: spop_core::Config::default(),
            max_connections: 10_000,
            hello_timeout: Some(Duration::from_secs(5)),
            frame_timeout: Some(Duration::from_secs(5)),
            write_timeout: Some(Duration::from_secs(10)),
            shutdown_timeout: Duration::from_secs(5),
            allow_from: Vec::new(),
            metrics: Metrics::default(),
        }
    }
}
