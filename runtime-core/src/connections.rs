//! Connection accounting shared by a runtime's threads: how many are open (admission, drain),
//! how many each worker serves (placement), and their ids. Touched at connect and disconnect
//! only, never per frame.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// The open connections of one server.
#[derive(Debug)]
pub struct Connections {
    open: AtomicUsize,
    per_worker: Box<[AtomicUsize]>,
    /// Connections ever opened, per worker (for metrics).
    accepted: Box<[AtomicU64]>,
    next_id: AtomicU64,
}

impl Connections {
    /// Accounting for `workers` workers (at least one).
    pub fn new(workers: usize) -> Arc<Connections> {
        Arc::new(Connections {
            open: AtomicUsize::new(0),
            per_worker: (0..workers.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            accepted: (0..workers.max(1)).map(|_| AtomicU64::new(0)).collect(),
            next_id: AtomicU64::new(0),
        })
    }

    /// Counts a new connection on `worker` and gives it an id; it is counted until the returned
    /// guard is dropped, however its task or thread ends.
    pub fn open(self: &Arc<Self>, worker: usize) -> Live {
        self.open.fetch_add(1, Ordering::SeqCst);
        if let Some(load) = self.per_worker.get(worker) {
            load.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(accepted) = self.accepted.get(worker) {
            accepted.fetch_add(1, Ordering::Relaxed);
        }
        Live {
            connections: Arc::clone(self),
            worker,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Connections open now.
    pub fn count(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections `worker` serves now.
    pub fn load(&self, worker: usize) -> usize {
        self.per_worker
            .get(worker)
            .map_or(0, |l| l.load(Ordering::SeqCst))
    }

    /// Connections `worker` was ever given.
    pub fn accepted(&self, worker: usize) -> u64 {
        self.accepted
            .get(worker)
            .map_or(0, |a| a.load(Ordering::Relaxed))
    }

    /// The number of workers accounted for.
    pub fn workers(&self) -> usize {
        self.per_worker.len()
    }

    /// The worker serving the fewest connections, searching from `start` so that equals take
    /// turns.
    pub fn least_loaded(&self, start: usize) -> usize {
        let workers = self.workers();
        let start = start % workers;
        let mut best = (start, usize::MAX);
        for k in 0..workers {
            let i = (start + k) % workers;
            let load = self.load(i);
            if load < best.1 {
                best = (i, load);
            }
        }
        best.0
    }
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub struct Live {
    connections: Arc<Connections>,
    worker: usize,
    id: u64,
}

impl Live {
    /// This connection's id (for log lines).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The worker serving it.
    pub fn worker(&self) -> usize {
        self.worker
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.connections.open.fetch_sub(1, Ordering::SeqCst);
        if let Some(load) = self.connections.per_worker.get(self.worker) {
            load.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
