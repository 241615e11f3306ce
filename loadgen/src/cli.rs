//! The command line of `spoa-loadgen`, also behind `cargo bench --bench latency`.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use runtime_core::ListenAddress;

use crate::client::{self, LoadConfig, Shape};
use crate::matrix::{self, MatrixConfig, ResponderLaunch, DEFAULT_RUNTIMES, DEFAULT_SHAPES};
use crate::placement::Placement;
use crate::report::{self, Row};
use crate::responder;

const AFTER_HELP: &str = "\
MODES:
  spoa-loadgen [--agent target/release/spoa] [--runtimes std,uring,uring-spin]
               [--shapes 1x1,1x32,4x32,32x1,256x1,1024x1] [--duration SECS] [--warmup SECS]
               [--agent-cpus LIST --load-cpus LIST | --colocated] [--no-syscalls] [--out DIR]
      The matrix: every runtime (plus the canned responder) at every shape, each row against a
      fresh agent process; writes DIR/latency.md and DIR/latency-<shape>.svg. Runtimes the agent
      cannot run here (`spoa --runtime uring --check-runtime` fails) are skipped with a note.
      By default the agent gets the second half of the usable CPUs and the load generator the
      first (on 2 CPUs: agent on CPU 1, load on CPU 0), as a thread-per-core agent is deployed.
      Each row is followed by a 1 s counting pass under `strace -c -f` for the agent's system
      calls per ACK (skipped with a note when strace is missing; --no-syscalls to skip).
  spoa-loadgen --connect HOST:PORT|unix:/PATH --shape 4x16 [--agent-pid PID]
      Loads an agent that is already running; prints the table on stdout.
  spoa-loadgen --responder [--listen 127.0.0.1:0]
      The canned responder alone (prints its address; exits when stdin closes).

RUNTIMES: std (a thread per connection), uring (one worker per agent CPU), uring-spin (uring with
  --spin-us 50), uring-spin=<µs>.
CANNED: the harness's own responder, run first at every shape in each --canned mode (epoll: one
  thread for all connections; threads: a blocking thread per connection); `% of canned` is
  relative to the faster of them at that shape.
SHAPE: CONNECTIONSxDEPTH: connections, each keeping DEPTH NOTIFYs in flight (closed loop).";

/// Plays HAProxy against a SPOA: closed-loop pipelined NOTIFYs, every ACK checked, latency
/// percentiles and agent CPU per ACK, across runtimes and shapes.
#[derive(Debug, Parser)]
#[command(name = "spoa-loadgen", version, after_help = AFTER_HELP)]
pub struct Args {
    /// The agent binary [default: <cargo target dir>/release/spoa, else target/release/spoa].
    #[arg(long, value_name = "PATH")]
    pub agent: Option<PathBuf>,

    /// Agent runtimes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_RUNTIMES)]
    pub runtimes: Vec<String>,

    /// Shapes, comma-separated CONNECTIONSxDEPTH.
    #[arg(long, alias = "shape", value_delimiter = ',', default_value = DEFAULT_SHAPES)]
    pub shapes: Vec<Shape>,

    /// Measured window per row, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub duration: f64,

    /// Warm-up before each window, seconds (none with --notifies: the budget is measured whole).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub warmup: f64,

    /// After a window, seconds NOTIFYs in flight may still wait for their ACK (then: errors).
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub drain: f64,

    /// With --connect: send exactly N NOTIFYs in all, wait for their ACKs and stop (the
    /// window opens at the first send and ends with the last ACK), for counts per ACK that do
    /// not depend on timing, e.g. syscalls with `strace -c` (scripts/syscalls-per-ack.sh).
    #[arg(long, value_name = "N", requires = "connect")]
    pub notifies: Option<u64>,

    /// Client event-loop threads (connections are spread over them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,

    /// Output directory of latency.md and the SVG plots.
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    pub out: PathBuf,

    /// Run the whole matrix (this process, the agents and the responder, which inherit it) at
    /// this nice value, e.g. -10 to keep background jobs (compilers) from adding their
    /// scheduling delays to the numbers. Negative values need root or CAP_SYS_NICE.
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub nice: Option<i32>,

    /// Canned responder modes to run as the reference rows, comma-separated (epoll, threads).
    #[arg(long, value_delimiter = ',', default_value = "epoll,threads")]
    pub canned: Vec<responder::Mode>,

    /// Leave out the canned responder rows (no "% of canned").
    #[arg(long)]
    pub no_canned: bool,

    /// Load an agent that is already running instead of starting one: HOST:PORT, or
    /// unix:/PATH for an agent on a Unix socket (spoa -a unix:/PATH).
    #[arg(
        long,
        value_name = "HOST:PORT|unix:/PATH",
        conflicts_with = "responder"
    )]
    pub connect: Option<String>,

    /// With --connect: the agent's pid, for its CPU time per ACK.
    #[arg(long, value_name = "PID", requires = "connect")]
    pub agent_pid: Option<u32>,

    /// The agent's (and the canned responder's) CPUs, e.g. `1` or `4-7` [default: the second
    /// half of the CPUs this process may use].
    #[arg(long, value_name = "LIST")]
    pub agent_cpus: Option<runtime_core::CpuList>,

    /// The load generator's CPUs [default: the first half of the CPUs this process may use].
    #[arg(long, value_name = "LIST")]
    pub load_cpus: Option<runtime_core::CpuList>,

    /// Run agent and load generator on the same CPUs (no pinning), as the benchmark did before
    /// it measured runtimes the way they are deployed; the report says so.
    #[arg(long, conflicts_with_all = ["agent_cpus", "load_cpus"])]
    pub colocated: bool,

    /// Skip the counting pass under `strace -c` that gives the agent's system calls per ACK.
    #[arg(long)]
    pub no_syscalls: bool,

    /// Be the canned responder.
    #[arg(long)]
    pub responder: bool,

    /// With --responder: epoll (one thread for all connections) or threads (one blocking
    /// thread per connection).
    #[arg(long, value_name = "MODE", default_value = "epoll")]
    pub responder_mode: responder::Mode,

    /// With --responder: where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

/// The placement the flags ask for: explicit lists, the default split, or co-located.
fn placement(args: &Args) -> Result<Placement, String> {
    if args.colocated {
        return Ok(Placement::Colocated);
    }
    let usable = crate::placement::usable_cpus();
    let default = Placement::split(&usable);
    let others = |taken: &[usize]| -> Vec<usize> {
        usable
            .iter()
            .copied()
            .filter(|c| !taken.contains(c))
            .collect()
    };
    let (agent, load) = match (&args.agent_cpus, &args.load_cpus) {
        (None, None) => return Ok(default),
        (Some(a), Some(l)) => (a.0.clone(), l.0.clone()),
        (Some(a), None) => (a.0.clone(), others(&a.0)),
        (None, Some(l)) => (others(&l.0), l.0.clone()),
    };
    if agent.is_empty() || load.is_empty() {
        return Err("--agent-cpus and --load-cpus must each leave the other a CPU".into());
    }
    if agent.iter().any(|c| load.contains(c)) {
        return Err(format!(
            "--agent-cpus {} and --load-cpus {} overlap (use --colocated to share CPUs)",
            crate::placement::format_list(&agent),
            crate::placement::format_list(&load)
        ));
    }
    Ok(Placement::Disjoint { agent, load })
}

/// 1024 connections need more descriptors than a shell's usual soft limit of 1024.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one plain struct that we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// `--connect`: a Unix socket path, or a host and port resolved to its first address.
fn connect_target(target: &str) -> Result<ListenAddress, String> {
    if let Some(path) = target.strip_prefix("unix:") {
        return ListenAddress::unix(path).map_err(|e| format!("--connect {target}: {e}"));
    }
    target
        .to_socket_addrs()
        .map_err(|e| format!("--connect {target}: {e}"))?
        .next()
        .map(ListenAddress::Tcp)
        .ok_or_else(|| format!("--connect {target}: no address"))
}

fn secs(v: f64, what: &str) -> Result<Duration, String> {
    if (0.0..=3600.0).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("--{what} {v}: seconds from 0 to 3600"))
    }
}

/// Runs the command line `args` (program name first); returns the exit code. `command` is how
/// the report should show the command (default: the arguments as given).
pub fn main<I, T>(args: I, command: Option<String>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let parsed = match Args::try_parse_from(&args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let command = command.unwrap_or_else(|| {
        let mut words: Vec<String> = args
            .iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        words.insert(0, "spoa-loadgen".into());
        words.join(" ")
    });
    match run(parsed, command) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("spoa-loadgen: {e}");
            2
        }
    }
}

fn run(args: Args, command: String) -> Result<bool, String> {
    if args.responder {
        responder::run_standalone(args.listen, args.responder_mode)
            .map_err(|e| format!("responder: {e}"))?;
        return Ok(true);
    }
    if let Some(n) = args.nice {
        crate::cpu::set_nice(n)?;
    }
    raise_open_files_limit();
    let placement = placement(&args)?;
    let warmup = secs(args.warmup, "warmup")?;
    let duration = secs(args.duration, "duration")?;
    let drain = secs(args.drain, "drain")?;
    if duration.is_zero() {
        return Err("--duration must be above 0".into());
    }
    if let Some(target) = &args.connect {
        let addr = connect_target(target)?;
        let mut rows = Vec::new();
        let mut clean = true;
        for &shape in &args.shapes {
            let config = LoadConfig {
                warmup,
                duration,
                drain,
                threads: usize::from(args.threads),
                agent_pid: args.agent_pid,
                notifies: args.notifies,
                ..LoadConfig::new(addr.clone(), shape)
            };
            let mut result = client::run(&config)?;
            // A run with a NOTIFY budget is itself a counting run (scripts/syscalls-per-ack.sh counts
            // around it): no second pass under strace.
            if let (Some(pid), false, None) = (args.agent_pid, args.no_syscalls, args.notifies) {
                match matrix::count_syscalls(&config, pid) {
                    Ok(per_ack) => result.agent_syscalls_per_ack = Some(per_ack),
                    Err(e) => eprintln!("system calls not counted: {e}"),
                }
            }
            if let Some(n) = args.notifies {
                let per = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.3}"));
                let acks = result.total_acks.max(1) as f64;
                eprintln!(
                    "counts: {n} NOTIFYs, {} ACKs, agent context switches {} ({} per ACK), \
                     agent CPU {} µs/ACK",
                    result.total_acks,
                    result.agent_switches.map_or("–".into(), |v| v.to_string()),
                    per(result.agent_switches.map(|v| v as f64 / acks)),
                    per(result.agent_cpu.map(|c| c.as_secs_f64() * 1e6 / acks)),
                );
            }
            let row = Row {
                runtime: target.clone(),
                result,
            };
            eprintln!("{}", matrix::progress_line(&row));
            clean &= row.result.errors == 0 && row.result.acks > 0;
            rows.push(row);
        }
        print!("{}", report::table(&rows));
        print!("{}", report::error_details(&rows));
        return Ok(clean);
    }
    let config = MatrixConfig {
        agent: args.agent.unwrap_or_else(crate::agent::default_agent_path),
        runtimes: args.runtimes,
        shapes: args.shapes,
        warmup,
        duration,
        drain,
        threads: usize::from(args.threads),
        canned: if args.no_canned {
            Vec::new()
        } else {
            args.canned
        },
        responder: ResponderLaunch {
            exe: std::env::current_exe().map_err(|e| format!("own executable: {e}"))?,
        },
        out: args.out,
        command,
        placement,
        count_syscalls: !args.no_syscalls,
    };
    let (md, clean) = matrix::run(&config)?;
    println!("{md}");
    Ok(clean)
}
