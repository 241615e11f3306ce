//! The command line: the seed agent's `spoa [-h] [-d] [-p port] [-n workers]`, plus what operators
//! of the C agent expect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use runtime_core::{ListenAddress, UnixPermissions};
use spop_core::Capabilities;

pub const AFTER_HELP: &str = "\
HAPROXY CONFIGURATION (see examples/haproxy/):
  In the SPOE file (spoe-ip-reputation.conf):
      [ip-reputation]
      spoe-agent iprep-agent
          messages check-client-ip
          option var-prefix iprep
          timeout hello 100ms
          timeout idle 30s
          timeout processing 100ms    # the seed's 15ms is shorter than a restart
          use-backend iprep-backend
      spoe-message check-client-ip
          args src
          event on-client-session
  In haproxy.cfg:
      frontend my-front
          filter spoe engine ip-reputation config /path/spoe-ip-reputation.conf
          tcp-request content reject if { var(sess.iprep.ip_score) -m int lt 20 }
      backend iprep-backend
          mode tcp
          timeout server 1m
          server iprep-srv 127.0.0.1:12345 check
          option spop-check
  (No maxconn on that server line: the seed's maxconn 5 queues the SPOE events behind 5
  agent connections and cost 3-25x in requests/s; see the README's HAProxy tuning.)

WORKERS (-n):
  uring runtime: one io_uring executor per worker, each pinned to its own CPU; executor 0
    accepts and hands each connection to the executor with the fewest. More workers than
    the CPUs this process may use is refused with a message (--runtime auto then runs std);
    without -n, the uring runtime takes 5 or the number of usable CPUs, whichever is less.
  std runtime: ignores -n. Every connection runs on its own thread (bounded by
    --max-connections), with its own handler.
  Each uring worker, or each std connection, draws scores from its own generator: no lock per
  request.

RUNTIMES (--runtime):
  uring needs Linux 5.8+, io_uring allowed (sysctl kernel.io_uring_disabled, seccomp: container
  default profiles block it) and RLIMIT_MEMLOCK >= 512 KiB (systemd: LimitMEMLOCK=infinity;
  shell: ulimit -l unlimited). --runtime uring exits with the reason when one is missing;
  --runtime auto logs it and runs std. auto also runs std when a HAProxy process (its
  workers; a master is left out) may run on a CPU uring would pin an executor to: sharing
  CPUs with HAProxy, std was measured faster. --cpus away from HAProxy's cpu-map gives uring.

SCORES FROM CIDR LISTS (--scores FILE, repeatable):
  Each line is a network (CIDR, or a plain address: a /32 or /128) and a score 0..=100:
      # abusive networks
      192.0.2.0/24      5
      198.51.100.7      0      # a comment
      2001:db8::/32     10
  The longest network holding the client's address gives ip_score; an address in no list
  gets --default-score N, or a random score without it (the seed agent's behaviour). The same
  network in several files: the later file wins (give allow lists after block lists). A
  malformed line stops the startup with file:line and the reason.
  Reload without restarting or dropping a connection:  kill -HUP <spoa pid>
  (or --scores-watch TIME). The new table is built aside and swapped in; a reload that meets a
  malformed line keeps the table in use and logs file:line and why. Every load logs the
  networks per file, the total and the time taken; a reload also logs the lookups so far and
  how many found the address in a list.

UNIX SOCKETS (-a unix:/PATH):
  On the box of HAProxy, the agent can listen on a socket file instead of TCP:
      spoa -a unix:/run/spoa/spoa.sock --unix-mode 0660 --unix-owner spoa:haproxy
  and in haproxy.cfg's agent backend:
      server iprep-srv unix@/run/spoa/spoa.sock check
  HAProxy's user needs write permission on the file (here through its group) and search
  permission on the directory. --allow-from does not apply to Unix sockets: the file's mode
  and owner are their access control. A socket file left by an agent that was killed is
  replaced at start (logged); a path where an agent is listening, or a file that is not a
  socket, stops the startup. The file is removed at a clean stop (SIGTERM, SIGINT).

SOCKET ACTIVATION (systemd: examples/systemd/spoa.socket):
  Started with LISTEN_FDS and LISTEN_PID (a .socket unit with ListenStream=, Accept=no), the
  agent serves on the listening sockets it is given instead of binding -a/-p, and logs each
  one. systemd keeps them open across `systemctl restart spoa`: HAProxy's connections wait in
  the queue while the old agent drains and the new one starts, instead of being refused. A
  socket file (ListenStream=/run/spoa/spoa.sock) is systemd's: its mode and owner come from
  SocketMode=, SocketUser=, SocketGroup= (not --unix-mode, --unix-owner), and it stays when
  the agent stops. A passed descriptor that is not a listening TCP or Unix stream socket
  stops the startup with the reason.

RESTARTS WITHOUT A FAILED REQUEST (--hand-over-connections):
  Socket activation alone still ends each open connection with AGENT-DISCONNECT at the stop,
  and a NOTIFY HAProxy sends in that instant fails (about 1 request in 20 restarts under
  load). With --hand-over-connections (examples/systemd/spoa.service: Type=notify,
  FileDescriptorStoreMax=), the stopping agent passes each connection, at its next frame
  boundary, to systemd (FDSTORE=1, named with what its handshake fixed), closes its copy
  without a word and exits; systemd passes the connections to the new agent beside the
  listening socket, which serves them as established sessions. HAProxy sees no disconnect: a
  NOTIFY sent meanwhile waits in the socket until the new agent reads it, so HAProxy's SPOE
  `timeout processing` must outlast the restart (the stop, about 50 ms, plus the start).
  A connection that reaches no frame boundary within half of --shutdown-timeout is ended as
  without the option. The stop logs one line: how many connections were handed over, ended,
  cut. A stored descriptor the new agent cannot take (a bad name, not a connected socket) is
  refused with a log line and closed; the others are served. Without NOTIFY_SOCKET the option
  is ignored with a warning.

SCALING PAST ONE BOX:
  List several agents as servers of one backend; HAProxy spreads SPOE connections over them:
      server agent1 10.0.0.11:12345 check
      server agent2 10.0.0.12:12345 check
  and start each agent with -a 0.0.0.0 (the agent has no authentication: firewall it).

ENVIRONMENT:
  Every flag can also come from the environment variable shown with it ([env: SPOA_...]), for
  systemd units and containers: SPOA_PORT=12345 SPOA_WORKERS=2 SPOA_PROCESSING_DELAY=10ms.
  The command line wins over the environment. Repeatable flags take a comma-separated list
  (SPOA_ADDRESS=0.0.0.0,::  SPOA_ALLOW_FROM=10.0.0.0/8,192.0.2.1); SPOA_DEBUG=true or false.

MAN PAGE AND COMPLETIONS:
  spoa --generate man > spoa.1 (also bash, zsh, fish: shell completions from these flags).";

/// A Stream Processing Offload Agent for HAProxy: IP reputation.
///
/// Answers the SPOE message `check-client-ip` (the client's address) with `ip_score`, an
/// integer from 0 to 100 that HAProxy stores as `sess.<var-prefix>.ip_score`: from CIDR lists
/// with --scores, random otherwise. A drop-in replacement for HAProxy's C `spoa-example`: same
/// flags, same defaults, same variable.
#[derive(Debug, Parser)]
#[command(name = "spoa", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Debug mode: log every frame in and out, and every score given.
    #[arg(short = 'd', long = "debug", env = "SPOA_DEBUG")]
    pub debug: bool,

    /// Log line format: text (one human-readable line) or json (one object per line: time,
    /// level, target, message, and peer, connection, worker... where known).
    #[arg(long = "log-format", env = "SPOA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Least severe log lines printed: error, warn, info, debug or trace [default: info, debug
    /// with -d]. RUST_LOG (env_logger syntax, such as runtime_core=debug) still works: it refines
    /// per module, and sets the level when this flag is not given.
    #[arg(long = "log-level", env = "SPOA_LOG_LEVEL", value_name = "LEVEL", value_parser = parse_level)]
    pub log_level: Option<log::LevelFilter>,

    /// Serve Prometheus metrics at http://ADDR/metrics (IP:PORT, such as 127.0.0.1:9100), on a
    /// thread of its own. Off by default. No authentication: keep it on loopback or a
    /// management network.
    #[arg(
        long = "metrics-address",
        env = "SPOA_METRICS_ADDRESS",
        value_name = "ADDR",
        value_parser = parse_metrics_address
    )]
    pub metrics_address: Option<SocketAddr>,

    /// TCP port to listen on.
    #[arg(short = 'p', long = "port", env = "SPOA_PORT", default_value_t = 12345)]
    pub port: u16,

    /// Number of uring workers (see WORKERS below) [default: 5, at most the usable CPUs]; the std
    /// runtime ignores it.
    #[arg(short = 'n', long = "workers", env = "SPOA_WORKERS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,

    /// Address to listen on: IP, IP:PORT, or unix:/PATH (a Unix socket file, absolute path,
    /// reached by HAProxy as `server x unix@/PATH`; see UNIX SOCKETS); repeatable, TCP and Unix
    /// may be mixed. Default: 127.0.0.1 and ::1 only, since the agent has no authentication. Use
    /// 0.0.0.0 or :: to listen on every interface. Not bound when systemd passes listening
    /// sockets (see SOCKET ACTIVATION).
    #[arg(short = 'a', long = "address", env = "SPOA_ADDRESS", value_name = "ADDR", value_delimiter = ',', value_parser = parse_address)]
    pub addresses: Vec<AddressArg>,

    /// Permission bits of the -a unix: socket files, in octal (0660). Connecting needs write
    /// permission: give it to HAProxy's user or group [default: 0777 less the umask].
    #[arg(long = "unix-mode", env = "SPOA_UNIX_MODE", value_name = "MODE", value_parser = parse_mode)]
    pub unix_mode: Option<u32>,

    /// Owner of the -a unix: socket files: USER, USER:GROUP or :GROUP, names or numeric ids
    /// (spoa:haproxy lets HAProxy's group in with --unix-mode 0660). Changing the owner needs
    /// root (CAP_CHOWN); a group the agent's user is in does not [default: the agent's user and
    /// group].
    #[arg(long = "unix-owner", env = "SPOA_UNIX_OWNER", value_name = "USER[:GROUP]", value_parser = parse_owner)]
    pub unix_owner: Option<Owner>,

    /// Largest frame the agent accepts, in bytes (256 and up). The size used is the smaller of
    /// this and HAProxy's offer (tune.bufsize - 4); the default takes any tune.bufsize up to 64 KiB
    /// without fragmentation. With a larger tune.bufsize, raise -m to tune.bufsize - 4: below
    /// HAProxy's offer and without -c fragmentation, HAProxy 2.6 answers a NOTIFY too large for
    /// the agent with DISCONNECT status 10 and reconnects in a loop (the agent logs a warning
    /// when HAProxy offers more than -m).
    #[arg(short = 'm', long = "max-frame-size", env = "SPOA_MAX_FRAME_SIZE", default_value_t = spop_core::DEFAULT_MAX_FRAME_SIZE, value_parser = clap::value_parser!(u32).range(256..))]
    pub max_frame_size: u32,

    /// Capabilities announced to HAProxy, comma-separated or repeated: pipelining, async,
    /// fragmentation, or none. Default: pipelining. Fragmentation (HAProxy 2.x only) is useful
    /// only when -m is below HAProxy's frame size.
    #[arg(
        short = 'c',
        long = "capability",
        env = "SPOA_CAPABILITY",
        value_name = "CAP",
        value_delimiter = ','
    )]
    pub capabilities: Vec<CapabilityArg>,

    /// Runtime: uring (io_uring, thread-per-core, Linux), std (portable threads), or auto (uring
    /// where the kernel allows it and no HAProxy process may run on the CPUs its executors would
    /// take; else std, with a log line saying why). Measured: with many
    /// agent connections (HAProxy 3.x opens one per concurrent stream; 32 to 1,024 measured)
    /// uring answered 1.4x to 2.8x std's rate at less CPU per NOTIFY and a lower p99 in 9 of
    /// 10 runs; with one or two connections idle between requests std spends less CPU, unless
    /// uring spins (--spin-us) on CPUs of its own. Sharing two CPUs with HAProxy, std served
    /// 10-25 % more requests/s through it: pick std where the agent has no CPUs of its own
    /// (README, Runtimes and Benchmarks).
    #[arg(long = "runtime", env = "SPOA_RUNTIME", value_enum, default_value_t = RuntimeChoice::Auto)]
    pub runtime: RuntimeChoice,

    /// uring runtime: busy-poll this many microseconds before an idle executor sleeps. Answers
    /// a NOTIFY arriving within that time sooner, at the cost of a CPU kept busy per worker
    /// (0: sleep at once). A spin that finds nothing makes the executor sleep at once for its
    /// next 1, 2, 4 ... 64 waits, so an idle agent spins before one sleep in 64 at most. On CPUs
    /// of the agent's own, 50 is measured faster than std at every load shape, at about its
    /// CPU per NOTIFY or less. Sharing CPUs with HAProxy, it neither helps nor costs HAProxy
    /// (measured): prefer --runtime std there (README).
    #[arg(
        long = "spin-us",
        env = "SPOA_SPIN_US",
        value_name = "N",
        default_value_t = 0
    )]
    pub spin_us: u64,

    /// uring runtime: the CPUs executors may be pinned to, e.g. 2-3 or 1,3 (default: every CPU
    /// this process may use). On a box shared with HAProxy, list CPUs its cpu-map leaves free.
    /// Without -n, one worker per CPU listed.
    #[arg(long = "cpus", env = "SPOA_CPUS", value_name = "LIST")]
    pub cpus: Option<runtime_core::CpuList>,

    /// Only check that the chosen runtime can run here: prints "uring can run: N workers on
    /// CPUs ..." (exit 0) or why not (exit 1). For tests and install scripts.
    #[arg(long = "check-runtime", hide = true)]
    pub check_runtime: bool,

    /// Print the man page (man) or a shell's completions (bash, zsh, fish, elvish, powershell)
    /// generated from these flags, and exit: `spoa --generate man > spoa.1`.
    #[arg(long = "generate", hide = true, value_enum, value_name = "WHAT")]
    pub generate: Option<Generate>,
    /// Score file: lines of `CIDR SCORE` (IPv4 or IPv6, score 0..=100, # comments); repeatable,
    /// a later file overriding an earlier one for the same network. The longest network holding
    /// the client's address gives ip_score. Reloaded on SIGHUP (see SCORES FROM CIDR LISTS).
    #[arg(
        long = "scores",
        env = "SPOA_SCORES",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub scores: Vec<PathBuf>,

    /// Score of an address in no --scores list (or of every address, without lists) [default: a
    /// random score 0..=100, the seed agent's behaviour].
    #[arg(long = "default-score", env = "SPOA_DEFAULT_SCORE", value_name = "N", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub default_score: Option<u8>,

    /// Also reload the --scores files when one changes: checked every TIME (seconds, or with a unit), reloaded
    /// once the change has held for one check (0: on SIGHUP only). Replace files by renaming.
    #[arg(
        long = "scores-watch",
        env = "SPOA_SCORES_WATCH",
        value_name = "TIME",
        default_value = "0",
        value_parser = parse_seconds,
        requires = "scores"
    )]
    pub scores_watch: Duration,

    /// Seed for the score generators, for reproducible scores (default: random at each start).
    #[arg(long = "seed", env = "SPOA_SEED")]
    pub seed: Option<u64>,

    /// Wait this long before answering each check (to test HAProxy's timeout processing), like
    /// the C agent's -t: 10ms, 100us, 1s, 2m; a bare number is milliseconds. On the uring
    /// runtime the wait blocks the worker.
    #[arg(
        short = 't',
        long = "processing-delay",
        env = "SPOA_PROCESSING_DELAY",
        value_name = "TIME",
        default_value = "0",
        value_parser = parse_time
    )]
    pub processing_delay: Duration,

    /// Connections served at once; more are closed at accept with a log line.
    #[arg(
        long = "max-connections",
        env = "SPOA_MAX_CONNECTIONS",
        default_value_t = 10_000
    )]
    pub max_connections: usize,

    /// How long a new connection has to send its HAPROXY-HELLO: seconds, or with a unit (500ms);
    /// 0: no limit. Answered with AGENT-DISCONNECT 2.
    #[arg(
        long = "hello-timeout",
        env = "SPOA_HELLO_TIMEOUT",
        value_name = "TIME",
        default_value = "5",
        value_parser = parse_seconds,
    )]
    pub hello_timeout: Duration,

    /// How long a frame that has started has to arrive whole: seconds, or with a unit (500ms);
    /// 0: no limit. Idle connections
    /// between frames are never timed out: HAProxy keeps them in a pool.
    #[arg(
        long = "frame-timeout",
        env = "SPOA_FRAME_TIMEOUT",
        value_name = "TIME",
        default_value = "5",
        value_parser = parse_seconds,
    )]
    pub frame_timeout: Duration,

    /// How long a write may block on a peer that does not read its ACKs before the connection
    /// is closed: seconds, or with a unit (500ms); 0: no limit.
    #[arg(
        long = "write-timeout",
        env = "SPOA_WRITE_TIMEOUT",
        value_name = "TIME",
        default_value = "10",
        value_parser = parse_seconds,
    )]
    pub write_timeout: Duration,

    /// How long a graceful stop (SIGTERM, SIGINT) waits for connections to finish: seconds, or
    /// with a unit (500ms); a second signal exits at once.
    #[arg(
        long = "shutdown-timeout",
        env = "SPOA_SHUTDOWN_TIMEOUT",
        value_name = "TIME",
        default_value = "5",
        value_parser = parse_seconds,
    )]
    pub shutdown_timeout: Duration,

    /// At a stop (SIGTERM), hand each open HAProxy connection to the next agent through
    /// systemd's file-descriptor store instead of ending it with AGENT-DISCONNECT: no request
    /// fails across `systemctl restart`. Needs Type=notify (NOTIFY_SOCKET) and
    /// FileDescriptorStoreMax= in the unit; see RESTARTS WITHOUT A FAILED REQUEST below.
    #[arg(long = "hand-over-connections", env = "SPOA_HAND_OVER_CONNECTIONS")]
    pub hand_over_connections: bool,

    /// Accept connections only from this network (CIDR such as 10.0.0.0/8, or one address);
    /// repeatable. Others are closed at accept with a log line. Default: anyone who can reach the
    /// listen addresses, which are loopback only unless -a says otherwise. Does not apply to Unix
    /// sockets (-a unix:...), whose clients have no address: the socket file's mode and owner
    /// (--unix-mode, --unix-owner) say who may connect.
    #[arg(long = "allow-from", env = "SPOA_ALLOW_FROM", value_name = "CIDR", value_delimiter = ',', value_parser = parse_network)]
    pub allow_from: Vec<ipnet::IpNet>,
}

/// A time as the C agent's `-t` takes it: an integer with an optional unit (`us`, `ms`, `s`, `m`,
/// `h`); a bare number is milliseconds, so the seed's `-t 50` keeps its meaning.
pub fn parse_time(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || {
        format!("'{s}' is not a time: an integer with an optional unit us, ms, s, m or h (10ms, 100us, 1s; a bare number is milliseconds)")
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let micros_per_unit: u64 = match unit.trim() {
        "us" | "\u{b5}s" => 1,
        "" | "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(micros_per_unit)
        .map(Duration::from_micros)
        .ok_or_else(|| format!("'{s}' is too long a time"))
}

/// A timeout: seconds, fractions allowed (`5`, `0.3`), or an integer with a unit as `-t` takes
/// it (`500ms`, `2s`, `1m`).
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.ends_with(|c: char| c.is_ascii_alphabetic()) {
        return parse_time(text);
    }
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..=1e9).contains(&secs) => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err(format!(
            "'{s}' is not a timeout: seconds (5, 0.3) or an integer with a unit us, ms, s, m or h (500ms, 2s)"
        )),
    }
}

fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("'{s}' is not a network (10.0.0.0/8, 2001:db8::/32) or an address"))
}

/// A `-a` value: an IP with or without a port (`-p` then), or a Unix socket file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressArg {
    /// An IP address, with its own port or `-p`'s.
    Ip { ip: IpAddr, port: Option<u16> },
    /// `unix:/PATH`, checked by [`ListenAddress::unix`].
    Unix(ListenAddress),
}

fn parse_address(s: &str) -> Result<AddressArg, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        return ListenAddress::unix(path).map(AddressArg::Unix);
    }
    if let Ok(ip) = s.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
        return Ok(AddressArg::Ip { ip, port: None });
    }
    s.parse::<SocketAddr>()
        .map(|sa| AddressArg::Ip {
            ip: sa.ip(),
            port: Some(sa.port()),
        })
        .map_err(|_| {
            format!("'{s}' is not an IP address, IP:PORT (IPv6 as [::1]:12345) or unix:/PATH")
        })
}

/// `--metrics-address`: an IP and a port, said plainly when it is not (clap's own message,
/// "invalid socket address syntax", does not say what a host name gets wrong).
fn parse_metrics_address(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        "expected IP:PORT such as 127.0.0.1:9100 or [::1]:9100 (host names are not resolved)"
            .to_string()
    })
}

/// `--unix-mode`: octal permission bits, with or without a leading 0 or 0o.
fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 && !digits.is_empty() => Ok(mode),
        _ => Err(format!(
            "'{s}' is not a file mode: octal permission bits such as 0660 or 0666"
        )),
    }
}

/// `--unix-owner`: the uid and gid to give the socket files (`None`: unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

fn parse_owner(s: &str) -> Result<Owner, String> {
    let (user, group) = match s.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (s, None),
    };
    let uid = match user {
        "" => None,
        user => Some(user_id(user)?),
    };
    let gid = match group {
        None | Some("") => None,
        Some(group) => Some(group_id(group)?),
    };
    if uid.is_none() && gid.is_none() {
        return Err(format!(
            "'{s}' names no user and no group: USER, USER:GROUP or :GROUP"
        ));
    }
    Ok(Owner { uid, gid })
}

/// A user name or numeric uid, looked up in the system's user database.
fn user_id(user: &str) -> Result<u32, String> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(found)) => Ok(found.uid.as_raw()),
        Ok(None) => Err(format!("no user named '{user}'")),
        Err(e) => Err(format!("cannot look up user '{user}': {e}")),
    }
}

/// A group name or numeric gid, looked up in the system's group database.
fn group_id(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(found)) => Ok(found.gid.as_raw()),
        Ok(None) => Err(format!("no group named '{group}'")),
        Err(e) => Err(format!("cannot look up group '{group}': {e}")),
    }
}

/// A `-c` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CapabilityArg {
    /// Several NOTIFYs in flight per connection.
    Pipelining,
    /// HAProxy 2.x async mode (answers still go on the NOTIFY's connection).
    Async,
    /// Reassemble fragmented NOTIFYs (HAProxy 2.x).
    Fragmentation,
    /// Announce no capability.
    None,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `[time LEVEL target] message`, for people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    match s.parse::<log::LevelFilter>() {
        Ok(log::LevelFilter::Off) | Err(_) => Err(format!(
            "'{s}' is not a log level: error, warn, info, debug or trace"
        )),
        Ok(level) => Ok(level),
    }
}

/// `--generate`: what to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// The man page (roff), for `man -l` or /usr/local/share/man/man1/spoa.1.
    Man,
    /// bash completions.
    Bash,
    /// zsh completions.
    Zsh,
    /// fish completions.
    Fish,
    /// elvish completions.
    Elvish,
    /// PowerShell completions.
    Powershell,
}

/// `--runtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeChoice {
    /// io_uring where it works, else std.
    Auto,
    /// Portable threads.
    Std,
    /// io_uring on glommio.
    Uring,
}

/// Workers when -n is not given (the C agent's default).
pub const DEFAULT_WORKERS: u16 = 5;

impl Cli {
    /// The addresses to bind.
    pub fn listen_addresses(&self) -> Vec<ListenAddress> {
        if self.addresses.is_empty() {
            return vec![
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.port).into(),
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), self.port).into(),
            ];
        }
        self.addresses
            .iter()
            .map(|a| match a {
                AddressArg::Ip { ip, port } => {
                    SocketAddr::new(*ip, port.unwrap_or(self.port)).into()
                }
                AddressArg::Unix(address) => address.clone(),
            })
            .collect()
    }

    /// Whether any -a is a Unix socket.
    pub fn has_unix_address(&self) -> bool {
        self.addresses
            .iter()
            .any(|a| matches!(a, AddressArg::Unix(_)))
    }

    /// The mode and owner of the Unix socket files.
    pub fn unix_permissions(&self) -> UnixPermissions {
        UnixPermissions {
            mode: self.unix_mode,
            owner: self.unix_owner.and_then(|o| o.uid),
            group: self.unix_owner.and_then(|o| o.gid),
        }
    }

    /// The capabilities to announce.
    pub fn capabilities(&self) -> Capabilities {
        if self.capabilities.is_empty() {
            return Capabilities::PIPELINING;
        }
        self.capabilities
            .iter()
            .fold(Capabilities::NONE, |acc, cap| match cap {
                CapabilityArg::Pipelining => acc | Capabilities::PIPELINING,
                CapabilityArg::Async => acc | Capabilities::ASYNC,
                CapabilityArg::Fragmentation => acc | Capabilities::FRAGMENTATION,
                CapabilityArg::None => acc,
            })
    }

    /// Busy-poll time before an idle uring executor sleeps, if any.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fn spin(&self) -> Option<Duration> {
        (self.spin_us > 0).then(|| Duration::from_micros(self.spin_us))
    }

    /// How often to look for changed --scores files, if at all.
    pub fn scores_watch(&self) -> Option<Duration> {
        limit(self.scores_watch)
    }

    /// The processing delay, if any.
    pub fn delay(&self) -> Option<Duration> {
        (!self.processing_delay.is_zero()).then_some(self.processing_delay)
    }
}

/// A timeout from the command line as an optional limit (0: none).
pub fn limit(time: Duration) -> Option<Duration> {
    (!time.is_zero()).then_some(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_seconds_unless_they_carry_a_unit() {
        assert_eq!(parse_seconds("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_seconds("0.3"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_seconds("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert_eq!(limit(Duration::ZERO), None);
        for bad in ["-1", "x", "5 parsecs", "NaN", "inf", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_address_is_an_ip_an_ip_and_port_or_a_unix_socket_path() {
        assert_eq!(
            parse_address("unix:/run/spoa/spoa.sock"),
            Ok(AddressArg::Unix(ListenAddress::Unix(
                "/run/spoa/spoa.sock".into()
            )))
        );
        assert_eq!(
            parse_address("[::1]:9"),
            Ok(AddressArg::Ip {
                ip: Ipv6Addr::LOCALHOST.into(),
                port: Some(9)
            })
        );
        assert!(parse_address("unix:run/spoa.sock").is_err());
        assert!(parse_address("unix:").is_err());
        assert!(parse_address("/run/spoa.sock").is_err());
    }

    #[test]
    fn a_mode_is_octal_permission_bits() {
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert_eq!(parse_mode("0o600"), Ok(0o600));
        assert_eq!(parse_mode("1777"), Ok(0o1777));
        for bad in ["", "0o", "888", "10000", "rw-rw----", "-660"] {
            assert!(parse_mode(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_owner_is_a_user_a_group_or_both_by_name_or_id() {
        let owner = |uid, gid| Ok(Owner { uid, gid });
        assert_eq!(parse_owner("0"), owner(Some(0), None));
        assert_eq!(parse_owner("0:0"), owner(Some(0), Some(0)));
        assert_eq!(parse_owner(":0"), owner(None, Some(0)));
        assert_eq!(parse_owner("root:root"), owner(Some(0), Some(0)));
        assert!(parse_owner(":").is_err());
        assert!(parse_owner("").is_err());
        assert!(parse_owner("no-such-user-spoa")
            .unwrap_err()
            .contains("no user named"));
        assert!(parse_owner(":no-such-group-spoa")
            .unwrap_err()
            .contains("no group named"));
    }

    #[test]
    fn times_take_the_c_agents_units_and_bare_numbers_are_milliseconds() {
        assert_eq!(parse_time("50"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_time("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_time("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_time("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_time("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_time("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "ms",
            "1.5s",
            "-1",
            "10 parsecs",
            "10sec",
            "99999999999999999999",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_time("18446744073709551615h").is_err());
    }
}
