//! `spoa`: HAProxy's random IP-reputation agent, in Rust.

mod cli;
mod reputation;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use runtime_std::{Server, ServerConfig};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::cli::{limit, Cli, RuntimeChoice};
use crate::reputation::Factory;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.debug);
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
        .format_timestamp_millis()
        .init();
}

fn run(cli: &Cli) -> Result<(), String> {
    let config = ServerConfig {
        addresses: cli.listen_addresses(),
        workers: usize::from(cli.workers),
        engine: spop_core::Config {
            max_frame_size: cli.max_frame_size,
            capabilities: cli.capabilities(),
        },
        max_connections: cli.max_connections,
        hello_timeout: limit(cli.hello_timeout),
        frame_timeout: limit(cli.frame_timeout),
        write_timeout: limit(cli.write_timeout),
        shutdown_timeout: Duration::from_secs_f64(cli.shutdown_timeout.max(0.0)),
    };
    let seed = cli.seed.unwrap_or_else(random_seed);
    let factory = Factory::new(seed, cli.delay());

    let runtime = match cli.runtime {
        RuntimeChoice::Uring => {
            return Err(
                "the uring runtime is not built into this binary yet; use --runtime std".into(),
            )
        }
        RuntimeChoice::Auto | RuntimeChoice::Std => "std",
    };

    let server = Server::bind(config.clone()).map_err(|e| e.to_string())?;
    let addresses: Vec<String> = server.local_addrs().iter().map(|a| a.to_string()).collect();
    log::info!(
        "spoa {} listening on {}; runtime {runtime}, {} workers, max-frame-size {}, capabilities {}{}",
        env!("CARGO_PKG_VERSION"),
        addresses.join(", "),
        config.workers,
        config.engine.max_frame_size,
        config.engine.capabilities,
        cli.seed.map(|s| format!(", seed {s}")).unwrap_or_default(),
    );
    watch_signals(server.shutdown_handle())?;
    let left = server.run(factory).map_err(|e| e.to_string())?;
    if left == 0 {
        log::info!("stopped: all connections drained");
    } else {
        log::info!("stopped: {left} connections cut at the shutdown timeout");
    }
    Ok(())
}

/// SIGINT/SIGTERM: the first starts a graceful drain, a second exits at once.
fn watch_signals(handle: runtime_std::ShutdownHandle) -> Result<(), String> {
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
                    handle.shutdown();
                } else {
                    log::warn!("second signal {signal}: exiting now");
                    std::process::exit(1);
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}

/// A seed from the OS's randomness (std's hasher keys come from it).
fn random_seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish()
}
