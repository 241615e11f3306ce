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
//! - [`listen`](listen()), [`wake_address`]: listening sockets and the accept-side log lines;
//!   [`inherit`]: listening sockets passed by a service manager (systemd socket activation);
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

mod config;
mod connections;
mod cpus;
pub mod inherit;
mod limiter;
mod listen;
pub mod metrics;
mod report;
pub mod session;
mod wake;

pub use config::{HandlerFactory, Refusal, ServerConfig};
pub use connections::{Connections, Live};
pub use cpus::{format_cpu_list, parse_cpu_list, CpuList};
pub use limiter::LogLimiter;
pub use listen::{
    listen, listen_all, log_accept_failure, log_accept_warning, log_refusal, wake_address,
    ACCEPT_BACKOFF, LISTEN_BACKLOG,
};
pub use metrics::Metrics;
pub use report::{report, End};
pub use session::{Next, Serve, Session, SocketTimeout, Timeouts, FRAGMENT_CAPACITY};
pub use wake::AcceptWake;
