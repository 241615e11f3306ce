//! `--runtime auto` runs std when HAProxy may run on the CPUs uring would pin its executors
//! to (measured faster sharing CPUs with HAProxy), and uring on CPUs of the agent's own.
//!
//! A copy of `sleep` named `haproxy`, pinned with `taskset`, plays HAProxy: what the agent
//! looks at is a process's name and its threads' CPU affinity.
//! In a test binary of its own: the stand-in would turn `auto` to std for other tests.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};

use support::BIN;

/// One stand-in at a time: the agent names the first HAProxy it finds.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A process named `haproxy` allowed on `cpus` only; killed on drop.
struct StandIn {
    child: Child,
    dir: PathBuf,
    _turn: MutexGuard<'static, ()>,
}

impl StandIn {
    fn on(cpus: &str) -> StandIn {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("spoa-runtime-choice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("haproxy");
        let sleep = ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("a sleep binary");
        std::fs::copy(sleep, &exe).unwrap();
        let child = Command::new("taskset")
            .args(["-c", cpus])
            .arg(&exe)
            .arg("60")
            .spawn()
            .expect("taskset");
        // taskset execs the stand-in: wait until the pid is named haproxy.
        let comm = format!("/proc/{}/comm", child.id());
        for _ in 0..200 {
            if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "haproxy") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        StandIn {
            child,
            dir,
            _turn: turn,
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn check_auto(cpus: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "--runtime",
            "auto",
            "-n",
            "1",
            "--cpus",
            cpus,
            "--check-runtime",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn uring_runs_here() -> bool {
    support::runtimes().contains(&"uring")
}

fn two_cpus() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

#[test]
fn auto_runs_std_when_haproxy_may_run_on_the_executors_cpu() {
    if !uring_runs_here() {
        eprintln!("NOTE: uring cannot run here: auto is std whatever HAProxy does");
        return;
    }
    let haproxy = StandIn::on("0");
    let out = check_auto("0");
    assert!(
        support::haproxy_named(&out, haproxy.child.id()).is_some(),
        "ours is pid {}: {out}",
        haproxy.child.id()
    );
    assert!(out.contains("may run on CPU 0,"), "{out}");
    assert!(out.contains("--cpus"), "the fix is named: {out}");
}

#[test]
fn auto_runs_uring_on_cpus_haproxy_is_kept_off() {
    if !uring_runs_here() || !two_cpus() {
        eprintln!("NOTE: needs uring and two CPUs");
        return;
    }
    let haproxy = StandIn::on("0");
    let out = check_auto("1");
    // A real HAProxy running on this machine on CPU 1 would rightly make it std: only ours
    // must not.
    assert!(
        out.starts_with("uring can run: 1 worker on CPU 1\n")
            || (out.starts_with("std chosen; HAProxy (pid")
                && !out.contains(&format!("(pid {})", haproxy.child.id()))),
        "{out}"
    );
}
