//! `spoa`: HAProxy's IP-reputation agent, in Rust.

mod cli;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use runtime_std::ServerConfig;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::cli::{limit, Cli, RuntimeChoice, DEFAULT_WORKERS};
use spoa::reputation::Factory;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.debug);
    if cli.check_runtime {
        return check_runtime(&cli);
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        // glommio warns when it cannot register its I/O buffers with io_uring (a low
        // RLIMIT_MEMLOCK without CAP_IPC_LOCK): those buffers serve file I/O only, which this
        // agent never does, so the warning would only alarm operators.
        .filter_module("glommio::sys::uring", log::LevelFilter::Error)
        .format_timestamp_millis()
        .init();
}

/// The runtime that will serve, and with how many workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runtime {
    Std,
    #[cfg(target_os = "linux")]
    Uring,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::Std => "std",
            #[cfg(target_os = "linux")]
            Runtime::Uring => "uring",
        }
    }
}

/// What `--runtime` and `-n` come to on this machine.
struct Choice {
    runtime: Runtime,
    workers: usize,
    /// Why `--runtime auto` did not take uring.
    fallback: Option<String>,
}

/// Picks the runtime: uring when asked and possible (an error saying why not otherwise), std
/// when asked, and for `auto` uring where [`runtime_uring::probe`] passes, else std.
fn choose(cli: &Cli) -> Result<Choice, String> {
    let std_workers = usize::from(cli.workers.unwrap_or(DEFAULT_WORKERS));
    let std = |fallback| Choice {
        runtime: Runtime::Std,
        workers: std_workers,
        fallback,
    };
    match cli.runtime {
        RuntimeChoice::Std => Ok(std(None)),
        RuntimeChoice::Uring | RuntimeChoice::Auto => match probe_uring(cli) {
            Ok(choice) => Ok(choice),
            Err(why) if cli.runtime == RuntimeChoice::Auto => Ok(std(Some(why))),
            Err(why) => Err(format!(
                "--runtime uring cannot run here: {why} (or use --runtime std)"
            )),
        },
    }
}

#[cfg(target_os = "linux")]
fn probe_uring(cli: &Cli) -> Result<Choice, String> {
    // Without -n, as many executors as there are CPUs to pin them to, up to the default.
    let workers = cli.workers.map(usize::from).unwrap_or_else(|| {
        usize::from(DEFAULT_WORKERS).min(runtime_uring::usable_cpus().len().max(1))
    });
    runtime_uring::probe(workers).map_err(|why| why.to_string())?;
    Ok(Choice {
        runtime: Runtime::Uring,
        workers,
        fallback: None,
    })
}

#[cfg(not(target_os = "linux"))]
fn probe_uring(_cli: &Cli) -> Result<Choice, String> {
    Err("io_uring is Linux only".into())
}

/// `--check-runtime`: whether the chosen runtime can run here, and nothing else.
fn check_runtime(cli: &Cli) -> ExitCode {
    match choose(cli) {
        Ok(Choice {
            runtime,
            fallback: None,
            workers,
        }) => {
            println!("{} available ({workers} workers)", runtime.name());
            ExitCode::SUCCESS
        }
        Ok(Choice {
            fallback: Some(why),
            ..
        }) => {
            println!("std available; uring is not: {why}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("{why}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let choice = choose(cli)?;
    if let Some(why) = &choice.fallback {
        log::warn!("runtime auto: io_uring cannot be used, running the std runtime: {why}");
    }
    if cli.spin_us > 0 && choice.runtime == Runtime::Std {
        log::warn!("--spin-us applies to the uring runtime only: ignored");
    }
    let config = ServerConfig {
        addresses: cli.listen_addresses(),
        workers: choice.workers,
        engine: spop_core::Config {
            max_frame_size: cli.max_frame_size,
            capabilities: cli.capabilities(),
        },
        max_connections: cli.max_connections,
        hello_timeout: limit(cli.hello_timeout),
        frame_timeout: limit(cli.frame_timeout),
        write_timeout: limit(cli.write_timeout),
        shutdown_timeout: Duration::from_secs_f64(cli.shutdown_timeout.max(0.0)),
        allow_from: cli.allow_from.clone(),
    };
    raise_open_files_limit(config.max_connections);
    let seed = cli.seed.unwrap_or_else(random_seed);
    let scores = spoa::reload::start(&cli.scores, cli.scores_watch(), cli.default_score)?;
    let factory = Factory::new(seed, cli.delay())
        .with_default_score(cli.default_score)
        .with_scores(scores.clone());

    // The same three steps on either runtime: bind, log the startup line, serve until a signal.
    let (addresses, details, stop, serve): (Vec<SocketAddr>, String, StopFn, ServeFn) = match choice
        .runtime
    {
        Runtime::Std => {
            let server = runtime_std::Server::bind(config.clone()).map_err(|e| e.to_string())?;
            let handle = server.shutdown_handle();
            (
                server.local_addrs(),
                String::new(),
                Box::new(move || handle.shutdown()),
                Box::new(move || server.run(factory)),
            )
        }
        #[cfg(target_os = "linux")]
        Runtime::Uring => {
            let options = runtime_uring::UringOptions {
                spin: cli.spin(),
                ..Default::default()
            };
            let server =
                runtime_uring::Server::bind(config.clone(), options).map_err(|e| e.to_string())?;
            let handle = server.shutdown_handle();
            let cpus: Vec<String> = server.cpus().iter().map(|c| c.to_string()).collect();
            let mut details = format!(" on CPUs {}", cpus.join(","));
            if let Some(spin) = cli.spin() {
                details.push_str(&format!(", spin {} us", spin.as_micros()));
            }
            (
                server.local_addrs(),
                details,
                Box::new(move || handle.shutdown()),
                Box::new(move || server.run(factory)),
            )
        }
    };
    let addresses: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    log::info!(
        "spoa {} listening on {}; runtime {}, {} workers{details}, max-frame-size {}, capabilities {}{}",
        env!("CARGO_PKG_VERSION"),
        addresses.join(", "),
        choice.runtime.name(),
        config.workers,
        config.engine.max_frame_size,
        config.engine.capabilities,
        cli.seed.map(|s| format!(", seed {s}")).unwrap_or_default(),
    );
    watch_signals(stop)?;
    let left = serve().map_err(|e| e.to_string())?;
    if left == 0 {
        log::info!("stopped: all connections drained");
    } else {
        log::info!("stopped: {left} connections cut at the shutdown timeout");
    }
    if let Some(scores) = scores {
        let spoa::reload::Lookups { lookups, hits } = scores.lookups();
        log::info!("scores: {lookups} lookups, {hits} found in a list");
    }
    Ok(())
}

/// Starts a graceful stop of the running server.
type StopFn = Box<dyn Fn() + Send>;
/// Serves until stopped; returns the connections cut at the shutdown timeout.
type ServeFn = Box<dyn FnOnce() -> std::io::Result<usize>>;

/// SIGINT/SIGTERM: the first starts a graceful drain, a second exits at once.
fn watch_signals(stop: StopFn) -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen == 1 {
                    log::info!("signal {signal}: stopping (send it again to exit at once)");
                    stop();
                } else {
                    log::warn!("second signal {signal}: exiting now");
                    std::process::exit(1);
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}

/// Every connection is a descriptor: take the hard limit on open files (HAProxy reopens all its
/// agent connections at once on reload), and say what the agent has.
fn raise_open_files_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            log::info!("open files limit: {limit}");
            if (limit as usize) < max_connections + 64 {
                log::warn!(
                    "open files limit {limit} is below --max-connections {max_connections}: \
                     connections past it fail at accept (raise LimitNOFILE= / ulimit -Hn)"
                );
            }
        }
        Err(e) => log::warn!("cannot raise the open files limit: {e}"),
    }
}

/// A seed from the OS's randomness (std's hasher keys come from it).
fn random_seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish()
}
