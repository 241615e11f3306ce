//! What the agent counts for its operators, without a lock or a shared cache line per frame.
//!
//! Each connection's [`Session`](crate::Session) owns a [`Cell`]: a cache-line-aligned block of
//! atomics that only the connection's own thread or task writes (plain `Relaxed` stores of the
//! engine's per-connection [`Stats`], once per batch of frames, never a read-modify-write that
//! another core contends for). Open cells are listed in the [`Metrics`] registry; when a
//! connection ends, its cell is folded into the registry's totals under a mutex (once per
//! connection). A scrape sums the totals and the open cells: it may see a batch a moment late,
//! never a count twice or lost.
//!
//! What happens once per connection (admission, its end and why) is counted on shared atomics
//! with `fetch_add`: connections are rare next to frames.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use spop_core::{Close, Error, Stats};

use crate::connections::Connections;
use crate::report::End;

/// Upper bounds of the NOTIFY-read to ACK-written histogram, in microseconds: from an answer in
/// the same read loop (tens of µs) to one that waited on HAProxy's `timeout processing` (ms).
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];
const BUCKETS: usize = LATENCY_BUCKETS_US.len() + 1;

/// AGENT-DISCONNECT and HAPROXY-DISCONNECT statuses counted one by one (SPOE.txt: 0 to 13, and
/// 99 "unknown"); others are counted together as "other".
pub const STATUSES: usize = 14;

/// Why a connection was closed at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedBy {
    /// `max_connections` were open.
    Limit,
    /// The peer is in none of the `allow_from` networks.
    AllowFrom,
}

/// Why a connection ended, as counted (`closed` by `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosedBy {
    /// HAProxy closed it between frames.
    Eof,
    /// HAProxy closed it in the middle of a frame.
    EofMidFrame,
    /// HAProxy sent HAPROXY-DISCONNECT.
    HaproxyDisconnect,
    /// A health check was answered.
    Healthcheck,
    /// The HELLO or a frame did not arrive within its timeout (AGENT-DISCONNECT 2).
    ReadTimeout,
    /// The peer did not read its ACKs within the write timeout.
    WriteTimeout,
    /// A protocol fault (AGENT-DISCONNECT with its status).
    ProtocolError,
    /// A read or write failed (reset, broken pipe).
    IoError,
    /// The agent stopped (AGENT-DISCONNECT 0).
    Shutdown,
    /// The handler panicked.
    HandlerPanic,
    /// Handed to the next agent at a restart (see [`crate::handoff`]).
    HandedOver,
}

impl ClosedBy {
    /// Every reason, in the order of [`Snapshot::closed`].
    pub const ALL: [ClosedBy; 11] = [
        ClosedBy::Eof,
        ClosedBy::EofMidFrame,
        ClosedBy::HaproxyDisconnect,
        ClosedBy::Healthcheck,
        ClosedBy::ReadTimeout,
        ClosedBy::WriteTimeout,
        ClosedBy::ProtocolError,
        ClosedBy::IoError,
        ClosedBy::Shutdown,
        ClosedBy::HandlerPanic,
        ClosedBy::HandedOver,
    ];

    /// The `reason` label.
    pub const fn label(self) -> &'static str {
        match self {
            ClosedBy::Eof => "eof",
            ClosedBy::EofMidFrame => "eof_mid_frame",
            ClosedBy::HaproxyDisconnect => "haproxy_disconnect",
            ClosedBy::Healthcheck => "healthcheck",
            ClosedBy::ReadTimeout => "read_timeout",
            ClosedBy::WriteTimeout => "write_timeout",
            ClosedBy::ProtocolError => "protocol_error",
            ClosedBy::IoError => "io_error",
            ClosedBy::Shutdown => "shutdown",
            ClosedBy::HandlerPanic => "handler_panic",
            ClosedBy::HandedOver => "handed_over",
        }
    }
}

/// One connection's live counters, written by that connection only.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Cell {
    stats: [AtomicU64; STAT_FIELDS],
    latency: [AtomicU64; BUCKETS],
    latency_sum_ns: AtomicU64,
}

/// The engine counters a cell mirrors, in this order.
const STAT_FIELDS: usize = 8;

fn stat_values(s: &Stats) -> [u64; STAT_FIELDS] {
    [
        s.frames,
        s.notifies,
        s.acks,
        s.unknown_frames,
        s.aborted,
        s.reassembled,
        u64::from(s.hellos),
        u64::from(s.disconnects),
    ]
}

/// Adds one to a counter that only this thread writes: a load and a store, no locked
/// instruction.
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(by), Relaxed);
}

impl Cell {
    /// Mirrors the engine's counters (single writer: plain stores).
    pub(crate) fn publish(&self, stats: &Stats) {
        for (cell, value) in self.stats.iter().zip(stat_values(stats)) {
            cell.store(value, Relaxed);
        }
    }

    /// Records one batch's NOTIFY-read to ACK-written time.
    pub(crate) fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // The first bucket whose bound is at least this: a linear search, since almost every
        // batch lands in the first buckets (a binary search measured slower).
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| nanos <= bound * 1000)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        if let Some(counter) = self.latency.get(bucket) {
            bump(counter, 1);
        }
        bump(&self.latency_sum_ns, nanos);
    }

    fn add_to(&self, totals: &mut Totals) {
        for (total, cell) in totals.stats.iter_mut().zip(&self.stats) {
            *total += cell.load(Relaxed);
        }
        for (total, cell) in totals.latency.iter_mut().zip(&self.latency) {
            *total += cell.load(Relaxed);
        }
        totals.latency_sum_ns += self.latency_sum_ns.load(Relaxed);
    }
}

/// Sums of cells.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    stats: [u64; STAT_FIELDS],
    latency: [u64; BUCKETS],
    latency_sum_ns: u64,
}

/// The counters of one agent; cheap to clone (a shared handle). [`Metrics::default`] counts
/// nothing and costs nothing: sessions then carry no cell.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Registry>>);

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Metrics(on)"
        } else {
            "Metrics(off)"
        })
    }
}

/// Open connections' cells, with the free slots' indexes so that opening a connection does not
/// search (a reload opens thousands at once).
#[derive(Default)]
struct Slots {
    cells: Vec<Option<Arc<Cell>>>,
    free: Vec<usize>,
}

struct Registry {
    live: Mutex<Slots>,
    /// Cells of connections that ended.
    closed_totals: Mutex<Totals>,
    refused: [AtomicU64; 2],
    closed: [AtomicU64; ClosedBy::ALL.len()],
    agent_disconnects: [AtomicU64; STATUSES + 1],
    haproxy_disconnects: [AtomicU64; STATUSES + 1],
    connections: Mutex<Option<Arc<Connections>>>,
}

impl Metrics {
    /// Counting metrics.
    pub fn enabled() -> Metrics {
        Metrics(Some(Arc::new(Registry {
            live: Mutex::new(Slots::default()),
            closed_totals: Mutex::new(Totals::default()),
            refused: Default::default(),
            closed: Default::default(),
            agent_disconnects: Default::default(),
            haproxy_disconnects: Default::default(),
            connections: Mutex::new(None),
        })))
    }

    /// Whether anything is counted.
    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// The runtime's connection accounting, for the accepted and open counts per worker: a
    /// runtime calls this once it made its [`Connections`].
    pub fn watch(&self, connections: &Arc<Connections>) {
        if let Some(registry) = &self.0 {
            *lock(&registry.connections) = Some(Arc::clone(connections));
        }
    }

    /// Counts a connection closed at accept.
    pub fn refused(&self, by: RefusedBy) {
        if let Some(registry) = &self.0 {
            let index = match by {
                RefusedBy::Limit => 0,
                RefusedBy::AllowFrom => 1,
            };
            if let Some(counter) = registry.refused.get(index) {
                counter.fetch_add(1, Relaxed);
            }
        }
    }

    /// A cell for a new connection, listed until the returned probe is dropped.
    pub(crate) fn open(&self) -> Option<Probe> {
        let registry = self.0.as_ref()?;
        let cell = Arc::new(Cell::default());
        let mut live = lock(&registry.live);
        let slot = match live.free.pop() {
            Some(free) => free,
            None => {
                live.cells.push(None);
                live.cells.len() - 1
            }
        };
        if let Some(entry) = live.cells.get_mut(slot) {
            *entry = Some(Arc::clone(&cell));
        }
        Some(Probe {
            cell,
            registry: Arc::clone(registry),
            slot,
        })
    }

    /// Everything counted so far; `None` when metrics are off.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let registry = self.0.as_ref()?;
        // The live list's lock first, as a closing connection takes it (see `Probe::drop`).
        let live = lock(&registry.live);
        let mut totals = *lock(&registry.closed_totals);
        for cell in live.cells.iter().flatten() {
            cell.add_to(&mut totals);
        }
        drop(live);
        let read = |counters: &[AtomicU64]| counters.iter().map(|c| c.load(Relaxed)).collect();
        let [frames, notifies, acks, unknown_frames, aborted, reassembled, hellos, disconnects] =
            totals.stats;
        let (accepted, open) = match lock(&registry.connections).as_ref() {
            Some(c) => (
                (0..c.workers()).map(|w| c.accepted(w)).collect(),
                (0..c.workers()).map(|w| c.load(w) as u64).collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let latency_count = totals.latency.iter().sum();
        Some(Snapshot {
            accepted,
            open,
            refused_limit: registry.refused[0].load(Relaxed),
            refused_allow_from: registry.refused[1].load(Relaxed),
            closed: read(&registry.closed),
            agent_disconnects: read(&registry.agent_disconnects),
            haproxy_disconnects: read(&registry.haproxy_disconnects),
            frames,
            notifies,
            acks,
            unknown_frames,
            aborted,
            reassembled,
            hellos,
            disconnects,
            latency_buckets: totals.latency.to_vec(),
            latency_count,
            latency_sum: Duration::from_nanos(totals.latency_sum_ns),
        })
    }
}

/// A mutex whose data stays consistent even if a holder panicked (only sums are kept).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection's cell; its counts move into the totals when it is dropped.
pub(crate) struct Probe {
    pub(crate) cell: Arc<Cell>,
    registry: Arc<Registry>,
    slot: usize,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe").field("slot", &self.slot).finish()
    }
}

impl Probe {
    /// Counts a connection's end: why, and the DISCONNECT statuses exchanged.
    pub(crate) fn ended(&self, end: &End, mid_frame: bool) {
        let registry = &self.registry;
        let count = |counters: &[AtomicU64], index: usize| {
            if let Some(counter) = counters.get(index).or(counters.last()) {
                counter.fetch_add(1, Relaxed);
            }
        };
        let status_index = |code: u32| usize::try_from(code).map_or(STATUSES, |c| c.min(STATUSES));
        let by = match end {
            End::Closed(Close::Healthcheck) => ClosedBy::Healthcheck,
            End::Closed(Close::PeerDisconnect(status)) => {
                count(&registry.haproxy_disconnects, status_index(status.code()));
                count(&registry.agent_disconnects, 0);
                ClosedBy::HaproxyDisconnect
            }
            End::Closed(Close::Shutdown) => {
                count(&registry.agent_disconnects, 0);
                ClosedBy::Shutdown
            }
            End::Closed(Close::Error(error)) => {
                count(
                    &registry.agent_disconnects,
                    status_index(error.status().code()),
                );
                if matches!(error, Error::Timeout) {
                    ClosedBy::ReadTimeout
                } else {
                    ClosedBy::ProtocolError
                }
            }
            End::Eof if mid_frame => ClosedBy::EofMidFrame,
            End::Eof => ClosedBy::Eof,
            End::WriteStalled => ClosedBy::WriteTimeout,
            End::Io(_) => ClosedBy::IoError,
            End::HandlerPanicked => ClosedBy::HandlerPanic,
            End::HandedOver => ClosedBy::HandedOver,
        };
        let index = ClosedBy::ALL.iter().position(|&b| b == by).unwrap_or(0);
        count(&registry.closed, index);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // Totals first, then the slot: a scrape in between would count the cell twice, so both
        // happen under the live list's lock, which a scrape also takes.
        let mut live = lock(&self.registry.live);
        self.cell.add_to(&mut lock(&self.registry.closed_totals));
        if let Some(entry) = live.cells.get_mut(self.slot) {
            *entry = None;
            live.free.push(self.slot);
        }
    }
}

/// The counts at one instant, summed over workers and connections unless said otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Connections accepted (admitted and handed to a worker), by worker.
    pub accepted: Vec<u64>,
    /// Connections open now, by worker.
    pub open: Vec<u64>,
    /// Connections refused because `max_connections` were open.
    pub refused_limit: u64,
    /// Connections refused by `allow_from`.
    pub refused_allow_from: u64,
    /// Connections ended, by reason in the order of [`ClosedBy::ALL`].
    pub closed: Vec<u64>,
    /// AGENT-DISCONNECTs sent, by status (index = status, the last one every other status).
    pub agent_disconnects: Vec<u64>,
    /// HAPROXY-DISCONNECTs received, by status (as `agent_disconnects`).
    pub haproxy_disconnects: Vec<u64>,
    /// Frames received.
    pub frames: u64,
    /// NOTIFY frames received.
    pub notifies: u64,
    /// ACKs sent.
    pub acks: u64,
    /// Frames of unknown type skipped.
    pub unknown_frames: u64,
    /// NOTIFYs HAProxy aborted.
    pub aborted: u64,
    /// NOTIFYs reassembled from fragments.
    pub reassembled: u64,
    /// HAPROXY-HELLOs received.
    pub hellos: u64,
    /// HAPROXY-DISCONNECTs received.
    pub disconnects: u64,
    /// Batches answered in each bucket: up to the first of [`LATENCY_BUCKETS_US`], then between
    /// it and the next..., the last one past them all (not cumulative).
    pub latency_buckets: Vec<u64>,
    /// Batches answered.
    pub latency_count: u64,
    /// Their NOTIFY-read to ACK-written time, added up.
    pub latency_sum: Duration,
}

impl Snapshot {
    /// Connections ended for `reason`.
    pub fn closed_by(&self, reason: ClosedBy) -> u64 {
        ClosedBy::ALL
            .iter()
            .position(|&b| b == reason)
            .and_then(|i| self.closed.get(i))
            .copied()
            .unwrap_or(0)
    }
}
