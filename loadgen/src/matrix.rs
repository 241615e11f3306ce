//! Runtimes x shapes: every row against a fresh agent process (or the canned responder), rows of
//! one shape run back to back so that a change of background load hits them alike.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::agent::{AgentProcess, RuntimeSpec};
use crate::client::{self, LoadConfig, LoadResult, Shape};
use crate::counters::SyscallCount;
use crate::placement::Placement;
use crate::report::{self, Row, CANNED};
use crate::responder::{self, ResponderProcess};

/// The default shapes: one connection one NOTIFY at a time (latency), pipelined (throughput),
/// a few pipelining connections (HAProxy 3.x's pools), and many connections (HAProxy 2.x's
/// one-NOTIFY-per-connection style, and a reload's burst).
pub const DEFAULT_SHAPES: &str = "1x1,1x32,4x32,32x1,256x1,1024x1";
/// The default runtimes (the canned responder always runs first).
pub const DEFAULT_RUNTIMES: &str = "std,uring,uring-spin";

/// How to start the canned responder as a child process.
#[derive(Clone, Debug)]
pub struct ResponderLaunch {
    /// The executable that understands `--responder`.
    pub exe: PathBuf,
}

/// A whole matrix.
#[derive(Clone, Debug)]
pub struct MatrixConfig {
    /// The `spoa` binary.
    pub agent: PathBuf,
    /// Runtime names (see [`RuntimeSpec::parse`]).
    pub runtimes: Vec<String>,
    /// Shapes, in table order.
    pub shapes: Vec<Shape>,
    /// Warm-up per row.
    pub warmup: Duration,
    /// Measured window per row.
    pub duration: Duration,
    /// Wait for late ACKs after a window.
    pub drain: Duration,
    /// Client event-loop threads.
    pub threads: usize,
    /// The canned responder rows to run first at each shape, one per mode.
    pub canned: Vec<responder::Mode>,
    /// The canned responder's executable.
    pub responder: ResponderLaunch,
    /// Where latency.md and the SVGs go.
    pub out: PathBuf,
    /// The command line, as people should retype it.
    pub command: String,
    /// Where the agents (and the canned responder) and the load generator run.
    pub placement: Placement,
    /// Whether each row gets a second pass under `strace -c` for the agent's system calls.
    pub count_syscalls: bool,
}

/// The agent's system calls per ACK: a second, shorter pass of the same shape with `strace -c`
/// attached to every thread of `pid` (strace slows the agent: this pass is never timed). The
/// count covers the pass's connection set-up too, a few dozen calls against thousands of ACKs.
pub fn count_syscalls(load: &LoadConfig, pid: u32) -> Result<f64, String> {
    let counter = SyscallCount::attach(pid)?;
    let pass = LoadConfig {
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        drain: Duration::from_secs(1),
        agent_pid: None,
        ..load.clone()
    };
    let outcome = client::run(&pass);
    let calls = counter.finish()?;
    let result = outcome?;
    if result.total_acks == 0 {
        return Err("no ACK in the counting pass".into());
    }
    Ok(calls as f64 / result.total_acks as f64)
}

/// One measured row: the timed run, then (when asked) the counting pass.
fn measure(
    config: &MatrixConfig,
    load: &LoadConfig,
    pid: u32,
    notes: &mut Vec<String>,
) -> Result<LoadResult, String> {
    let mut result = client::run(load)?;
    if config.count_syscalls {
        match count_syscalls(load, pid) {
            Ok(per_ack) => result.agent_syscalls_per_ack = Some(per_ack),
            Err(e) => {
                let note = format!("system calls not counted: {e}");
                if !notes.contains(&note) {
                    eprintln!("{note}");
                    notes.push(note);
                }
            }
        }
    }
    Ok(result)
}

/// Runs the matrix, writes the report, and returns it with whether every row ran cleanly.
pub fn run(config: &MatrixConfig) -> Result<(String, bool), String> {
    let started = Instant::now();
    let load_before = report::load_average();
    let mut notes: Vec<String> = Vec::new();
    let mut clean = true;

    if let Some(cpus) = config.placement.load_cpus() {
        crate::placement::pin_self(cpus)?;
    }
    let agent_cpus = config.placement.agent_cpus();
    let agent_cpu_count = agent_cpus.map_or_else(crate::agent::cpus, <[usize]>::len);

    let mut runtimes: Vec<(String, Result<RuntimeSpec, responder::Mode>)> = Vec::new();
    for &mode in &config.canned {
        runtimes.push((format!("{CANNED}-{}", mode.name()), Err(mode)));
    }
    for name in &config.runtimes {
        let spec = RuntimeSpec::parse(name, agent_cpu_count)?;
        match spec.check(&config.agent) {
            Ok(()) => runtimes.push((spec.name.clone(), Ok(spec))),
            Err(why) => {
                eprintln!("skipping runtime {name}: {why}");
                notes.push(format!("runtime `{name}` not measured: {why}"));
            }
        }
    }
    if !config.agent.is_file() && runtimes.iter().any(|(_, s)| s.is_ok()) {
        return Err(format!(
            "no agent binary at {} (run `cargo build --release` first, or pass --agent)",
            config.agent.display()
        ));
    }

    let mut rows: Vec<Row> = Vec::new();
    for &shape in &config.shapes {
        for (name, spec) in &runtimes {
            let outcome = match spec {
                Err(mode) => ResponderProcess::spawn(&config.responder.exe, *mode, agent_cpus)
                    .and_then(|r| {
                        let mut lc = load_config(config, r.addr(), shape);
                        lc.agent_pid = Some(r.pid());
                        measure(config, &lc, r.pid(), &mut notes)
                    }),
                Ok(spec) => {
                    AgentProcess::start(&config.agent, spec, agent_cpus).and_then(|mut a| {
                        let mut lc = load_config(config, a.addr(), shape);
                        lc.agent_pid = Some(a.pid());
                        let result = measure(config, &lc, a.pid(), &mut notes);
                        if !a.is_running() {
                            notes.push(format!(
                                "`{name}` agent exited during {shape}: {}",
                                a.log_tail(3)
                            ));
                        }
                        result
                    })
                }
            };
            match outcome {
                Ok(result) => {
                    let row = Row {
                        runtime: name.clone(),
                        result,
                    };
                    eprintln!("{}", progress_line(&row));
                    if row.result.errors > 0 || row.result.acks == 0 {
                        clean = false;
                    }
                    rows.push(row);
                }
                Err(e) => {
                    eprintln!("{name} {shape}: FAILED: {e}");
                    notes.push(format!("{name} {shape} did not run: {e}"));
                    clean = false;
                }
            }
            // Let the previous row's sockets and threads go before the next one starts.
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let load_after = report::load_average();
    std::fs::create_dir_all(&config.out)
        .map_err(|e| format!("create {}: {e}", config.out.display()))?;
    let subtitle = format!(
        "{} s window after {} s warm-up",
        trim_secs(config.duration),
        trim_secs(config.warmup)
    );
    let mut plots = Vec::new();
    for &shape in &config.shapes {
        let file = format!("latency-{shape}.svg");
        match report::plot(&rows, shape, &config.out.join(&file), &subtitle) {
            Ok(()) => plots.push((shape, file)),
            Err(e) => notes.push(format!("no plot for {shape}: {e}")),
        }
    }

    let md = render(
        config,
        &rows,
        &notes,
        &plots,
        &load_before,
        &load_after,
        started.elapsed(),
    );
    let path = config.out.join("latency.md");
    std::fs::write(&path, &md).map_err(|e| format!("write {}: {e}", path.display()))?;
    eprintln!(
        "wrote {} and {} plot(s) in {}",
        path.display(),
        plots.len(),
        config.out.display()
    );
    Ok((md, clean))
}

fn load_config(config: &MatrixConfig, addr: std::net::SocketAddr, shape: Shape) -> LoadConfig {
    LoadConfig {
        warmup: config.warmup,
        duration: config.duration,
        drain: config.drain,
        threads: config.threads,
        ..LoadConfig::new(addr, shape)
    }
}

/// The git revision of the working directory, `+ uncommitted changes` when dirty.
fn source_revision() -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("git {rev} + uncommitted changes")
    } else {
        format!("git {rev}")
    })
}

fn trim_secs(d: Duration) -> String {
    let s = format!("{:.2}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One line per row on stderr while the matrix runs.
pub fn progress_line(row: &Row) -> String {
    let r = &row.result;
    format!(
        "{:>10} {:>6}: {:>9.0} ACKs/s  p50 {:>7.1} µs  p99 {:>7.1} µs  max {:>8.1} µs  errors {}  agent {} µs/ACK",
        row.runtime,
        r.shape.to_string(),
        r.rate(),
        r.quantile_us(0.5),
        r.quantile_us(0.99),
        r.max_us(),
        r.errors,
        r.per_ack_us(r.agent_cpu)
            .map_or("–".into(), |v| format!("{v:.2}")),
    )
}

fn render(
    config: &MatrixConfig,
    rows: &[Row],
    notes: &[String],
    plots: &[(Shape, String)],
    load_before: &str,
    load_after: &str,
    took: Duration,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# SPOA cross-runtime latency\n");
    let _ = writeln!(md, "- Machine: {}", report::machine());
    let _ = writeln!(md, "- Placement: {}", config.placement);
    let _ = writeln!(
        md,
        "- Load average (1/5/15 min) before: {load_before}; after: {load_after}"
    );
    let _ = writeln!(
        md,
        "- Agent: `{}`{}; harness, agents and responder at nice {}",
        config.agent.display(),
        source_revision().map_or(String::new(), |r| format!(" built from {r}")),
        crate::cpu::nice()
    );
    let _ = writeln!(md, "- Command: `{}`", config.command);
    let _ = writeln!(
        md,
        "- Per row: fresh agent process, {} s warm-up, {} s measured window, {} client thread(s); whole run {:.0} s\n",
        trim_secs(config.warmup),
        trim_secs(config.duration),
        config.threads,
        took.as_secs_f64()
    );
    md.push_str(&report::table(rows));
    md.push('\n');
    md.push_str(
        "Latency: NOTIFY handed to write() -> the read() that returned its ACK, over the ACKs \
         read in the window. CPU: utime+stime of the process from /proc/<pid>/stat over the \
         window, divided by its ACKs (10 ms tick resolution). `canned-*`: the harness's own \
         responder (ids extracted, precomputed ACK, no protocol work) in a child process, with \
         one epoll thread or a blocking thread per connection; \"% of canned\" is relative to \
         the faster of the two at that shape: the ceiling of this harness on this machine. \
         Context switches: voluntary + involuntary, every thread of the agent, from \
         /proc/<pid>/task/*/status over the window. System calls: a separate 1 s pass of the same \
         shape under `strace -c -f` (never timed), all calls of every agent thread divided by \
         the ACKs of that pass.\n",
    );
    let goals = report::goals(rows);
    if !goals.is_empty() {
        let _ = writeln!(
            md,
            "\nGoals at {} (≥ {:.0}% of canned, p99 < {:.0} µs, ≤ {:.0} µs agent CPU per ACK):\n\n{goals}",
            report::GOAL_SHAPE,
            report::GOAL_FRACTION * 100.0,
            report::GOAL_P99_US,
            report::GOAL_CPU_US
        );
    }
    let errors = report::error_details(rows);
    if !errors.is_empty() {
        let _ = writeln!(md, "\nErrors:\n\n{errors}");
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "\nNotes:\n");
        for n in notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    for (shape, file) in plots {
        let _ = writeln!(md, "\n![latency percentiles, {shape}]({file})");
    }
    md
}
