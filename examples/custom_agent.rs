//! Your own SPOA on this workspace's runtimes: `cargo run --example custom_agent`.
//!
//! What you write is a [`Handler`] (what to answer to each message), a factory closure that makes
//! one per worker, and a [`ServerConfig`]. The runtime owns the rest: sockets, the SPOP engine
//! (handshake, pipelining, protocol faults), timeouts, limits and the graceful drain. The
//! HAProxy side this agent expects, in its SPOE configuration:
//!
//! ```text
//! spoe-message check-client-ip
//!     args ip=src
//!     event on-client-session
//! spoe-message check-request
//!     args method=method path=path
//!     event on-frontend-http-request
//! ```
//!
//! `tests/custom_agent.rs` runs this file's agent on real sockets.

use std::io;
use std::net::{IpAddr, SocketAddr};

use runtime_core::ServerConfig;
use signal_hook::consts::{SIGINT, SIGTERM};
use spop_core::{AckWriter, Bytes, EncodeError, Handler, Message, Scope, TypedData};

/// Answers each message by its name. A runtime gives every worker (uring) or connection (std)
/// its own handler, so state kept here is never shared between threads and needs no lock.
pub struct Policy {
    /// Which worker this handler serves, for its log lines.
    pub worker: usize,
}

impl Handler for Policy {
    fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>) {
        let answered = match message.name {
            b"check-client-ip" => check_client_ip(message, ack),
            b"check-request" => check_request(message, ack),
            // Not ours: no action. HAProxy still gets its (empty) ACK and goes on.
            _ => Ok(()),
        };
        // Only an action beyond `ack_size_hint` fails; the ones before it are still sent.
        if let Err(e) = answered {
            log::warn!("worker {}: {}: {e}", self.worker, Bytes(message.name));
        }
    }

    /// The largest ACK written (header and two actions, with headroom): the engine then keeps
    /// this much output room per NOTIFY, not a whole max-frame-size, so many ACKs share a write.
    fn ack_size_hint(&self) -> Option<usize> {
        Some(128)
    }
}

/// `check-client-ip ip=src` → `sess.<var-prefix>.ip_score`, 0 (trusted) to 100 (hostile). A
/// fixed rule here; a real agent would look the address up.
fn check_client_ip(message: &Message<'_>, ack: &mut AckWriter<'_>) -> Result<(), EncodeError> {
    // Arguments are read by the name the SPOE configuration gives them, with their type.
    let ip = match message.arg(b"ip") {
        Some(TypedData::Ipv4(ip)) => IpAddr::V4(ip),
        Some(TypedData::Ipv6(ip)) => IpAddr::V6(ip),
        // Absent or not an address (the fetch failed): no score rather than a made-up one.
        _ => return Ok(()),
    };
    let score = match ip.to_canonical() {
        ip if ip.is_loopback() => 0,
        IpAddr::V4(v4) if v4.is_private() => 10,
        // 192.0.2.0/24 (TEST-NET-1) stands in for a block list.
        IpAddr::V4(v4) if matches!(v4.octets(), [192, 0, 2, _]) => 100,
        _ => 50,
    };
    ack.set_var(Scope::Session, b"ip_score", TypedData::Int32(score))
}

/// `check-request method=method path=path` → `txn.<var-prefix>.cacheable` (a read or not), and
/// `txn.<var-prefix>.route` = "admin" under `/admin/`; elsewhere the route is unset, so a value
/// an earlier rule of the same transaction set does not linger.
fn check_request(message: &Message<'_>, ack: &mut AckWriter<'_>) -> Result<(), EncodeError> {
    let (Some(TypedData::String(method)), Some(TypedData::String(path))) =
        (message.arg(b"method"), message.arg(b"path"))
    else {
        return Ok(());
    };
    let cacheable = matches!(method, b"GET" | b"HEAD");
    ack.set_var(Scope::Transaction, b"cacheable", TypedData::Bool(cacheable))?;
    if path.starts_with(b"/admin/") {
        ack.set_var(Scope::Transaction, b"route", TypedData::String(b"admin"))
    } else {
        ack.unset_var(Scope::Transaction, b"route")
    }
}

/// A server bound on one of the runtimes, not serving yet (they share no trait: boxed here).
pub struct Bound {
    /// Which runtime: "uring" or "std".
    pub runtime: &'static str,
    /// Where it listens (a port 0 in the config resolved).
    pub addrs: Vec<SocketAddr>,
    /// Starts a graceful stop from any thread: NOTIFYs received are answered, every connection
    /// gets AGENT-DISCONNECT 0, then `serve` returns.
    pub stop: Box<dyn Fn() + Send>,
    /// Serves until stopped; returns how many connections the shutdown timeout cut.
    pub serve: Box<dyn FnOnce() -> io::Result<usize> + Send>,
}

/// Binds on io_uring where [`runtime_uring::probe`] says it can run here (kernel, memlock,
/// CPUs), else on the portable std runtime: the same handler runs on either.
pub fn bind(config: ServerConfig) -> io::Result<Bound> {
    // The factory: called once per worker (uring) or per connection (std).
    let factory = |worker: usize| Policy { worker };
    #[cfg(target_os = "linux")]
    if runtime_uring::probe(config.workers).is_ok() {
        let server = runtime_uring::Server::bind(config, runtime_uring::UringOptions::default())?;
        let handle = server.shutdown_handle();
        return Ok(Bound {
            runtime: "uring",
            addrs: server.local_addrs(),
            stop: Box::new(move || handle.shutdown()),
            serve: Box::new(move || server.run(factory)),
        });
    }
    let server = runtime_std::Server::bind(config)?;
    let handle = server.shutdown_handle();
    Ok(Bound {
        runtime: "std",
        addrs: server.local_addrs(),
        stop: Box::new(move || handle.shutdown()),
        serve: Box::new(move || server.run(factory)),
    })
}

fn main() -> io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = ServerConfig {
        addresses: vec![SocketAddr::from(([127, 0, 0, 1], 12345)).into()],
        workers: 2,
        // Timeouts, limits and the engine's settings: the defaults suit HAProxy's.
        ..ServerConfig::default()
    };
    let agent = bind(config)?;
    let (addrs, runtime) = (&agent.addrs, agent.runtime);
    log::info!("listening on {addrs:?} ({runtime} runtime); Ctrl-C stops");
    // Ctrl-C or SIGTERM starts the graceful stop; the main thread waits in `serve`.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let stop = agent.stop;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            stop();
        }
    });
    let cut = (agent.serve)()?;
    log::info!("stopped ({cut} connections cut at the shutdown timeout)");
    Ok(())
}
