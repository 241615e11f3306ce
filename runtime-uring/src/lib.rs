//! # runtime-uring
//!
//! The Linux io_uring SPOA runtime, on glommio: one `LocalExecutor` per worker, each pinned to
//! its own CPU, with its own handler shared by that executor's connections (no lock, no atomic
//! per frame). Executor 0 accepts and hands every connection to the least-loaded executor (see
//! [`Server`] for why not SO_REUSEPORT); each connection is then a local task that runs the
//! same [`runtime_core::Session`] loop as every runtime: read into the session's buffer, every
//! complete frame through the `spop-core` engine, all the replies of one read in one write.
//! This crate's per-connection code allocates nothing per frame (`tests/alloc.rs`). The
//! workspace builds glommio 0.9.0 with the patches in `third-party/glommio` (its `PATCHES.md`):
//! socket receives and sends are io_uring operations submitted with the executor's sleep (one
//! `io_uring_enter` per wake-up), and the reactor allocates nothing per read or write.
//!
//! Unix socket listeners (`ListenAddress::Unix`) are served like TCP ones, through glommio's
//! TCP types: its `UnixStream` has no read or write timeouts (see `server::adopt`).
//!
//! ```no_run
//! use runtime_uring::{probe, Server, UringOptions};
//! # struct H;
//! # impl spop_core::Handler for H {
//! #     fn on_message(&mut self, _: &spop_core::Message<'_>, _: &mut spop_core::AckWriter<'_>) {}
//! # }
//! let config = runtime_core::ServerConfig { workers: 2, ..Default::default() };
//! if let Err(why) = probe(config.workers) {
//!     eprintln!("uring unavailable: {why}");
//!     return;
//! }
//! let server = Server::bind(config, UringOptions::default()).unwrap();
//! let stop = server.shutdown_handle(); // stop.shutdown() from another thread drains and returns
//! let cut = server.run(|_worker| H).unwrap(); // a handler per worker
//! ```
//!
//! Requirements, checked by [`probe`] with one line saying what is wrong and how to fix it:
//! Linux 5.8 or later, io_uring allowed (`kernel.io_uring_disabled`, seccomp), RLIMIT_MEMLOCK
//! of at least 512 KiB, and at least as many usable CPUs as workers.
//!
//! On other systems this crate is empty.
#![cfg(target_os = "linux")]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc-probe")]
#[doc(hidden)]
pub mod alloc_probe;
#[cfg(not(feature = "alloc-probe"))]
mod alloc_probe;
mod conn;
mod probe;
mod server;
mod stop;

pub use probe::{probe, spread_cpus, usable_cpus, Unavailable, MIN_MEMLOCK};
pub use server::{Server, ShutdownHandle, UringOptions};

/// Whether this kernel lets a receive arm its poll before trying to receive
/// (`IORING_RECVSEND_POLL_FIRST`, Linux 5.19; read once per process), which
/// [`UringOptions::receive_poll_first`] uses.
pub fn receive_poll_first_supported() -> bool {
    glommio::net::receive_poll_first_supported()
}
