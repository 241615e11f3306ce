//! # spoa-loadgen
//!
//! Plays HAProxy against a SPOA to measure it: HAPROXY-HELLO (max-frame-size 16380,
//! pipelining), then N connections x D pipelined NOTIFYs in a closed loop (each connection keeps
//! D NOTIFYs in flight and sends the next as each ACK arrives), stream-ids odd and increasing per
//! connection and frame-id 1 as HAProxy 3.x sends them, message `check-client-ip` with one
//! unnamed IPV4 argument. Every ACK is checked (ids of a NOTIFY in flight, FIN, exactly one
//! SET-VAR sess `ip_score` of an integer 0..=100, nothing after it); anything else is an error.
//!
//! - [`client`]: one run of one shape, with latency (hdrhistogram) and CPU accounting;
//! - [`responder`]: the canned responder, the harness's ceiling;
//! - [`agent`]: the `spoa` binary as a child process, per runtime;
//! - [`matrix`]: runtimes x shapes, the markdown table and the plots ([`report`]);
//! - [`placement`]: agent and load generator on disjoint CPU sets (the default);
//! - [`counters`]: context switches and system calls per ACK;
//! - [`cli`]: the `spoa-loadgen` command line, shared with `cargo bench --bench latency`.

pub mod agent;
pub mod cli;
pub mod client;
pub mod counters;
pub mod cpu;
pub mod matrix;
pub mod placement;
pub mod proto;
pub mod report;
pub mod responder;
pub mod stream;

pub use client::{run, LoadConfig, LoadResult, Shape};
