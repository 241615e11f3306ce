//! # runtime-std
//!
//! The portable SPOA runtime: `std::net` and threads only. Every listener has an accept thread;
//! every connection runs on its own thread with its own [`spop_core::Engine`], its own handler
//! and its own buffers, so no lock is taken per frame. Blocking sockets give backpressure for
//! free: a connection whose peer does not read its ACKs blocks in its write and stops reading.
//!
//! The pieces that are not about threads ([`Session`], [`ServerConfig`], [`HandlerFactory`],
//! [`LogLimiter`], the connection-end log lines of [`report`]) are shared with `runtime-uring`, so both runtimes drive the engine the same way.

mod config;
mod limiter;
mod report;
mod server;
mod session;

pub use config::{HandlerFactory, ServerConfig};
pub use limiter::LogLimiter;
pub use report::{report, End};
pub use server::{listen, wake_address, Server, ShutdownHandle, FRAGMENT_CAPACITY, LISTEN_BACKLOG};
pub use session::{Session, Step};
