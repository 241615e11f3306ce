//! # spop-core
//!
//! HAProxy's Stream Processing Offload Protocol, SPOP 2.0 (`doc/SPOE.txt`), for agents: the whole
//! wire format and a sans-io connection engine, in `#![no_std]` without `alloc` and without
//! `unsafe`. Both of this project's runtimes, and any appliance's own event loop, get the
//! protocol's behaviour from here.
//!
//! - Wire layer: [`varint`], [`TypedData`], [`KvList`], [`Frame`] and its header, every frame
//!   type ([`HaproxyHello`], [`AgentHello`], [`Disconnect`], [`Notify`], [`Ack`]). Decoding
//!   borrows from the input and reports [`Parsed::Partial`] when a frame is incomplete; encoding
//!   writes into a caller's `&mut [u8]` and fails cleanly when it does not fit.
//! - [`AckWriter`]: the application's actions (set-var, unset-var), bounded by the negotiated
//!   max-frame-size.
//! - [`Engine`]: bytes in, [`Handler`] called per NOTIFY, bytes out, and [`Flow::Close`] when the
//!   connection must end; every fault maps to its AGENT-DISCONNECT [`Status`].
//!
//! `Engine<0>` (no fragment reassembly, the default) is 96 bytes on x86_64; an engine with
//! fragmentation adds its `FRAG`-byte reassembly buffer.
//!
//! ## Example: an agent loop on any byte transport
//!
//! ```
//! use spop_core::{AckWriter, Config, Engine, Flow, Handler, Message, Scope, TypedData};
//!
//! struct Reputation;
//!
//! impl Handler for Reputation {
//!     fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>) {
//!         if message.name == b"check-client-ip" {
//!             // A full ACK cannot happen with one small action; the error is for larger ones.
//!             let _ = ack.set_var(Scope::Session, b"ip_score", TypedData::Int32(42));
//!         }
//!     }
//! }
//!
//! # fn hex(s: &str) -> [u8; 256] {
//! #     let mut out = [0u8; 256];
//! #     for (i, pair) in s.as_bytes().chunks(2).enumerate() {
//! #         out[i] = u8::from_str_radix(core::str::from_utf8(pair).unwrap(), 16).unwrap();
//! #     }
//! #     out
//! # }
//! # let hello = hex(include_str!("../tests/vectors/haproxy-hello.hex").trim());
//! # let notify = hex(include_str!("../tests/vectors/notify-ipv4.hex").trim());
//! let mut engine: Engine = Engine::new(Config::default()).unwrap();
//! let mut out = [0u8; 1024];
//! // The transport delivered HAPROXY-HELLO (133 bytes): the engine answers AGENT-HELLO.
//! let p = engine.feed(&hello[..133], &mut out, &mut Reputation);
//! assert_eq!((p.consumed, p.flow), (133, Flow::NeedInput));
//! // Then a NOTIFY for 127.0.0.1: one ACK setting sess.<prefix>.ip_score.
//! let p = engine.feed(&notify[..34], &mut out, &mut Reputation);
//! assert_eq!(&out[4..5], &[103]); // ACK
//! assert_eq!(p.written, 25);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod logging;

pub mod ack;
pub mod action;
pub mod capabilities;
pub mod codec;
pub mod data;
pub mod engine;
pub mod error;
pub mod frame;
pub mod hello;
pub mod kv;
pub mod notify;
pub mod status;
pub mod varint;

pub use ack::{Ack, AckWriter};
pub use action::{Action, Actions, Scope};
pub use capabilities::Capabilities;
pub use codec::{Reader, Writer};
pub use data::{Bytes, DataType, TypedData};
pub use engine::{
    Close, Config, ConfigError, Engine, Flow, Handler, Progress, Stats, DEFAULT_MAX_FRAME_SIZE,
};
pub use error::{DecodeError, EncodeError, Error};
pub use frame::{
    Flags, Frame, FrameError, FrameHeader, FrameId, FrameType, FrameWriter, Parsed, StreamId,
};
pub use hello::{AgentHello, Disconnect, HaproxyHello};
pub use kv::KvList;
pub use notify::{Arg, Args, Message, Messages, Notify};
pub use status::Status;
