//! # runtime-core
//!
//! What every SPOA runtime shares, so that each runtime keeps only how bytes move:
//!
//! - [`Session`]: one connection's buffers around a [`spop_core::Engine`], its deadlines (from
//!   instants the runtime passes in, never read from a clock here), and what every I/O outcome
//!   means (end of input, a timeout, a full output, a stopping agent, a panicking handler);
//! - [`ServerConfig`] and [`HandlerFactory`]: what a runtime is given; admission at accept
//!   ([`ServerConfig::admit`]);
//! - [`Connections`]: how many connections are open, per worker, and their ids;
//! - [`ListenAddress`], [`Peer`]: where an agent listens (TCP or a Unix socket file) and who is
//!   connected, in log lines and admission;
//! - [`Listeners`]: the listening sockets a runtime serves on, from one of two places:
//!   [`listen_all`] binds the listen addresses (a Unix socket's file: stale ones replaced, mode
//!   and owner, removed at the stop), [`inherit`] takes those a service manager passed (systemd
//!   socket activation); and the accept-side log lines;
//! - [`ServerState`]: what a bound server holds until it runs (listeners, adopted connections,
//!   the hand-over at the stop), with the setters and getters every runtime's `Server` passes
//!   through;
//! - [`handoff`]: at a restart, open connections handed to the next agent through the service
//!   manager's descriptor store instead of ended;
//! - [`AcceptWake`]: how a runtime wakes its own accept loops at the stop, leaving connections
//!   queued after the wake-up for the next process;
//! - [`report`](report()) and [`LogLimiter`]: how a connection's end is logged, rate-limited;
//! - [`Metrics`]: what is counted for operators, per connection without a lock (see [`metrics`]).
//!
//! ```text
//!   spoa (binary) ──► runtime-std ──┐
//!                 └─► runtime-uring ┴─► runtime-core ──► spop-core
//! ```
//!
//! A new runtime depends on this crate, accepts connections (calling [`ServerConfig::admit`]),
//! opens a session per connection with [`session::open`], and runs the loop shown in
//! [`session`].

mod address;
mod config;
mod connections;
mod cpus;
#[cfg(unix)]
pub mod handoff;
pub mod inherit;
mod limiter;
mod listen;
pub mod log_context;
pub mod metrics;
mod report;
mod server_state;
pub mod session;
#[cfg(unix)]
mod socket_file;
mod stream;
mod wake;

pub use address::{ListenAddress, Peer, UNIX_PATH_MAX};
pub use config::{HandlerFactory, Refusal, ServerConfig, UnixPermissions};
pub use connections::{Connections, Live};
pub use cpus::{format_cpu_list, parse_cpu_list, CpuList};
pub use limiter::LogLimiter;
pub use listen::{
    listen, listen_all, log_accept_failure, log_accept_warning, log_refusal, wake_address,
    Listener, Listeners, ACCEPT_BACKOFF, LISTEN_BACKLOG,
};
pub use metrics::Metrics;
pub use report::{report, End};
pub use server_state::ServerState;
pub use session::{Next, Serve, Session, SocketTimeout, Timeouts, FRAGMENT_CAPACITY};
#[cfg(unix)]
pub use socket_file::{describe as describe_socket_file, listen_unix, SocketFile};
pub use stream::Stream;
pub use wake::{AcceptWake, Wake};
