//! Can io_uring run here? One clear answer, with the fix, before any executor starts.
//!
//! glommio fails in three different ways when io_uring is not usable: a low RLIMIT_MEMLOCK is an
//! error; a kernel or a seccomp filter that refuses `io_uring_setup` makes it *panic*, and poisons
//! a `Once` so that every later executor panics too. So the probe reads what the kernel says
//! (`/proc`) first, then builds one throwaway executor on a throwaway thread, with the panic
//! message kept off stderr, and remembers the outcome for the life of the process.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::panic;
use std::sync::{Arc, OnceLock};
use std::thread;

use glommio::{CpuSet, LocalExecutorBuilder, Placement, PoolPlacement};

/// glommio refuses to start an executor when the soft RLIMIT_MEMLOCK is below this.
pub const MIN_MEMLOCK: u64 = 512 * 1024;
/// The oldest kernel glommio runs on.
const MIN_KERNEL: (u32, u32) = (5, 8);
/// The probe thread's name, to keep its expected panic off stderr.
const PROBE_THREAD: &str = "spoa-uring-probe";

/// Why the uring runtime cannot run here. Its `Display` is one line: what is wrong, and how to
/// fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The kernel predates what glommio needs from io_uring.
    OldKernel {
        /// `uname -r`.
        release: String,
    },
    /// `kernel.io_uring_disabled` forbids io_uring to this process (2: to everyone; 1: to
    /// processes without CAP_SYS_ADMIN outside `kernel.io_uring_group`).
    Disabled {
        /// The sysctl's value.
        setting: u32,
    },
    /// RLIMIT_MEMLOCK (soft) below [`MIN_MEMLOCK`].
    MemLock {
        /// The limit in bytes.
        limit: u64,
    },
    /// `io_uring_setup` fails although the kernel and its settings allow io_uring: a seccomp
    /// filter (containers' default profiles) or a sandbox.
    Blocked {
        /// Whether `/proc/self/status` shows a seccomp filter on this process.
        seccomp_filter: bool,
    },
    /// More workers than CPUs this process may run on.
    TooManyWorkers {
        /// Workers asked for.
        workers: usize,
        /// CPUs online and in this process's affinity mask.
        cpus: usize,
    },
    /// Anything else glommio reported while starting an executor.
    Failed(String),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::OldKernel { release } => write!(
                f,
                "kernel {release} is older than {}.{}, the first with the io_uring features glommio \
                 needs: upgrade the kernel",
                MIN_KERNEL.0, MIN_KERNEL.1
            ),
            Unavailable::Disabled { setting: 1 } => f.write_str(
                "io_uring is restricted (kernel.io_uring_disabled=1) and this process is neither \
                 privileged (CAP_SYS_ADMIN) nor in kernel.io_uring_group: add its group to \
                 kernel.io_uring_group, or `sysctl kernel.io_uring_disabled=0`",
            ),
            Unavailable::Disabled { setting } => write!(
                f,
                "io_uring is disabled (kernel.io_uring_disabled={setting}): \
                 `sysctl kernel.io_uring_disabled=0` enables it"
            ),
            Unavailable::MemLock { limit } => write!(
                f,
                "RLIMIT_MEMLOCK is {}, glommio needs at least {}: raise it (systemd: \
                 LimitMEMLOCK=infinity; shell: ulimit -l unlimited; docker: --ulimit memlock=-1)",
                kib(*limit),
                kib(MIN_MEMLOCK)
            ),
            Unavailable::Blocked { seccomp_filter } => write!(
                f,
                "io_uring_setup is blocked although the kernel allows io_uring ({}; container \
                 default profiles block io_uring): allow io_uring_setup, io_uring_enter and \
                 io_uring_register (docker: a seccomp profile that permits them)",
                if *seccomp_filter {
                    "this process runs under a seccomp filter"
                } else {
                    "seccomp or a sandbox?"
                }
            ),
            Unavailable::TooManyWorkers { workers, cpus } => write!(
                f,
                "{workers} workers but only {cpus} CPUs available to this process, and the uring \
                 runtime pins one executor to each CPU: use -n {cpus} or fewer"
            ),
            Unavailable::Failed(detail) => {
                write!(f, "cannot start an io_uring executor: {detail}")
            }
        }
    }
}

impl std::error::Error for Unavailable {}

impl From<Unavailable> for io::Error {
    fn from(why: Unavailable) -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, why.to_string())
    }
}

fn kib(bytes: u64) -> String {
    if bytes == u64::MAX {
        "unlimited".into()
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

/// Whether the uring runtime can run `workers` executors here: kernel version,
/// `kernel.io_uring_disabled`, RLIMIT_MEMLOCK, the CPUs this process may use, and one real
/// executor built and dropped. The executor test runs once per process; its outcome is kept.
pub fn probe(workers: usize) -> Result<(), Unavailable> {
    let release = read_trimmed("/proc/sys/kernel/osrelease");
    if let Some(release) = &release {
        if parse_release(release).is_some_and(|version| version < MIN_KERNEL) {
            return Err(Unavailable::OldKernel {
                release: release.clone(),
            });
        }
    }
    let disabled = read_trimmed("/proc/sys/kernel/io_uring_disabled")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    if disabled >= 2 {
        return Err(Unavailable::Disabled { setting: disabled });
    }
    if let Some(limit) = memlock_limit() {
        if limit < MIN_MEMLOCK {
            return Err(Unavailable::MemLock { limit });
        }
    }
    let cpus = usable_cpus().len();
    if workers > cpus {
        return Err(Unavailable::TooManyWorkers { workers, cpus });
    }
    match executor_test() {
        Ok(()) => Ok(()),
        Err(ExecutorFailure::Panicked) if disabled == 1 => {
            Err(Unavailable::Disabled { setting: disabled })
        }
        Err(ExecutorFailure::Panicked) => Err(Unavailable::Blocked {
            seccomp_filter: seccomp_filtered(),
        }),
        Err(ExecutorFailure::MemLock(limit)) => Err(Unavailable::MemLock { limit }),
        Err(ExecutorFailure::Error(detail)) => Err(Unavailable::Failed(detail)),
    }
}

/// The CPUs an executor may be pinned to: online, and in this process's affinity mask (taskset,
/// cgroup cpusets). Sorted; empty if glommio cannot read the topology.
pub fn usable_cpus() -> Vec<usize> {
    let allowed = allowed_cpus();
    let Ok(online) = CpuSet::online() else {
        return Vec::new();
    };
    let set: BTreeSet<usize> = online
        .iter()
        .map(|l| l.cpu)
        .filter(|cpu| allowed.as_ref().is_none_or(|a| a.contains(cpu)))
        .collect();
    set.into_iter().collect()
}

/// `workers` CPUs spread as far apart as the topology allows (packages, cores, then hyper-threads),
/// among the [`usable_cpus`] — and among `allowed` when the operator chose CPUs (to keep
/// executors off the CPUs HAProxy's `cpu-map` uses).
pub fn spread_cpus(workers: usize, allowed: Option<&[usize]>) -> Result<Vec<usize>, Unavailable> {
    let mut usable = usable_cpus();
    if let Some(allowed) = allowed {
        let unusable: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|cpu| !usable.contains(cpu))
            .collect();
        if !unusable.is_empty() {
            return Err(Unavailable::Failed(format!(
                "CPUs {} are offline or outside this process's affinity mask (usable: {})",
                runtime_core::format_cpu_list(&unusable),
                runtime_core::format_cpu_list(&usable)
            )));
        }
        usable.retain(|cpu| allowed.contains(cpu));
    }
    if workers > usable.len() {
        return Err(Unavailable::TooManyWorkers {
            workers,
            cpus: usable.len(),
        });
    }
    let set = CpuSet::online()
        .map_err(|e| Unavailable::Failed(e.to_string()))?
        .filter(|l| usable.contains(&l.cpu));
    let mut generator = PoolPlacement::MaxSpread(workers, Some(set))
        .generate_cpu_set()
        .map_err(|e| Unavailable::Failed(e.to_string()))?;
    let mut cpus = Vec::with_capacity(workers);
    for _ in 0..workers {
        match generator.next().next() {
            Some(location) => cpus.push(location.cpu),
            None => {
                return Err(Unavailable::Failed(
                    "no CPU left to pin an executor to".into(),
                ))
            }
        }
    }
    Ok(cpus)
}

#[derive(Clone, Debug)]
enum ExecutorFailure {
    /// glommio panicked: `io_uring_setup` (or its probe) failed.
    Panicked,
    MemLock(u64),
    Error(String),
}

/// Builds one small executor on a throwaway thread, once per process.
fn executor_test() -> Result<(), ExecutorFailure> {
    static OUTCOME: OnceLock<Result<(), ExecutorFailure>> = OnceLock::new();
    OUTCOME
        .get_or_init(|| {
            // glommio's panic is expected here: keep it off stderr, pass every other one on.
            let previous = Arc::new(panic::take_hook());
            let chained = Arc::clone(&previous);
            panic::set_hook(Box::new(move |info| {
                if thread::current().name() != Some(PROBE_THREAD) {
                    chained(info);
                }
            }));
            let outcome = thread::Builder::new()
                .name(PROBE_THREAD.into())
                .spawn(|| {
                    LocalExecutorBuilder::new(Placement::Unbound)
                        .io_memory(64 << 10)
                        .ring_depth(8)
                        .make()
                        .map(drop)
                        .map_err(|e| match e {
                            glommio::GlommioError::ReactorError(
                                glommio::ReactorErrorKind::MemLockLimit(limit, _),
                            ) => ExecutorFailure::MemLock(limit),
                            other => ExecutorFailure::Error(other.to_string()),
                        })
                })
                .map_err(|e| ExecutorFailure::Error(format!("cannot start a thread: {e}")))
                .and_then(|probe| probe.join().unwrap_or(Err(ExecutorFailure::Panicked)));
            drop(panic::take_hook());
            panic::set_hook(Box::new(move |info| previous(info)));
            outcome
        })
        .clone()
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// "6.1.0-18-amd64" -> (6, 1).
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The soft RLIMIT_MEMLOCK in bytes (`u64::MAX`: unlimited), from /proc/self/limits.
fn memlock_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    let soft = line
        .strip_prefix("Max locked memory")?
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

/// `Cpus_allowed_list` of /proc/self/status ("0-3,8-11").
fn allowed_cpus() -> Option<BTreeSet<usize>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut cpus = BTreeSet::new();
    for range in list.split(',').filter(|r| !r.is_empty()) {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let (first, last): (usize, usize) = (first.parse().ok()?, last.parse().ok()?);
        cpus.extend(first..=last);
    }
    Some(cpus)
}

/// Whether a seccomp filter is installed on this process ("Seccomp: 2").
fn seccomp_filtered() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Seccomp:"))
                .map(|v| v.trim() == "2")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse() {
        assert_eq!(parse_release("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(parse_release("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(parse_release("4.19"), Some((4, 19)));
        assert!(parse_release("5.4.0").is_some_and(|v| v < MIN_KERNEL));
        assert_eq!(parse_release("garbage"), None);
    }

    #[test]
    fn messages_say_what_and_how() {
        let memlock = Unavailable::MemLock { limit: 65536 }.to_string();
        assert!(memlock.starts_with("RLIMIT_MEMLOCK is 64 KiB, glommio needs at least 512 KiB"));
        assert!(memlock.contains("ulimit -l unlimited"));
        let disabled = Unavailable::Disabled { setting: 2 }.to_string();
        assert!(disabled.contains("kernel.io_uring_disabled=2"));
        let old = Unavailable::OldKernel {
            release: "5.4.0".into(),
        };
        assert!(old
            .to_string()
            .starts_with("kernel 5.4.0 is older than 5.8"));
        let many = Unavailable::TooManyWorkers {
            workers: 8,
            cpus: 2,
        };
        assert!(many.to_string().contains("use -n 2 or fewer"));
    }

    #[test]
    fn this_process_has_cpus() {
        let cpus = usable_cpus();
        assert!(!cpus.is_empty());
        assert_eq!(
            spread_cpus(cpus.len(), None).map(|c| c.len()),
            Ok(cpus.len())
        );
        assert!(matches!(
            spread_cpus(cpus.len() + 1, None),
            Err(Unavailable::TooManyWorkers { .. })
        ));
    }

    #[test]
    fn executors_stay_on_the_cpus_the_operator_chose() {
        let cpus = usable_cpus();
        let last = *cpus.last().unwrap();
        assert_eq!(spread_cpus(1, Some(&[last])), Ok(vec![last]));
        assert!(matches!(
            spread_cpus(2, Some(&[last])),
            Err(Unavailable::TooManyWorkers {
                workers: 2,
                cpus: 1
            })
        ));
        let err = spread_cpus(1, Some(&[100_000])).unwrap_err().to_string();
        assert!(err.contains("CPUs 100000 are offline or outside"), "{err}");
    }
}
