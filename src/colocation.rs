//! Is HAProxy running on the CPUs the uring executors would be pinned to?
//!
//! `--runtime auto` asks this before it picks uring. Measured through HAProxy on a 2-CPU box
//! (README, "Runtimes"): sharing CPUs with HAProxy, the std runtime served 10-25 % more
//! requests/s than uring, whose executors, pinned one per CPU, compete with HAProxy's threads
//! for exactly the CPUs they are pinned to; on CPUs of its own uring is the faster runtime. So
//! `auto` runs std when a HAProxy process it can see may run on one of those CPUs, and says
//! which process and which CPUs.
//!
//! What counts: every thread of every process named `haproxy` ([`is_haproxy`]) in this PID
//! namespace (a HAProxy in another container is not seen), by the CPUs its affinity allows
//! (`Cpus_allowed_list`; `cpu-map` sets it per thread). A master process (one with a `haproxy` child, `-W` / `-Ws`)
//! only supervises: its workers are what runs, so it is left out.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// A HAProxy process whose threads may run on some of the agent's CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sharing {
    pub pid: u32,
    /// The agent's CPUs this process may run on, sorted.
    pub cpus: Vec<usize>,
}

/// The first HAProxy process (by pid) that may run on one of `cpus`, from `/proc`.
pub fn haproxy_on(cpus: &[usize]) -> Option<Sharing> {
    haproxy_on_in(Path::new("/proc"), cpus)
}

/// [`haproxy_on`] over a `/proc`-like tree (tests build one).
fn haproxy_on_in(proc: &Path, cpus: &[usize]) -> Option<Sharing> {
    // (pid, parent) of every HAProxy process, by pid.
    let mut processes: Vec<(u32, u32)> = fs::read_dir(proc)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let dir = entry.path();
            if !is_haproxy(&dir) {
                return None;
            }
            Some((pid, parent(&dir)?))
        })
        .collect();
    processes.sort_unstable();
    let masters: BTreeSet<u32> = processes.iter().map(|&(_, parent)| parent).collect();
    processes.iter().find_map(|&(pid, _)| {
        if masters.contains(&pid) {
            return None;
        }
        let allowed = threads_cpus(&proc.join(pid.to_string()));
        let shared: Vec<usize> = cpus
            .iter()
            .copied()
            .filter(|c| allowed.contains(c))
            .collect();
        (!shared.is_empty()).then_some(Sharing { pid, cpus: shared })
    })
}

/// Named `haproxy` by its command (`comm`, from the program's file name), or a dynamic loader
/// (`comm` `ld-…`) running a program named `haproxy` (`ld-linux-x86-64.so.2 [options]
/// /path/haproxy …`, as a HAProxy built for another distribution's libraries runs). Only a
/// loader's command line is read.
fn is_haproxy(process: &Path) -> bool {
    let named = |name: &[u8]| name.rsplit(|&b| b == b'/').next() == Some(&b"haproxy"[..]);
    let Ok(comm) = fs::read(process.join("comm")) else {
        return false;
    };
    let comm = comm.trim_ascii_end();
    named(comm)
        || (comm.starts_with(b"ld-")
            && fs::read(process.join("cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).skip(1).any(named)))
}

/// The parent's pid, from `stat`: the field after the command, which is in parentheses and may
/// itself hold spaces and parentheses, so the fields are counted from the last `)`.
fn parent(process: &Path) -> Option<u32> {
    let stat = fs::read_to_string(process.join("stat")).ok()?;
    let (_, after) = stat.rsplit_once(')')?;
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The CPUs any of the process's threads may run on.
fn threads_cpus(process: &Path) -> BTreeSet<usize> {
    let mut cpus = BTreeSet::new();
    let mut add = |status: &Path| {
        if let Some(list) = fs::read_to_string(status)
            .ok()
            .as_deref()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")))
        {
            cpus.extend(runtime_core::parse_cpu_list(list).unwrap_or_default());
        }
    };
    match fs::read_dir(process.join("task")) {
        Ok(threads) => threads
            .filter_map(Result::ok)
            .for_each(|t| add(&t.path().join("status"))),
        Err(_) => add(&process.join("status")),
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc`-like tree: one directory per process, with `comm`, `stat` and one
    /// `task/<tid>/status` per thread.
    struct FakeProc(std::path::PathBuf);

    impl FakeProc {
        fn new() -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("spoa-colocation-{}-{n}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            FakeProc(dir)
        }

        fn process(&self, pid: u32, comm: &str, parent: u32, threads: &[&str]) -> &Self {
            let dir = self.0.join(pid.to_string());
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            fs::write(
                dir.join("stat"),
                format!("{pid} ({comm}) S {parent} {pid} {pid} 0 -1\n"),
            )
            .unwrap();
            for (n, cpus) in threads.iter().enumerate() {
                let task = dir.join("task").join((pid + n as u32).to_string());
                fs::create_dir_all(&task).unwrap();
                fs::write(
                    task.join("status"),
                    format!("Name:\t{comm}\nCpus_allowed:\tff\nCpus_allowed_list:\t{cpus}\n"),
                )
                .unwrap();
            }
            self
        }

        fn haproxy_on(&self, cpus: &[usize]) -> Option<Sharing> {
            haproxy_on_in(&self.0, cpus)
        }
    }

    impl Drop for FakeProc {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_haproxy_thread_allowed_on_an_agent_cpu_is_sharing() {
        let proc = FakeProc::new();
        proc.process(40, "haproxy", 1, &["0-3", "0-3"]);
        assert_eq!(
            proc.haproxy_on(&[2, 3, 4]),
            Some(Sharing {
                pid: 40,
                cpus: vec![2, 3]
            })
        );
    }

    #[test]
    fn haproxy_threads_pinned_away_from_the_agent_cpus_are_not_sharing() {
        let proc = FakeProc::new();
        // cpu-map: one thread on each of CPUs 0 and 1.
        proc.process(40, "haproxy", 1, &["0", "1"]);
        assert_eq!(proc.haproxy_on(&[2, 3]), None);
        assert_eq!(
            proc.haproxy_on(&[1, 2]),
            Some(Sharing {
                pid: 40,
                cpus: vec![1]
            })
        );
    }

    #[test]
    fn a_master_process_is_not_counted_only_its_workers() {
        let proc = FakeProc::new();
        proc.process(40, "haproxy", 1, &["0-7"])
            .process(41, "haproxy", 40, &["0-3"]);
        assert_eq!(proc.haproxy_on(&[4, 5]), None);
        assert_eq!(proc.haproxy_on(&[3]).map(|s| s.pid), Some(41));
    }

    #[test]
    fn a_haproxy_run_by_the_dynamic_loader_is_known_by_its_program() {
        let proc = FakeProc::new();
        proc.process(40, "ld-linux-x86-64", 1, &["0-1"]);
        fs::write(
            proc.0.join("40/cmdline"),
            b"/opt/h/ld-linux-x86-64.so.2\0--library-path\0/opt/h/lib\0/opt/h/haproxy\0-db\0",
        )
        .unwrap();
        assert_eq!(proc.haproxy_on(&[1]).map(|s| s.pid), Some(40));
    }

    #[test]
    fn other_processes_are_not_haproxy() {
        let proc = FakeProc::new();
        proc.process(40, "haproxy-spoa", 1, &["0-7"])
            .process(41, "nginx", 1, &["0-7"])
            .process(42, "tail", 1, &["0-7"]);
        fs::write(proc.0.join("42/cmdline"), b"tail\0-f\0/var/log/haproxy\0").unwrap();
        assert_eq!(proc.haproxy_on(&[0, 1]), None);
    }

    #[test]
    fn a_command_with_parentheses_still_gives_its_parent() {
        let proc = FakeProc::new();
        proc.process(40, "a) b", 7, &["0"]);
        assert_eq!(parent(&proc.0.join("40")), Some(7));
    }
}
