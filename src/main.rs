//! `spoa`: HAProxy's IP-reputation agent, in Rust.

mod cli;
#[cfg(target_os = "linux")]
mod colocation;
mod logging;
mod metrics;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::ExitCode;

use clap::Parser;
use runtime_core::{ListenAddress, ServerConfig};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::cli::{limit, Cli, Generate, RuntimeChoice, DEFAULT_WORKERS};
use spoa::reputation::Factory;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(what) = cli.generate {
        return generate(what);
    }
    let default_level = if cli.debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    logging::init(cli.log_format, cli.log_level, default_level);
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

/// `--generate`: the man page or a shell's completions, from the clap definition itself, so
/// they never drift from `--help`.
fn generate(what: Generate) -> ExitCode {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    let shell = match what {
        Generate::Man => {
            return match man_page(command, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cannot write the man page: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Generate::Bash => Shell::Bash,
        Generate::Zsh => Shell::Zsh,
        Generate::Fish => Shell::Fish,
        Generate::Elvish => Shell::Elvish,
        Generate::Powershell => Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut command, "spoa", &mut out);
    ExitCode::SUCCESS
}

/// The man page: clap_mangen's sections for the flags, then `--help`'s closing sections
/// (HAPROXY CONFIGURATION, WORKERS...) as sections of their own, kept as laid out (their
/// configuration excerpts must not be refilled).
fn man_page(command: clap::Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let mut verbatim = false;
    for line in cli::AFTER_HELP.lines() {
        match line.strip_suffix(':') {
            Some(heading) if !line.starts_with(' ') => {
                if verbatim {
                    writeln!(out, ".fi")?;
                }
                writeln!(out, ".SH {}\n.nf", roff_line(heading))?;
                verbatim = true;
            }
            _ => writeln!(out, "{}", roff_line(line))?,
        }
    }
    if verbatim {
        writeln!(out, ".fi")?;
    }
    man.render_version_section(out)
}

/// A line of text as roff shows it verbatim: backslashes escaped, and no line starting with a
/// control character.
fn roff_line(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
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
    /// The CPUs uring's executors are pinned to, one each (none for std): worked out once, for
    /// the co-location check, `--check-runtime` and the server, which is given exactly these.
    cpus: Vec<usize>,
    /// Why `--runtime auto` did not take uring.
    fallback: Option<Fallback>,
}

/// Why `--runtime auto` runs std.
enum Fallback {
    /// io_uring cannot run here; the reason and its fix.
    Unavailable(String),
    /// uring could run, but HAProxy may run on the CPUs its executors would be pinned to.
    SharesCpus(String),
}

impl std::fmt::Display for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fallback::Unavailable(why) => write!(f, "io_uring cannot be used: {why}"),
            Fallback::SharesCpus(why) => f.write_str(why),
        }
    }
}

/// Picks the runtime: uring when asked and possible (an error saying why not otherwise), std
/// when asked, and for `auto` uring where [`runtime_uring::probe`] passes and no HAProxy
/// process may run on the CPUs its executors would be pinned to ([`colocation`]), else std.
fn choose(cli: &Cli) -> Result<Choice, String> {
    // std has no workers: a thread per connection.
    let std = |fallback| Choice {
        runtime: Runtime::Std,
        workers: 1,
        cpus: Vec::new(),
        fallback,
    };
    match cli.runtime {
        RuntimeChoice::Std => Ok(std(None)),
        RuntimeChoice::Auto => match probe_uring(cli) {
            Ok(choice) => Ok(match shares_cpus_with_haproxy(&choice) {
                Some(why) => std(Some(Fallback::SharesCpus(why))),
                None => choice,
            }),
            Err(Unusable::Unavailable(why)) => Ok(std(Some(Fallback::Unavailable(why)))),
            Err(Unusable::Placement(why)) => Err(why),
        },
        RuntimeChoice::Uring => match probe_uring(cli) {
            Ok(choice) => Ok(choice),
            Err(Unusable::Unavailable(why)) => Err(format!(
                "--runtime uring cannot run here: {why} (or use --runtime std)"
            )),
            Err(Unusable::Placement(why)) => Err(why),
        },
    }
}

/// Why uring is not chosen.
enum Unusable {
    /// io_uring cannot run here: `auto` runs std instead.
    Unavailable(String),
    /// The executors cannot be placed as asked (`--cpus`, `-n`): an operator's error, whatever
    /// the runtime choice.
    Placement(String),
}

#[cfg(target_os = "linux")]
fn probe_uring(cli: &Cli) -> Result<Choice, Unusable> {
    // Without -n: one executor per CPU of --cpus, else as many as there are CPUs to pin them
    // to, up to the default.
    let workers = cli
        .workers
        .map(usize::from)
        .unwrap_or_else(|| match &cli.cpus {
            Some(cpus) => cpus.0.len(),
            None => usize::from(DEFAULT_WORKERS).min(runtime_uring::usable_cpus().len().max(1)),
        });
    runtime_uring::probe(workers).map_err(|why| Unusable::Unavailable(why.to_string()))?;
    let cpus = runtime_uring::spread_cpus(workers, cli.cpus.as_ref().map(|c| &c.0[..]))
        .map_err(|why| Unusable::Placement(why.to_string()))?;
    Ok(Choice {
        runtime: Runtime::Uring,
        workers,
        cpus,
        fallback: None,
    })
}

/// For `--runtime auto`: a HAProxy process that may run on the CPUs the uring executors would
/// be pinned to, said as the reason to run std instead.
#[cfg(target_os = "linux")]
fn shares_cpus_with_haproxy(uring: &Choice) -> Option<String> {
    let cpus = &uring.cpus;
    let sharing = colocation::haproxy_on(cpus)?;
    Some(format!(
        "HAProxy (pid {}) may run on CPU {}, where uring would pin its executors ({}); sharing \
         CPUs with HAProxy, std is measured faster. Give the agent CPUs of its own with --cpus \
         (away from HAProxy's cpu-map) for uring, or choose with --runtime",
        sharing.pid,
        runtime_core::format_cpu_list(&sharing.cpus),
        runtime_core::format_cpu_list(cpus),
    ))
}

#[cfg(not(target_os = "linux"))]
fn shares_cpus_with_haproxy(_uring: &Choice) -> Option<String> {
    None
}

#[cfg(not(target_os = "linux"))]
fn probe_uring(_cli: &Cli) -> Result<Choice, Unusable> {
    Err(Unusable::Unavailable("io_uring is Linux only".into()))
}

/// Where uring's executors run, one per CPU: "1 worker on CPU 0", "2 workers on CPUs 0-1".
#[cfg(target_os = "linux")]
fn workers_on(cpus: &[usize]) -> String {
    match cpus {
        [cpu] => format!("1 worker on CPU {cpu}"),
        _ => format!(
            "{} workers on CPUs {}",
            cpus.len(),
            runtime_core::format_cpu_list(cpus)
        ),
    }
}

/// `--check-runtime`: whether the chosen runtime can run here, and nothing else.
fn check_runtime(cli: &Cli) -> ExitCode {
    match choose(cli) {
        Ok(Choice {
            fallback: Some(why),
            ..
        }) => {
            println!("std chosen; {why}");
            ExitCode::SUCCESS
        }
        Ok(choice) => {
            match choice.runtime {
                Runtime::Std => println!("std available (a thread per connection)"),
                #[cfg(target_os = "linux")]
                Runtime::Uring => println!("uring can run: {}", workers_on(&choice.cpus)),
            }
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("{why}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    // First, while the process has one thread: it edits the environment.
    let (inherited, adopted) = inherited_sockets(cli)?;
    let passed_by_manager = inherited.is_some();
    let hand_over = hand_over(cli);
    let choice = choose(cli)?;
    // Where the agent listens: the sockets the service manager passed, or the -a addresses.
    let addresses = match &inherited {
        Some(listeners) => listeners.addresses(),
        None => cli.listen_addresses(),
    };
    warn_of_ignored_options(cli, &choice, passed_by_manager, &addresses);
    let config = server_config(cli, &choice, addresses);
    raise_open_files_limit(config.max_connections);
    let seed = cli.seed.unwrap_or_else(random_seed);
    let scores = spoa::reload::start(&cli.scores, cli.scores_watch(), cli.default_score)?;
    let factory = Factory::new(seed, cli.delay())
        .with_default_score(cli.default_score)
        .with_scores(scores.clone());

    // The same steps on either runtime: bind, log the startup line, serve until a signal.
    let handed_over = adopted.len();
    let listeners = match inherited {
        Some(listeners) => listeners,
        None => bind(&config)?,
    };
    let hand_overs = HandOvers {
        adopted,
        at_stop: hand_over,
    };
    let started = match choice.runtime {
        Runtime::Std => start_std(&config, listeners, hand_overs, factory),
        #[cfg(target_os = "linux")]
        Runtime::Uring => start_uring(cli, &choice, &config, listeners, hand_overs, factory)?,
    };
    // Before the startup line: whoever waits for that line can scrape at once.
    if let Some(address) = cli.metrics_address {
        let bound = metrics::serve(
            address,
            config.metrics.clone(),
            choice.runtime.name(),
            scores.clone(),
        )?;
        log::info!("metrics at http://{bound}/metrics");
    }
    let addresses = log_startup(
        cli,
        &config,
        choice.runtime,
        &started,
        passed_by_manager,
        handed_over,
    );
    systemd_notify(ServiceState::Ready {
        status: &format!("listening on {}", addresses.join(", ")),
    });
    watch_signals(started.stop)?;
    let left = (started.serve)().map_err(|e| e.to_string())?;
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

/// Warns of each option given that the chosen runtime or the listeners in use do not apply, so
/// that an operator who set it learns it changed nothing.
fn warn_of_ignored_options(
    cli: &Cli,
    choice: &Choice,
    passed_by_manager: bool,
    addresses: &[ListenAddress],
) {
    if let Some(why) = &choice.fallback {
        log::warn!("runtime auto: running the std runtime: {why}");
    }
    if choice.runtime == Runtime::Std {
        if cli.spin_us > 0 {
            log::warn!("--spin-us applies to the uring runtime only: ignored");
        }
        if cli.cpus.is_some() {
            log::warn!(
                "--cpus applies to the uring runtime only (run std under taskset to place it): ignored"
            );
        }
        if cli.workers.is_some() {
            log::warn!("-n applies to the uring runtime only (std serves each connection on its own thread): ignored");
        }
    }
    if (cli.unix_mode.is_some() || cli.unix_owner.is_some())
        && (passed_by_manager || !cli.has_unix_address())
    {
        log::warn!(
            "--unix-mode and --unix-owner apply to the -a unix:/PATH sockets the agent binds only: ignored"
        );
    }
    if !cli.allow_from.is_empty() && addresses.iter().all(|a| a.tcp().is_none()) {
        log::warn!(
            "--allow-from applies to TCP listeners only (a Unix socket's file mode and owner say who may connect): ignored"
        );
    }
}

/// What the runtimes share: the listeners, the limits and timeouts, the engine's settings.
fn server_config(cli: &Cli, choice: &Choice, addresses: Vec<ListenAddress>) -> ServerConfig {
    ServerConfig {
        addresses,
        unix: cli.unix_permissions(),
        workers: choice.workers,
        engine: spop_core::Config {
            max_frame_size: cli.max_frame_size,
            capabilities: cli.capabilities(),
        },
        max_connections: cli.max_connections,
        hello_timeout: limit(cli.hello_timeout),
        frame_timeout: limit(cli.frame_timeout),
        write_timeout: limit(cli.write_timeout),
        shutdown_timeout: cli.shutdown_timeout,
        allow_from: cli.allow_from.clone(),
        metrics: if cli.metrics_address.is_some() {
            runtime_core::Metrics::enabled()
        } else {
            runtime_core::Metrics::default()
        },
    }
}

/// Binds the configured addresses; an address in use says which option moves the agent.
fn bind(config: &ServerConfig) -> Result<runtime_core::Listeners, String> {
    runtime_core::listen_all(&config.addresses, &config.unix).map_err(|e| {
        // Whoever holds the address was named; what the operator can change is ours to say.
        let only_unix = config
            .addresses
            .iter()
            .all(|a| matches!(a, ListenAddress::Unix(_)));
        match e.kind() {
            std::io::ErrorKind::AddrInUse if only_unix => format!("{e}; choose another -a"),
            std::io::ErrorKind::AddrInUse => format!("{e}; choose another -p or -a"),
            _ => e.to_string(),
        }
    })
}

/// Connections handed over: those the previous agent passed, and where this one's go at its
/// stop (`None`: ended with AGENT-DISCONNECT).
struct HandOvers {
    adopted: AdoptedConnections,
    at_stop: Option<runtime_core::handoff::HandOver>,
}

/// A server set up on its runtime, not yet serving.
struct Started {
    /// Where it listens (a port of 0 resolved).
    addresses: Vec<ListenAddress>,
    /// The runtime's part of the startup line.
    details: String,
    stop: StopFn,
    serve: ServeFn,
}

fn start_std(
    config: &ServerConfig,
    listeners: runtime_core::Listeners,
    hand_overs: HandOvers,
    factory: Factory,
) -> Started {
    let mut server = runtime_std::Server::with_listeners(config.clone(), listeners);
    server.adopt(hand_overs.adopted);
    if let Some(at_stop) = hand_overs.at_stop {
        server.hand_over_at_stop(at_stop);
    }
    let handle = server.shutdown_handle();
    Started {
        addresses: server.listen_addresses(),
        details: "a thread per connection".to_string(),
        stop: Box::new(move || handle.shutdown()),
        serve: Box::new(move || server.run(factory)),
    }
}

#[cfg(target_os = "linux")]
fn start_uring(
    cli: &Cli,
    choice: &Choice,
    config: &ServerConfig,
    listeners: runtime_core::Listeners,
    hand_overs: HandOvers,
    factory: Factory,
) -> Result<Started, String> {
    let options = runtime_uring::UringOptions {
        spin: cli.spin(),
        // The placement the co-location check saw: one executor on each of these CPUs.
        cpus: Some(choice.cpus.clone()),
        ..Default::default()
    };
    let mut server = runtime_uring::Server::with_listeners(config.clone(), options, listeners)
        .map_err(|e| e.to_string())?;
    server.adopt(hand_overs.adopted);
    if let Some(at_stop) = hand_overs.at_stop {
        server.hand_over_at_stop(at_stop);
    }
    let handle = server.shutdown_handle();
    let mut details = workers_on(server.cpus());
    if let Some(spin) = cli.spin() {
        details.push_str(&format!(", spin {} us", spin.as_micros()));
    }
    // Said once, at startup, for whoever compares kernels: which receive path this one gets.
    // A detail of the I/O, not of the setup: at debug level.
    log::debug!(
        "{}",
        if runtime_uring::receive_poll_first_supported() {
            "io_uring: a receive queued with a reply waits for data first \
             (IORING_RECVSEND_POLL_FIRST)"
        } else {
            "io_uring: plain receives (IORING_RECVSEND_POLL_FIRST needs Linux 5.19)"
        }
    );
    Ok(Started {
        addresses: server.listen_addresses(),
        details,
        stop: Box::new(move || handle.shutdown()),
        serve: Box::new(move || server.run(factory)),
    })
}

/// Logs where each Unix socket is and the startup line, which operators and the tests wait
/// for; returns the listening addresses as written there.
fn log_startup(
    cli: &Cli,
    config: &ServerConfig,
    runtime: Runtime,
    started: &Started,
    passed_by_manager: bool,
    handed_over: usize,
) -> Vec<String> {
    #[cfg(unix)]
    for address in &started.addresses {
        if let ListenAddress::Unix(path) = address {
            log::info!(
                "unix socket {}: {} (HAProxy's user needs write permission on it)",
                path.display(),
                runtime_core::describe_socket_file(path)
            );
        }
    }
    let addresses: Vec<String> = started.addresses.iter().map(|a| a.to_string()).collect();
    log::info!(
        "spoa {} listening on {}{}{}; runtime {}, {}, max-frame-size {}, capabilities {}{}",
        env!("CARGO_PKG_VERSION"),
        addresses.join(", "),
        if passed_by_manager {
            "; sockets passed by the service manager"
        } else {
            ""
        },
        if handed_over > 0 {
            format!("; {handed_over} connections handed over by the previous agent")
        } else {
            String::new()
        },
        runtime.name(),
        started.details,
        config.engine.max_frame_size,
        config.engine.capabilities,
        cli.seed.map(|s| format!(", seed {s}")).unwrap_or_default(),
    );
    addresses
}

/// Where open connections go at the stop: the service manager's store with
/// `--hand-over-connections` and a NOTIFY_SOCKET; `None`: they are ended with AGENT-DISCONNECT.
fn hand_over(cli: &Cli) -> Option<runtime_core::handoff::HandOver> {
    use runtime_core::handoff::{FdStore, HandOver};
    if !cli.hand_over_connections {
        return None;
    }
    let Some(store) = FdStore::from_environment() else {
        log::warn!(
            "--hand-over-connections needs a service manager's NOTIFY_SOCKET (systemd \
             Type=notify): ignored, connections are ended with AGENT-DISCONNECT at the stop"
        );
        return None;
    };
    // systemd 254 and later say how many descriptors the store takes.
    if std::env::var("FDSTORE").as_deref() == Ok("0") {
        log::warn!(
            "--hand-over-connections: the service manager's descriptor store is off \
             (FDSTORE=0: set FileDescriptorStoreMax= in the unit): ignored"
        );
        return None;
    }
    log::info!(
        "open connections are handed over to the next agent at the stop, through {}",
        store.socket().display()
    );
    Some(HandOver::new(store))
}

/// Connections handed over by the previous agent, passed beside the listening sockets.
type AdoptedConnections = Vec<runtime_core::handoff::Adopted>;

/// The listening sockets a service manager passed (systemd socket activation: LISTEN_FDS), if
/// any (`None`: bind `-a`/`-p`), and the connections a previous agent handed over. Refuses
/// listening sockets the agent cannot serve on.
fn inherited_sockets(
    cli: &Cli,
) -> Result<(Option<runtime_core::Listeners>, AdoptedConnections), String> {
    use runtime_core::inherit::{take_from_environment, Takeover};
    match take_from_environment().map_err(|e| format!("cannot use the inherited sockets: {e}"))? {
        Takeover::Bind => Ok((None, Vec::new())),
        Takeover::Ignored { listen_pid } => {
            log::warn!(
                "LISTEN_FDS is set for process {}, not this one ({}): ignored, binding {}",
                listen_pid.as_deref().unwrap_or("(no LISTEN_PID)"),
                std::process::id(),
                cli.listen_addresses()
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok((None, Vec::new()))
        }
        Takeover::Sockets {
            listeners: inherited,
            connections,
        } => {
            // Each handed-over connection is logged by the runtime that adopts it.
            if inherited.is_empty() {
                return Ok((None, connections));
            }
            for socket in &inherited {
                log::info!(
                    "inherited listener: descriptor {}{} on {}",
                    socket.fd,
                    socket
                        .name
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default(),
                    socket.address
                );
            }
            if !cli.addresses.is_empty() {
                log::info!(
                    "-a/--address (SPOA_ADDRESS) not bound: the service manager's sockets replace it"
                );
            }
            Ok((
                Some(runtime_core::Listeners::adopted(
                    inherited.into_iter().map(|s| s.listener).collect(),
                )),
                connections,
            ))
        }
    }
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
                    systemd_notify(ServiceState::Stopping);
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

/// What the agent tells systemd (`Type=notify`).
enum ServiceState<'a> {
    /// Every listener is bound: units ordered after this one (HAProxy) may start.
    Ready { status: &'a str },
    /// A graceful stop began.
    Stopping,
}

/// Tells systemd how the service is doing; nothing happens without NOTIFY_SOCKET (not started
/// by systemd, or not as `Type=notify`).
fn systemd_notify(state: ServiceState<'_>) {
    #[cfg(target_os = "linux")]
    {
        use sd_notify::NotifyState;
        let result = match state {
            ServiceState::Ready { status } => {
                sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)])
            }
            ServiceState::Stopping => sd_notify::notify(false, &[NotifyState::Stopping]),
        };
        if let Err(e) = result {
            log::warn!("cannot notify systemd through NOTIFY_SOCKET: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = state;
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
