//! # runtime-std
//!
//! The portable SPOA runtime: `std::net` and threads only. Every listener has an accept thread;
//! every connection runs on its own thread with its own [`runtime_core::Session`], its own
//! handler and its own buffers, so no lock is taken per frame. Blocking sockets give
//! backpressure for free: a connection whose peer does not read its ACKs blocks in its write and
//! stops reading. What a connection does with its bytes is decided in `runtime-core`, shared
//! with every other runtime; this crate only moves them.
//!
//! ```no_run
//! use runtime_core::ServerConfig;
//! use runtime_std::Server;
//! # struct H;
//! # impl spop_core::Handler for H {
//! #     fn on_message(&mut self, _: &spop_core::Message<'_>, _: &mut spop_core::AckWriter<'_>) {}
//! # }
//! let server = Server::bind(ServerConfig::default()).unwrap();
//! let stop = server.shutdown_handle(); // stop.shutdown() from another thread drains and returns
//! let cut = server.run(|_worker| H).unwrap();
//! ```

mod server;

pub use server::{Server, ShutdownHandle};
