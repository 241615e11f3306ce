//! The loaded score table, shared by every handler, and its live reload.
//!
//! A reload builds the new [`Table`] on a thread of its own at idle priority, off the hot path
//! (`build_at_low_priority`), then publishes it:
//! the slot holding the current table is swapped under a mutex and a generation counter is
//! bumped. Each handler keeps its own `Arc` of a table and, at the start of every NOTIFY, does
//! one atomic load of the generation: equal (every NOTIFY but the first after a reload), it goes
//! on with its own table, without a lock and without touching shared cache lines; different, it
//! takes the new table from the slot (the only lock, once per handler per reload). So a NOTIFY
//! always finishes with the table it started with, and no connection notices a reload.
//!
//! A replaced table is kept by the reload thread until no handler holds it any more, then freed
//! by a short-lived thread at nice 19 in short turns: freeing a million-entry table takes
//! milliseconds that no worker should spend, nor wait for on a CPU it shares. A handler
//! that stays idle keeps its old table until its next NOTIFY (or its connection's end), so up to
//! two tables (more after reloads in quick succession) can be in memory for a while.
//!
//! Lookups and hits are counted per handler in counters that only that handler writes (a plain
//! load and store, no atomic read-modify-write, no shared cache line), summed on demand.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::scores::{LoadError, Table};

/// The current table and everything shared about it.
pub struct Scores {
    paths: Vec<PathBuf>,
    /// Bumped after every swap of `current`; handlers compare it with theirs. Alone on its
    /// cache line, so that taking the locks below does not evict it from the workers' caches.
    generation: Generation,
    /// The generation and its table, changed together.
    current: Mutex<Current>,
    /// Replaced tables still held by some handler.
    retired: Mutex<Vec<Arc<Table>>>,
    counters: Mutex<Registry>,
}

#[repr(align(64))]
struct Generation(AtomicU64);

struct Current {
    generation: u64,
    table: Arc<Table>,
    loaded_at: SystemTime,
}

/// Per-handler counters, and what handlers that ended had counted.
#[derive(Default)]
struct Registry {
    live: Vec<Arc<Counters>>,
    ended: Lookups,
}

/// One handler's counts; only that handler writes them.
#[derive(Default)]
#[repr(align(64))]
struct Counters {
    lookups: AtomicU64,
    hits: AtomicU64,
}

/// Lookups made and how many of them found the address in a list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lookups {
    /// Addresses looked up.
    pub lookups: u64,
    /// Addresses found in a list.
    pub hits: u64,
}

/// What is loaded now, for logs.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The table.
    pub table: Arc<Table>,
    /// When it was swapped in.
    pub at: SystemTime,
    /// Its generation (1 for the table loaded at startup).
    pub generation: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (each critical section
    // is a swap or a push): go on with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Scores {
    /// Loads `paths` (in order, later files overriding earlier ones).
    pub fn load(paths: Vec<PathBuf>) -> Result<Arc<Scores>, LoadError> {
        let table = Table::load(&paths)?;
        Ok(Scores::new(paths, table))
    }

    /// Serves `table`; reloads read `paths`.
    pub fn new(paths: Vec<PathBuf>, table: Table) -> Arc<Scores> {
        Arc::new(Scores {
            paths,
            generation: Generation(AtomicU64::new(1)),
            current: Mutex::new(Current {
                generation: 1,
                table: Arc::new(table),
                loaded_at: SystemTime::now(),
            }),
            retired: Mutex::new(Vec::new()),
            counters: Mutex::new(Registry::default()),
        })
    }

    /// The files reloads read.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Reads the files again into a new table and swaps it in; on any error the current table
    /// stays and the error says why. Returns the new table.
    pub fn reload(&self) -> Result<Arc<Table>, LoadError> {
        let table = Arc::new(Table::load(&self.paths)?);
        self.publish(Arc::clone(&table));
        Ok(table)
    }

    /// Makes `table` the current one.
    pub fn publish(&self, table: Arc<Table>) {
        let old = {
            let mut current = lock(&self.current);
            let generation = current.generation + 1;
            let old = std::mem::replace(&mut current.table, table);
            current.generation = generation;
            current.loaded_at = SystemTime::now();
            // Under the lock, so that a handler that sees this generation finds this table.
            self.generation.0.store(generation, Ordering::Release);
            old
        };
        lock(&self.retired).push(old);
        self.free_retired();
    }

    /// Frees the replaced tables that no handler holds any more (before returning, on a
    /// thread of their own at nice 19: see [`free_at_low_priority`]); returns how many are
    /// still held.
    pub fn free_retired(&self) -> usize {
        let (unused, held) = {
            let mut retired = lock(&self.retired);
            // Only this list and the handlers hold a replaced table, and handlers never take
            // one again: a count of 1 stays 1, and nobody but this call frees the table.
            let (unused, held): (Vec<_>, Vec<_>) =
                retired.drain(..).partition(|t| Arc::strong_count(t) == 1);
            *retired = held;
            (unused, retired.len())
        };
        if !unused.is_empty() {
            free_at_low_priority(unused);
        }
        held
    }

    /// The table now, with when it was loaded.
    pub fn loaded(&self) -> Loaded {
        let current = lock(&self.current);
        Loaded {
            table: Arc::clone(&current.table),
            at: current.loaded_at,
            generation: current.generation,
        }
    }

    /// A reader for one handler, registered for the lookup counts.
    pub fn reader(self: &Arc<Self>) -> Reader {
        let (generation, table) = {
            let current = lock(&self.current);
            (current.generation, Arc::clone(&current.table))
        };
        let counters = Arc::new(Counters::default());
        lock(&self.counters).live.push(Arc::clone(&counters));
        Reader {
            scores: Arc::clone(self),
            generation,
            table,
            counters,
        }
    }

    /// Lookups so far, by every handler, live or ended.
    pub fn lookups(&self) -> Lookups {
        let registry = lock(&self.counters);
        registry
            .live
            .iter()
            .fold(registry.ended, |sum, c| sum.plus(c.read()))
    }
}

impl Lookups {
    fn plus(self, other: Lookups) -> Lookups {
        Lookups {
            lookups: self.lookups + other.lookups,
            hits: self.hits + other.hits,
        }
    }
}

impl Counters {
    fn read(&self) -> Lookups {
        Lookups {
            lookups: self.lookups.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
        }
    }

    /// Adds one; only the owning handler calls this, so load + store loses nothing.
    #[inline]
    fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// One handler's view of the scores: its own table snapshot and counters.
pub struct Reader {
    scores: Arc<Scores>,
    generation: u64,
    table: Arc<Table>,
    counters: Arc<Counters>,
}

impl Reader {
    /// Takes the latest table if a reload published one since the last call. Call it when a
    /// NOTIFY starts: the NOTIFY then uses one table from start to end.
    #[inline]
    pub fn refresh(&mut self) {
        if self.scores.generation.0.load(Ordering::Acquire) != self.generation {
            self.take_latest();
        }
    }

    #[cold]
    #[inline(never)]
    fn take_latest(&mut self) {
        let current = lock(&self.scores.current);
        self.generation = current.generation;
        // The old table's Arc is dropped here but never the last one: the retired list holds
        // it, so freeing happens on the reload thread. Only an Arc clone: no allocation.
        self.table = Arc::clone(&current.table);
    }

    /// The score of `addr` in this reader's table, counted.
    #[inline]
    pub fn lookup(&self, addr: std::net::IpAddr) -> Option<u8> {
        let score = self.table.lookup(addr);
        Counters::bump(&self.counters.lookups);
        if score.is_some() {
            Counters::bump(&self.counters.hits);
        }
        score
    }

    /// The table this reader uses now.
    pub fn table(&self) -> &Arc<Table> {
        &self.table
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let mut registry = lock(&self.scores.counters);
        registry.ended = registry.ended.plus(self.counters.read());
        registry.live.retain(|c| !Arc::ptr_eq(c, &self.counters));
    }
}

/// Drops `tables` on a thread at nice 19 in short turns ([`Priority::Low`]) and waits for it.
/// Freeing a million-prefix table hands tens of MiB back to the kernel, milliseconds of CPU:
/// on the reload thread, at normal priority, that time would be taken from a worker sharing
/// its CPU as much as it takes it from idle time.
fn free_at_low_priority(tables: Vec<Arc<Table>>) {
    let freer = std::thread::Builder::new()
        .name("scores-free".into())
        .spawn(move || {
            set_priority(None, Priority::Low);
            drop(tables);
        });
    // Without a thread to spare, the tables were dropped with the closure, here.
    if let Ok(freer) = freer {
        let _ = freer.join();
    }
}

/// One line about the table: networks, files and load time.
pub fn describe(table: &Table) -> String {
    let (v4, v6) = table.families();
    let files: Vec<String> = table
        .files()
        .iter()
        .map(|f| format!("{} ({} IPv4, {} IPv6)", f.path.display(), f.v4, f.v6))
        .collect();
    let repeats = match table.repeats() {
        0 => String::new(),
        n => format!(", {n} repeated (the later line kept)"),
    };
    let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
    let memory = table.memory();
    let pages = match (&memory.refused, memory.huge) {
        (Some(why), _) => format!(" (4 KiB pages: {why})"),
        (None, 0) => String::new(),
        (None, huge) => format!(" ({:.1} MiB on huge pages)", mib(huge)),
    };
    format!(
        "{} networks ({v4} IPv4, {v6} IPv6{repeats}) from {} in {} ms, {:.1} MiB{pages}",
        table.len(),
        files.join(", "),
        table.load_time().as_millis(),
        mib(memory.total())
    )
}

/// `--scores`: loads the files, logs what each brought, catches SIGHUP and starts the reload
/// thread. `None` without files (SIGHUP then keeps its default action, as in the seed agent).
pub fn start(
    paths: &[PathBuf],
    watch: Option<Duration>,
    default_score: Option<u8>,
) -> Result<Option<Arc<Scores>>, String> {
    if paths.is_empty() {
        return Ok(None);
    }
    let scores = Scores::load(paths.to_vec()).map_err(|e| format!("--scores: {e}"))?;
    let fallback = match default_score {
        Some(n) => format!("--default-score {n}"),
        None => "a random score".into(),
    };
    let reloads = match watch {
        Some(w) => format!("SIGHUP or a change seen within {} s", w.as_secs_f64()),
        None => "SIGHUP".into(),
    };
    log::info!(
        "scores: {}; addresses in no list get {fallback}; reload with {reloads}",
        describe(&scores.loaded().table)
    );
    spawn(Arc::clone(&scores), Triggers::install(watch)?)?;
    Ok(Some(scores))
}

/// How the reload thread learns it has work.
pub struct Triggers {
    /// Readable when SIGHUP arrived (the signal handler writes a byte).
    sighup: UnixStream,
    /// Poll the files' metadata this often and reload when it changed (`--scores-watch`).
    watch: Option<Duration>,
}

impl Triggers {
    /// Catches SIGHUP from now on (so that it no longer ends the process).
    pub fn install(watch: Option<Duration>) -> Result<Triggers, String> {
        let (read, write) =
            UnixStream::pair().map_err(|e| format!("cannot create the SIGHUP pipe: {e}"))?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGHUP, write)
            .map_err(|e| format!("cannot catch SIGHUP: {e}"))?;
        Ok(Triggers {
            sighup: read,
            watch,
        })
    }
}

/// How often the reload thread looks again at replaced tables still held by handlers.
const FREE_EVERY: Duration = Duration::from_millis(200);

/// Starts the reload thread: on SIGHUP (or, with `watch`, when a file changed and then stayed
/// the same for one period) it has the table rebuilt at idle priority, swaps it in, and logs
/// what it loaded or why it kept the old one.
pub fn spawn(scores: Arc<Scores>, triggers: Triggers) -> Result<(), String> {
    std::thread::Builder::new()
        .name("scores-reload".into())
        .spawn(move || reload_loop(&scores, triggers))
        .map(drop)
        .map_err(|e| format!("cannot start the reload thread: {e}"))
}

fn reload_loop(scores: &Scores, mut triggers: Triggers) {
    let mut stamps = Stamps::read(scores.paths());
    let mut pending: Option<Stamps> = None;
    let mut buf = [0u8; 64];
    loop {
        let held = scores.free_retired();
        let wait = match (triggers.watch, held > 0) {
            (Some(w), true) => Some(w.min(FREE_EVERY)),
            (Some(w), false) => Some(w),
            (None, true) => Some(FREE_EVERY),
            (None, false) => None,
        };
        if triggers.sighup.set_read_timeout(wait).is_err() {
            log::error!("scores: reload thread cannot wait for SIGHUP: reloads stopped");
            return;
        }
        match triggers.sighup.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {
                reload(scores, "SIGHUP");
                stamps = Stamps::read(scores.paths());
                pending = None;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                if triggers.watch.is_some() {
                    let now = Stamps::read(scores.paths());
                    // Reload once a change has stopped changing: a file being written is not
                    // read half-way.
                    if now != stamps && pending.as_ref() == Some(&now) {
                        reload(scores, "files changed");
                        stamps = now;
                        pending = None;
                    } else if now != stamps {
                        pending = Some(now);
                    }
                }
            }
            Err(e) => {
                log::error!(
                    "scores: reload thread cannot read its SIGHUP pipe: {e}: reloads stopped"
                );
                return;
            }
        }
    }
}

fn reload(scores: &Scores, why: &str) {
    match build_at_low_priority(scores.paths()) {
        Ok(table) => {
            let table = Arc::new(table);
            scores.publish(Arc::clone(&table));
            let Lookups { lookups, hits } = scores.lookups();
            log::info!(
                "scores reloaded ({why}): {}; lookups so far: {lookups}, {hits} found in a list",
                describe(&table)
            );
        }
        Err(e) => {
            let kept = scores.loaded();
            log::error!(
                "scores reload ({why}) failed, keeping the table loaded {} s ago ({} networks): {e}",
                kept.at.elapsed().map(|d| d.as_secs()).unwrap_or(0),
                kept.table.len()
            );
        }
    }
}

/// How long a build may wait for idle CPU time before it takes some from the workers.
const IDLE_FOR: Duration = Duration::from_secs(1);

/// Builds the table on a thread of its own that runs only on CPU time the workers leave idle
/// ([`Priority::Idle`]): a reload then costs the workers' latency next to nothing. On a CPU the
/// workers keep busy, such a thread would hardly ever run, so after [`IDLE_FOR`] the build goes
/// on at the lowest normal priority ([`Priority::Low`]) and finishes.
fn build_at_low_priority(paths: &[PathBuf]) -> Result<Table, LoadError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = paths.to_vec();
    let builder = std::thread::Builder::new()
        .name("scores-build".into())
        .spawn(move || {
            let tid = set_priority(None, Priority::Idle);
            let _ = tx.send(Err(tid));
            let _ = tx.send(Ok(Table::load(&owned)));
        });
    let Ok(builder) = builder else {
        // No thread to spare: build here.
        return Table::load(paths);
    };
    let deadline = std::time::Instant::now() + IDLE_FOR;
    let (mut tid, mut late, mut raised) = (None, false, false);
    let result = loop {
        let wait = if late {
            Duration::MAX
        } else {
            deadline.saturating_duration_since(std::time::Instant::now())
        };
        match rx.recv_timeout(wait) {
            Ok(Err(id)) => tid = id,
            Ok(Ok(result)) => break result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => late = true,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break Err(LoadError {
                    path: paths.first().cloned().unwrap_or_default(),
                    line: None,
                    reason: "the build thread died".into(),
                })
            }
        }
        if let (true, false, Some(id)) = (late, raised, tid) {
            raised = true;
            log::info!(
                "scores: the workers left no idle CPU for {} s: the build goes on at nice 19",
                IDLE_FOR.as_secs()
            );
            set_priority(Some(id), Priority::Low);
        }
    };
    let _ = builder.join();
    result
}

/// The files' metadata, to notice a change without reading them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamps(Vec<Option<(SystemTime, u64, u64)>>);

impl Stamps {
    fn read(paths: &[PathBuf]) -> Stamps {
        use std::os::unix::fs::MetadataExt;
        Stamps(
            paths
                .iter()
                .map(|p| {
                    let m = std::fs::metadata(p).ok()?;
                    Some((m.modified().ok()?, m.len(), m.ino()))
                })
                .collect(),
        )
    }
}

/// A build thread's scheduling.
#[derive(Clone, Copy, Debug)]
enum Priority {
    /// Linux's SCHED_IDLE: any normal thread preempts it at once on waking. A nice value of 19
    /// only shrinks a thread's share, and a waking worker can still wait for its time slice:
    /// p99 went from 0.2 ms to 0.5..1.2 ms during ten reloads of a 1M-prefix table that way.
    Idle,
    /// SCHED_OTHER at nice 19, in turns of [`BUILD_SLICE`].
    Low,
}

/// The longest the build thread runs at a time once it runs at nice 19 (Linux 6.12 and later;
/// earlier kernels keep their default). A worker that is never idle does not wake up, so it
/// does not preempt the build: it waits for the build's turn to end, by default 0.7 ms times
/// 1 + log2(CPUs) (1.4 ms on two CPUs), which is what a reload added to p99. The kernel's
/// shortest is 0.1 ms. The build gets the same share of the CPU, in shorter turns.
const BUILD_SLICE: Duration = Duration::from_micros(100);

/// Sets the scheduling of thread `tid` (`None`: the calling thread); returns the thread id.
/// Lowering a thread's priority is always allowed; where it fails (or off Linux) the thread
/// keeps its priority, which only costs latency during reloads.
fn set_priority(tid: Option<i32>, priority: Priority) -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls; the parameter structs live across the calls.
        unsafe {
            let tid = tid.unwrap_or_else(|| libc::syscall(libc::SYS_gettid) as libc::pid_t);
            let param = libc::sched_param { sched_priority: 0 };
            let done = match priority {
                Priority::Idle => libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) == 0,
                Priority::Low => {
                    let mut attr: libc::sched_attr = std::mem::zeroed();
                    attr.size = std::mem::size_of::<libc::sched_attr>() as u32;
                    attr.sched_policy = libc::SCHED_OTHER as u32;
                    attr.sched_nice = 19;
                    attr.sched_runtime = BUILD_SLICE.as_nanos() as u64;
                    libc::syscall(libc::SYS_sched_setattr, tid, &attr, 0u32) == 0
                        || (libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param) == 0
                            && libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) == 0)
                }
            };
            if !done {
                log::debug!(
                    "scores: build thread not set to {priority:?}: {}",
                    std::io::Error::last_os_error()
                );
            }
            Some(tid)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (tid, priority);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scores::file::parse_line;

    fn table(lines: &str) -> Table {
        Table::from_entries(lines.lines().filter_map(|l| parse_line(l).unwrap()))
    }

    #[test]
    fn readers_switch_at_refresh_and_old_tables_are_freed_here() {
        let scores = Scores::new(Vec::new(), table("10.0.0.0/8 1\n"));
        let mut reader = scores.reader();
        let addr = "10.1.2.3".parse().unwrap();
        assert_eq!(reader.lookup(addr), Some(1));
        scores.publish(Arc::new(table("10.0.0.0/8 2\n")));
        assert_eq!(reader.lookup(addr), Some(1), "no switch before refresh");
        assert_eq!(
            scores.free_retired(),
            1,
            "the reader still holds the old table"
        );
        let old = Arc::downgrade(reader.table());
        reader.refresh();
        assert_eq!(reader.lookup(addr), Some(2));
        assert!(old.upgrade().is_some(), "not freed by the reader");
        assert_eq!(scores.free_retired(), 0);
        assert!(old.upgrade().is_none(), "freed by free_retired");
        assert_eq!(
            scores.lookups(),
            Lookups {
                lookups: 3,
                hits: 3
            }
        );
        assert_eq!(reader.lookup("192.0.2.1".parse().unwrap()), None);
        drop(reader);
        assert_eq!(
            scores.lookups(),
            Lookups {
                lookups: 4,
                hits: 3
            },
            "an ended reader's counts are kept"
        );
        assert_eq!(lock(&scores.counters).live.len(), 0);
    }

    #[test]
    fn a_failed_reload_keeps_the_table() {
        let dir = std::env::temp_dir().join(format!("spoa-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scores.txt");
        std::fs::write(&path, "192.0.2.0/24 5\n").unwrap();
        let scores = Scores::load(vec![path.clone()]).unwrap();
        let mut reader = scores.reader();
        std::fs::write(&path, "192.0.2.0/24 5\n192.0.2.0/24 500\n").unwrap();
        let err = scores.reload().unwrap_err();
        assert_eq!(err.line, Some(2));
        reader.refresh();
        assert_eq!(reader.lookup("192.0.2.1".parse().unwrap()), Some(5));
        assert_eq!(scores.loaded().generation, 1);
        std::fs::write(&path, "192.0.2.0/24 50\n").unwrap();
        scores.reload().unwrap();
        reader.refresh();
        assert_eq!(reader.lookup("192.0.2.1".parse().unwrap()), Some(50));
        assert_eq!(scores.loaded().generation, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
