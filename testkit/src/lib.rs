//! # spop-testkit
//!
//! HAProxy's side of SPOP, written once for every test crate and tool of this workspace, so that
//! "what HAProxy sends" and "what a correct `ip_score` ACK is" have one definition:
//!
//! - [`frames`]: the frames HAProxy sends (HELLO as 2.6 and 3.x send it, health checks, NOTIFY,
//!   HAPROXY-DISCONNECT), built with `spop-core`'s encoders and appended to a caller's buffer,
//!   and the check of a `check-client-ip` ACK. No I/O and no panics: `spoa-loadgen` uses it on
//!   its hot path.
//! - [`peer`]: a blocking peer over a TCP or Unix socket for tests: connect and handshake,
//!   frames as `Vec`s, whole-frame reads, ACK and AGENT-DISCONNECT checks, pipelined sends. Its
//!   functions panic with what was wrong, which is how a test fails.
//! - [`alloc`]: the counting global allocator and the measurement the runtimes' "no allocation
//!   per NOTIFY" tests share.
//! - [`server`]: where an in-process server under test listens.
//!
//! Frames are built with the encoders of `spop-core` (the crate under test encodes what HAProxy
//! sends as well as what the agent answers); only [`frames::push_raw_frame`] and the tests'
//! deliberately malformed bytes bypass them.

pub mod alloc;
pub mod frames;
pub mod peer;
pub mod server;
