//! The closed-loop client: N connections, each keeping D NOTIFYs in flight, every ACK checked and
//! timed from the write of its NOTIFY to the read that brought it.
//!
//! Connections are spread over a few event-loop threads (mio, edge-triggered). A thread reads as
//! much as the socket holds (64 KiB at a time), decodes every complete frame, and sends the NOTIFYs
//! that replace the ACKs of that read in one write, like HAProxy's SPOP mux batches its output.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};
use runtime_core::ListenAddress;
use spop_core::Parsed;

use crate::counters;
use crate::cpu;
use crate::proto::{self, check_ack, AckError, NotifyEncoder};
use crate::stream::{into_nonblocking, Blocking, Stream};

/// How many error messages a run keeps (the count covers all of them).
pub const KEPT_ERRORS: usize = 5;

const READ_CHUNK: usize = 64 * 1024;

/// Connections x NOTIFYs in flight per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// TCP connections.
    pub connections: usize,
    /// NOTIFYs in flight on each.
    pub depth: usize,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.connections, self.depth)
    }
}

impl FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (c, d) = s
            .trim()
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("shape '{s}' is not CONNECTIONSxDEPTH, e.g. 4x16"))?;
        let parse = |v: &str, what: &str| -> Result<usize, String> {
            match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(format!("shape '{s}': {what} must be a positive integer")),
            }
        };
        let shape = Shape {
            connections: parse(c, "connections")?,
            depth: parse(d, "depth")?,
        };
        if shape.connections > 10_000 {
            return Err(format!("shape '{s}': at most 10000 connections"));
        }
        if shape.depth > 4096 {
            return Err(format!("shape '{s}': at most 4096 NOTIFYs in flight"));
        }
        Ok(shape)
    }
}

/// One load run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The agent (or canned responder): TCP or a Unix socket.
    pub addr: ListenAddress,
    /// Connections and depth.
    pub shape: Shape,
    /// Load before the measured window (not counted); none with [`LoadConfig::notifies`].
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// After the window: how long outstanding NOTIFYs may wait for their ACK before they count
    /// as errors.
    pub drain: Duration,
    /// Event-loop threads (at most one per connection).
    pub threads: usize,
    /// A process whose CPU time is read over the window (the agent).
    pub agent_pid: Option<u32>,
    /// Send exactly this many NOTIFYs in all (spread over the threads by their connections),
    /// then wait for their ACKs and stop, instead of loading until the window ends: for counts
    /// per ACK (syscalls, allocations) that must not depend on timing. The window then opens at
    /// the first send (no warm-up: every NOTIFY of the budget is measured) and is cut short
    /// when the last ACK arrives.
    pub notifies: Option<u64>,
}

impl LoadConfig {
    /// A run of `shape` against `addr` with the default timings (1 s warm-up, 3 s window).
    pub fn new(addr: impl Into<ListenAddress>, shape: Shape) -> Self {
        LoadConfig {
            addr: addr.into(),
            shape,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(3),
            drain: Duration::from_secs(2),
            threads: 1,
            agent_pid: None,
            notifies: None,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// The shape run.
    pub shape: Shape,
    /// ACKs read inside the measured window.
    pub acks: u64,
    /// The window's real length.
    pub window: Duration,
    /// NOTIFY write -> ACK read, in nanoseconds, for the ACKs of the window.
    pub latency_ns: Histogram<u64>,
    /// Everything that went wrong, over the whole run (warm-up and drain included).
    pub errors: u64,
    /// The first [`KEPT_ERRORS`] of them.
    pub first_errors: Vec<String>,
    /// ACKs read over the whole run, checked like the others.
    pub total_acks: u64,
    /// The agent's user+system CPU time over the window, when a pid was given and /proc readable.
    pub agent_cpu: Option<Duration>,
    /// This process's CPU time over the window (all its threads).
    pub loadgen_cpu: Option<Duration>,
    /// The agent's context switches (voluntary and not, all threads) over the window.
    pub agent_switches: Option<u64>,
    /// The agent's system calls per ACK, from a separate counting pass (see
    /// [`crate::counters`]), when one ran.
    pub agent_syscalls_per_ack: Option<f64>,
}

impl LoadResult {
    /// ACKs per second over the window.
    pub fn rate(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.acks as f64 / secs
        } else {
            0.0
        }
    }

    /// Latency at quantile `q` (0..=1), in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.latency_ns.value_at_quantile(q) as f64 / 1000.0
    }

    /// The largest latency, in microseconds.
    pub fn max_us(&self) -> f64 {
        self.latency_ns.max() as f64 / 1000.0
    }

    /// CPU microseconds per ACK of the window.
    pub fn per_ack_us(&self, cpu: Option<Duration>) -> Option<f64> {
        let cpu = cpu?;
        (self.acks > 0).then(|| cpu.as_secs_f64() * 1e6 / self.acks as f64)
    }
}

/// A fresh latency histogram: 1 ns to 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that the crate accepts; a failure here is a programming error.
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Opens a connection and does the handshake: HAPROXY-HELLO out, AGENT-HELLO checked.
pub fn handshake(
    addr: &ListenAddress,
    need_pipelining: bool,
) -> Result<(Blocking, Vec<u8>), String> {
    let mut s = Blocking::connect(addr, Duration::from_secs(5))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let hello = proto::haproxy_hello().map_err(|e| format!("encode HAPROXY-HELLO: {e}"))?;
    s.write_all(&hello)
        .map_err(|e| format!("write HAPROXY-HELLO to {addr}: {e}"))?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut filled = 0;
    loop {
        match proto::next_frame(&buf[..filled])? {
            Parsed::Complete(frame, used) => {
                let negotiated = proto::check_agent_hello(&frame)?;
                if need_pipelining && !negotiated.pipelining {
                    return Err(format!(
                        "the agent at {addr} did not announce pipelining: depth > 1 impossible"
                    ));
                }
                buf.copy_within(used..filled, 0);
                buf.truncate(filled - used);
                return Ok((s, buf));
            }
            Parsed::Partial => {}
        }
        let n = s
            .read(&mut buf[filled..])
            .map_err(|e| format!("read AGENT-HELLO from {addr}: {e}"))?;
        if n == 0 {
            return Err(format!("{addr} closed the connection before AGENT-HELLO"));
        }
        filled += n;
    }
}

/// Runs one shape: connects and handshakes every connection, loads them for warm-up + window,
/// then waits for the ACKs still in flight.
pub fn run(config: &LoadConfig) -> Result<LoadResult, String> {
    let shape = config.shape;
    let mut conns = Vec::with_capacity(shape.connections);
    for i in 0..shape.connections {
        let (stream, leftover) = handshake(&config.addr, shape.depth > 1)?;
        let stream = into_nonblocking(stream).map_err(|e| format!("non-blocking socket: {e}"))?;
        conns.push(Conn::new(
            stream,
            leftover,
            // Distinct addresses per connection: 10.<i>.x.y.
            0x0A00_0000 | ((i as u32 & 0xFF) << 16),
        ));
    }

    let threads = config.threads.clamp(1, shape.connections);
    let mut groups: Vec<Vec<Conn>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, c) in conns.into_iter().enumerate() {
        groups[i % threads].push(c);
    }

    // A NOTIFY budget is the whole run: measured from the first send, for a warm-up would spend
    // it before the window opens and report 0 ACKs/s.
    let warmup = if config.notifies.is_some() {
        Duration::ZERO
    } else {
        config.warmup
    };
    // Every thread starts at the same instant; the phases are fixed from there.
    let start = Instant::now() + Duration::from_millis(5);
    let plan = Plan {
        start,
        measure_from: start + warmup,
        measure_to: start + warmup + config.duration,
        drain_until: start + warmup + config.duration + config.drain,
    };
    let mut handles = Vec::with_capacity(threads);
    let mut budget_left = config.notifies;
    let mut conns_left = shape.connections as u64;
    for (t, group) in groups.into_iter().enumerate() {
        let depth = shape.depth;
        // This thread's share of --notifies, by its connections.
        let budget = budget_left.map(|left| {
            let share = left * group.len() as u64 / conns_left.max(1);
            conns_left -= group.len() as u64;
            budget_left = Some(left - share);
            share
        });
        let h = std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || {
                let worker = Worker::new(group, depth, plan, budget)?;
                sleep_until(plan.start);
                worker.run()
            })
            .map_err(|e| format!("spawn a load thread: {e}"))?;
        handles.push(h);
    }

    sleep_until(plan.measure_from);
    let agent_before = config.agent_pid.and_then(cpu::process_cpu);
    let switches_before = config.agent_pid.and_then(counters::context_switches);
    let self_before = cpu::self_cpu();
    let window_start = Instant::now();
    // With a NOTIFY budget the threads end when their last ACK is in: join them first.
    let mut parts = Vec::with_capacity(handles.len());
    if config.notifies.is_some() {
        for h in handles.drain(..) {
            parts.push(
                h.join()
                    .map_err(|_| "a load thread panicked".to_string())??,
            );
        }
    } else {
        sleep_until(plan.measure_to);
    }
    let agent_after = config.agent_pid.and_then(cpu::process_cpu);
    let switches_after = config.agent_pid.and_then(counters::context_switches);
    let self_after = cpu::self_cpu();
    let window = window_start.elapsed();

    let mut result = LoadResult {
        shape,
        acks: 0,
        window,
        latency_ns: new_histogram(),
        errors: 0,
        first_errors: Vec::new(),
        total_acks: 0,
        agent_cpu: agent_before
            .zip(agent_after)
            .map(|(a, b)| b.saturating_sub(a)),
        loadgen_cpu: self_before
            .zip(self_after)
            .map(|(a, b)| b.saturating_sub(a)),
        agent_switches: switches_before
            .zip(switches_after)
            .map(|(a, b)| b.saturating_sub(a)),
        agent_syscalls_per_ack: None,
    };
    for h in handles {
        parts.push(
            h.join()
                .map_err(|_| "a load thread panicked".to_string())??,
        );
    }
    // (With a budget, each part's connections close here, after the agent's counts were read.)
    for part in parts {
        result.acks += part.acks;
        result.total_acks += part.total_acks;
        result.errors += part.errors;
        for e in part.first_errors {
            if result.first_errors.len() < KEPT_ERRORS {
                result.first_errors.push(e);
            }
        }
        result
            .latency_ns
            .add(&part.latency_ns)
            .map_err(|e| format!("merge histograms: {e}"))?;
    }
    Ok(result)
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    start: Instant,
    measure_from: Instant,
    measure_to: Instant,
    drain_until: Instant,
}

struct Conn {
    stream: Stream,
    rbuf: Vec<u8>,
    filled: usize,
    wbuf: Vec<u8>,
    written: usize,
    encoder: NotifyEncoder,
    next_stream_id: u64,
    /// (stream-id, time its NOTIFY was handed to write()).
    pending: VecDeque<(u64, Instant)>,
    /// ACKs answered since the last write: NOTIFYs to send.
    owed: usize,
    dead: bool,
}

impl Conn {
    fn new(stream: Stream, leftover: Vec<u8>, first_ip: u32) -> Self {
        let mut rbuf = vec![0u8; READ_CHUNK];
        let filled = leftover.len().min(READ_CHUNK);
        rbuf[..filled].copy_from_slice(&leftover[..filled]);
        Conn {
            stream,
            rbuf,
            filled,
            wbuf: Vec::with_capacity(4096),
            written: 0,
            encoder: NotifyEncoder::new(first_ip),
            next_stream_id: 1,
            pending: VecDeque::new(),
            owed: 0,
            dead: false,
        }
    }
}

struct Part {
    acks: u64,
    total_acks: u64,
    errors: u64,
    first_errors: Vec<String>,
    latency_ns: Histogram<u64>,
    /// The connections, kept open until the main thread has read the agent's counters at the
    /// window's end: an agent with a thread per connection loses that thread's counts when the
    /// connection closes.
    conns: Vec<Conn>,
}

struct Worker {
    poll: Poll,
    conns: Vec<Conn>,
    depth: usize,
    plan: Plan,
    part: Part,
    /// NOTIFYs this thread may still send (`None`: no limit).
    budget: Option<u64>,
}

impl Worker {
    fn new(
        mut conns: Vec<Conn>,
        depth: usize,
        plan: Plan,
        budget: Option<u64>,
    ) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        for (i, c) in conns.iter_mut().enumerate() {
            poll.registry()
                .register(
                    &mut c.stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| format!("register a socket: {e}"))?;
        }
        Ok(Worker {
            poll,
            conns,
            depth,
            plan,
            part: Part {
                acks: 0,
                total_acks: 0,
                errors: 0,
                first_errors: Vec::new(),
                latency_ns: new_histogram(),
                conns: Vec::new(),
            },
            budget,
        })
    }

    fn error(&mut self, message: String) {
        self.part.errors += 1;
        if self.part.first_errors.len() < KEPT_ERRORS {
            self.part.first_errors.push(message);
        }
    }

    fn run(mut self) -> Result<Part, String> {
        for i in 0..self.conns.len() {
            self.conns[i].owed = self.depth;
            self.flush(i);
        }
        // Bytes that came with AGENT-HELLO.
        for i in 0..self.conns.len() {
            if self.conns[i].filled > 0 {
                self.process(i, Instant::now());
                self.flush(i);
            }
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let sending = now < self.plan.measure_to && self.budget != Some(0);
            if !sending {
                let idle = self
                    .conns
                    .iter()
                    .all(|c| c.dead || (c.pending.is_empty() && c.written == c.wbuf.len()));
                if idle {
                    break;
                }
                if now >= self.plan.drain_until {
                    let lost: usize = self
                        .conns
                        .iter()
                        .filter(|c| !c.dead)
                        .map(|c| c.pending.len())
                        .sum();
                    let conns = self
                        .conns
                        .iter()
                        .filter(|c| !c.dead && !c.pending.is_empty())
                        .count();
                    if lost > 0 {
                        self.part.errors += lost as u64 - 1;
                        self.error(format!(
                            "{lost} NOTIFYs on {conns} connections still without an ACK {:?} after the window",
                            self.plan.drain_until - self.plan.measure_to
                        ));
                    }
                    break;
                }
            }
            let deadline = if sending {
                self.plan.measure_to
            } else {
                self.plan.drain_until
            };
            let timeout = deadline
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(format!("epoll_wait: {e}"));
                }
                continue;
            }
            for ev in events.iter() {
                let i = ev.token().0;
                if i >= self.conns.len() || self.conns[i].dead {
                    continue;
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.read(i);
                }
                if !self.conns[i].dead {
                    self.flush(i);
                }
            }
        }
        self.part.conns = std::mem::take(&mut self.conns);
        Ok(self.part)
    }

    /// Reads until the socket is drained, handling every complete frame.
    fn read(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            if c.filled == c.rbuf.len() {
                // Cannot happen with frames ≤ 16 KiB and a 64 KiB buffer compacted after each read.
                let msg = "read buffer full without a complete frame".to_string();
                self.kill(i, msg);
                return;
            }
            let space = c.rbuf.len() - c.filled;
            match c.stream.read(&mut c.rbuf[c.filled..]) {
                Ok(0) => {
                    let n = c.pending.len();
                    self.kill(
                        i,
                        format!("the agent closed a connection ({n} NOTIFYs in flight)"),
                    );
                    return;
                }
                Ok(n) => {
                    c.filled += n;
                    let now = Instant::now();
                    self.process(i, now);
                    if self.conns[i].dead || n < space {
                        // A short read drained the socket: new data will raise a new edge.
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.kill(i, format!("read: {e}"));
                    return;
                }
            }
        }
    }

    /// Handles every complete frame of connection `i`'s buffer, read at `now`.
    fn process(&mut self, i: usize, now: Instant) {
        let in_window = now >= self.plan.measure_from && now < self.plan.measure_to;
        let sending = now < self.plan.measure_to;
        let mut at = 0;
        loop {
            let c = &mut self.conns[i];
            let frame = match proto::next_frame(&c.rbuf[at..c.filled]) {
                Ok(Parsed::Complete(frame, used)) => {
                    at += used;
                    frame
                }
                Ok(Parsed::Partial) => break,
                Err(e) => {
                    self.kill(i, e);
                    return;
                }
            };
            let (stream_id, error) = match check_ack(&frame) {
                Ok((sid, _score)) => (Some(sid), None),
                Err((sid, e)) => (sid, Some(e)),
            };
            let fatal = matches!(error, Some(AckError::NotAck(_)));
            if let Some(e) = error {
                if fatal {
                    self.kill(i, e.to_string());
                    return;
                }
                self.error(e.to_string());
            }
            let Some(sid) = stream_id else { continue };
            let c = &mut self.conns[i];
            let found = if c.pending.front().is_some_and(|p| p.0 == sid) {
                c.pending.pop_front()
            } else {
                c.pending
                    .iter()
                    .position(|p| p.0 == sid)
                    .and_then(|pos| c.pending.remove(pos))
            };
            let Some((_, sent)) = found else {
                self.error(format!(
                    "ACK for stream-id {sid}, which has no NOTIFY in flight on its connection"
                ));
                continue;
            };
            self.part.total_acks += 1;
            if in_window {
                self.part.acks += 1;
                let ns = now.saturating_duration_since(sent).as_nanos();
                self.part
                    .latency_ns
                    .saturating_record(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
            }
            if sending {
                self.conns[i].owed += 1;
            }
        }
        let c = &mut self.conns[i];
        if at > 0 {
            c.rbuf.copy_within(at..c.filled, 0);
            c.filled -= at;
        }
    }

    /// Encodes the NOTIFYs owed and writes what the socket takes.
    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if let Some(budget) = &mut self.budget {
            let owed = c.owed.min(usize::try_from(*budget).unwrap_or(usize::MAX));
            *budget -= owed as u64;
            c.owed = owed;
        }
        if c.owed > 0 {
            if c.written == c.wbuf.len() {
                c.wbuf.clear();
                c.written = 0;
            }
            let now = Instant::now();
            for _ in 0..c.owed {
                let sid = c.next_stream_id;
                c.next_stream_id += 2;
                if let Err(e) = c.encoder.push(&mut c.wbuf, sid) {
                    self.kill(i, format!("encode NOTIFY: {e}"));
                    return;
                }
                c.pending.push_back((sid, now));
            }
            c.owed = 0;
        }
        while c.written < c.wbuf.len() {
            match c.stream.write(&c.wbuf[c.written..]) {
                Ok(0) => {
                    self.kill(i, "write returned 0".into());
                    return;
                }
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.kill(i, format!("write: {e}"));
                    return;
                }
            }
        }
        c.wbuf.clear();
        c.written = 0;
    }

    fn kill(&mut self, i: usize, message: String) {
        let c = &mut self.conns[i];
        if c.dead {
            return;
        }
        c.dead = true;
        let _ = self.poll.registry().deregister(&mut c.stream);
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        self.error(message);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shapes_parse() {
        assert_eq!(
            "4x16".parse::<Shape>().unwrap(),
            Shape {
                connections: 4,
                depth: 16
            }
        );
        assert_eq!("256x1".parse::<Shape>().unwrap().to_string(), "256x1");
        for bad in ["", "4", "0x1", "1x0", "ax1", "1x-1"] {
            assert!(bad.parse::<Shape>().is_err(), "{bad}");
        }
    }
}
