//! CPU time of a process from `/proc/<pid>/stat` (utime + stime, all threads, clock ticks).

use std::time::Duration;

/// Clock ticks per second for /proc times.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// Parses utime + stime (fields 14 and 15) from the text of a `/proc/<pid>/stat` file.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state): utime is field 14, i.e. the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn cpu_of(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    let ticks = parse_stat_ticks(&stat)?;
    let hz = ticks_per_second();
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / hz,
    ))
}

/// User + system CPU time of process `pid` so far (its threads included, exited ones too).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    cpu_of(&format!("/proc/{pid}/stat"))
}

/// Voluntary plus involuntary context switches of process `pid` so far, summed over its live
/// threads (`/proc/<pid>/task/*/status`; a thread's count goes when it exits).
pub fn process_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        total += status
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                matches!(k, "voluntary_ctxt_switches" | "nonvoluntary_ctxt_switches")
                    .then(|| v.trim().parse::<u64>().ok())?
            })
            .sum::<u64>();
    }
    Some(total)
}

/// The same for this process.
pub fn self_cpu() -> Option<Duration> {
    cpu_of("/proc/self/stat")
}

/// Sets this process's nice value (threads and children started later inherit it).
pub fn set_nice(n: i32) -> Result<(), String> {
    // SAFETY: setpriority takes plain integers; who = 0 is the calling process.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot set nice {n}: {} (negative values need root or CAP_SYS_NICE)",
            std::io::Error::last_os_error()
        ))
    }
}

/// This process's nice value.
pub fn nice() -> i32 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            // Field 19 (nice) is the 17th after the command name.
            rest.split_whitespace().nth(16)?.parse().ok()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields() {
        let stat =
            "1234 (spoa (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert!(self_cpu().is_some());
        assert!((-20..=19).contains(&nice()));
    }
}
