#![doc = include_str!("../README.md")]
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
mod tokens;

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
    Close, Config, ConfigError, Engine, Flow, Handler, Handshake, Progress, ResumeError, Stats,
    DEFAULT_MAX_FRAME_SIZE,
};
pub use error::{DecodeError, EncodeError, Error};
pub use frame::{
    Flags, Frame, FrameError, FrameHeader, FrameId, FrameType, FrameWriter, Parsed, StreamId,
    MAX_FRAME_SIZE_LIMIT,
};
pub use hello::{AgentHello, Disconnect, HaproxyHello};
pub use kv::KvList;
pub use notify::{Arg, Args, Message, Messages, Notify, NotifyWriter};
pub use status::Status;
