//! Counts of the agent that do not flake with the machine's load: context switches (from /proc,
//! free to read), and system calls (from `strace -c`, which slows the agent down: counted in a
//! pass of its own, never during the timed window).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Voluntary + involuntary context switches of every thread of process `pid` so far (threads
/// that have exited are not counted: the agent's threads live as long as it does).
pub fn context_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        total += parse_switches(&status);
    }
    Some(total)
}

/// The two `*_ctxt_switches` lines of a `/proc/<pid>/task/<tid>/status` file, summed.
pub fn parse_switches(status: &str) -> u64 {
    status
        .lines()
        .filter(|l| {
            l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches")
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// `strace -c -f` attached to a running process; [`SyscallCount::finish`] detaches and reads
/// the total.
pub struct SyscallCount {
    child: Child,
    out: PathBuf,
}

impl SyscallCount {
    /// Attaches to `pid` (every thread). `Err` when strace is missing or cannot attach.
    pub fn attach(pid: u32) -> Result<SyscallCount, String> {
        let out = std::env::temp_dir().join(format!(
            "spoa-loadgen-strace-{pid}-{}.txt",
            std::process::id()
        ));
        let child = Command::new("strace")
            .args(["-c", "-f", "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("strace: {e} (install strace to count system calls)"))?;
        // strace attaches to each thread in turn: give it a moment before the load starts.
        std::thread::sleep(Duration::from_millis(300));
        Ok(SyscallCount { child, out })
    }

    /// Detaches (SIGINT, as strace expects) and returns the total number of calls.
    pub fn finish(mut self) -> Result<u64, String> {
        // SAFETY: kill takes plain integers; the pid is our own child's.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let status = self.child.wait().map_err(|e| format!("strace: {e}"))?;
        let mut text = String::new();
        std::fs::File::open(&self.out)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| {
                let mut err = String::new();
                if let Some(mut s) = self.child.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                format!("strace ({status}) left no count: {e}; {}", err.trim())
            })?;
        let _ = std::fs::remove_file(&self.out);
        parse_total(&text).ok_or_else(|| format!("no total line in strace's output: {text}"))
    }
}

/// The calls column of `strace -c`'s `total` line.
pub fn parse_total(summary: &str) -> Option<u64> {
    let line = summary.lines().find(|l| l.trim_end().ends_with("total"))?;
    // % time, seconds, usecs/call, calls, [errors,] "total": calls is the 4th number.
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_procfs_and_strace() {
        let status = "Name:\tspoa\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(parse_switches(status), 127);
        let summary = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.120000           3     40000           recvfrom
 40.00    0.080000           2     40000           sendto
------ ----------- ----------- --------- --------- ----------------
100.00    0.200000           2     80002         3 total
";
        assert_eq!(parse_total(summary), Some(80002));
        assert!(context_switches(std::process::id()).is_some());
    }
}
