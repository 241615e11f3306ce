//! Where the agent and the load generator run. A thread-per-core agent is deployed on CPUs of
//! its own, so by default the agent (and the canned responder) get one part of this process's
//! CPUs and the load generator the other: two processes sharing every CPU of a small machine
//! measure the scheduler (ping-pong on one CPU looks fast, pinned executors fight the load), not
//! the runtime.

use std::fmt;

/// The CPU sets of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Agent and load generator on disjoint CPU sets.
    Disjoint {
        /// The agent's (and the canned responder's) CPUs.
        agent: Vec<usize>,
        /// The load generator's CPUs.
        load: Vec<usize>,
    },
    /// Both on every CPU this process may use: the scheduler decides.
    Colocated,
}

impl Placement {
    /// The default: the load generator on the first half of the usable CPUs (rounded down,
    /// at least one), the agent on the rest; co-located when only one CPU is usable.
    pub fn split(usable: &[usize]) -> Placement {
        if usable.len() < 2 {
            return Placement::Colocated;
        }
        let (load, agent) = usable.split_at(usable.len() / 2);
        Placement::Disjoint {
            agent: agent.to_vec(),
            load: load.to_vec(),
        }
    }

    /// The agent's CPUs, when pinned.
    pub fn agent_cpus(&self) -> Option<&[usize]> {
        match self {
            Placement::Disjoint { agent, .. } => Some(agent),
            Placement::Colocated => None,
        }
    }

    /// The load generator's CPUs, when pinned.
    pub fn load_cpus(&self) -> Option<&[usize]> {
        match self {
            Placement::Disjoint { load, .. } => Some(load),
            Placement::Colocated => None,
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Disjoint { agent, load } => write!(
                f,
                "agent on CPUs {}, load generator on CPUs {} (disjoint)",
                format_list(agent),
                format_list(load)
            ),
            Placement::Colocated => f.write_str(
                "CO-LOCATED: agent and load generator share every CPU (the scheduler's placement \
                 is part of every number)",
            ),
        }
    }
}

/// A command running `program` on `cpus` (through `taskset -c`, from util-linux), or on any CPU.
pub fn command(program: &std::path::Path, cpus: Option<&[usize]>) -> std::process::Command {
    match cpus {
        Some(cpus) => {
            let mut c = std::process::Command::new("taskset");
            c.arg("-c").arg(format_list(cpus)).arg(program);
            c
        }
        None => std::process::Command::new(program),
    }
}

pub use runtime_core::{format_cpu_list as format_list, parse_cpu_list as parse_list};

/// The CPUs this process may run on (its affinity mask).
pub fn usable_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero is a valid (empty) set;
    // sched_getaffinity writes at most `size_of::<cpu_set_t>()` bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size matches the set passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return (0..crate::agent::cpus()).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Pins the calling thread, and every thread and child it starts afterwards, to `cpus`. Call it
/// before the load generator starts its threads.
pub fn pin_self(cpus: &[usize]) -> Result<(), String> {
    // SAFETY: as in `usable_cpus`: an all-zero set is valid.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(format!("CPU {cpu} is beyond what this system can address"));
        }
        // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 is this thread; the size matches the set passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot pin the load generator to CPUs {}: {}",
            format_list(cpus),
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_split_gives_the_load_the_first_half() {
        assert_eq!(
            Placement::split(&[0, 1]),
            Placement::Disjoint {
                agent: vec![1],
                load: vec![0]
            }
        );
        assert_eq!(
            Placement::split(&[0, 1, 2, 3, 4]),
            Placement::Disjoint {
                agent: vec![2, 3, 4],
                load: vec![0, 1]
            }
        );
        assert_eq!(Placement::split(&[3]), Placement::Colocated);
        assert!(!usable_cpus().is_empty());
    }
}
