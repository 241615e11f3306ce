//! End-to-end: a real HAProxy (2.6 from Debian bookworm, 3.2 from Debian sid via
//! `scripts/haproxy-sid.sh`) with `tests/haproxy/haproxy-test.cfg`, the agent as its own process,
//! real HTTP requests from IPv4 and IPv6 clients. On CI (`CI=true`) a missing HAProxy fails the
//! run; elsewhere these tests say loudly that they skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{free_port, runtimes, Agent, Dir};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The HAProxy binaries to test against: (label, path).
fn haproxies() -> Vec<(String, PathBuf)> {
    let candidates = [
        (
            "2.6",
            vec![
                PathBuf::from("/usr/sbin/haproxy"),
                PathBuf::from("/usr/bin/haproxy"),
            ],
        ),
        ("3.2", vec![root().join("target/haproxy-sid/haproxy")]),
    ];
    let mut found = Vec::new();
    for (want, paths) in candidates {
        let Some(path) = paths.into_iter().find(|p| p.exists()) else {
            let msg = format!(
                "HAProxy {want} not found: run `scripts/install-test-deps.sh` (as root) to install it"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("\n*** SKIPPED: {msg} ***\n");
            continue;
        };
        let out = Command::new(&path).arg("-v").output().expect("haproxy -v");
        let version = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            version.contains(&format!("version {want}")),
            "{} is not HAProxy {want}: {version}",
            path.display()
        );
        found.push((want.to_string(), path));
    }
    found
}

struct Haproxy {
    child: Child,
    label: String,
    fe_port: u16,
    admin_port: u16,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Haproxy {
    /// HAProxy with the test config (`tests/haproxy/haproxy-test.cfg`).
    fn start(label: &str, bin: &PathBuf, agent_port: u16) -> Haproxy {
        let h = Haproxy::start_config(label, bin, agent_port, "tests/haproxy", "haproxy-test.cfg");
        h.wait_up();
        h
    }

    fn start_config(label: &str, bin: &PathBuf, agent_port: u16, dir: &str, file: &str) -> Haproxy {
        Haproxy::start_config_env(label, bin, agent_port, dir, file, &[])
    }

    /// [`Haproxy::start_config`] with more variables in HAProxy's environment.
    fn start_config_env(
        label: &str,
        bin: &PathBuf,
        agent_port: u16,
        dir: &str,
        file: &str,
        env: &[(&str, &str)],
    ) -> Haproxy {
        let (fe_port, admin_port) = (free_port(), free_port());
        let mut child = Command::new(bin)
            .args(["-db", "-C"])
            .arg(root().join(dir))
            .args(["-f", file])
            .envs(env.iter().copied())
            .env("FE_PORT", fe_port.to_string())
            .env("ADMIN_PORT", admin_port.to_string())
            .env("AGENT_PORT", agent_port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start haproxy");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = Arc::clone(&logs);
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        Haproxy {
            child,
            label: label.to_string(),
            fe_port,
            admin_port,
            logs,
        }
    }

    /// Waits until the agent server is UP by its SPOP health check.
    fn wait_up(&self) {
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.admin_port)) {
                let r = get(&mut Client(BufReader::new(s)), "/health");
                if r.status == 200 {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "HAProxy {}: agent server never UP: {:#?}",
            self.label,
            self.logs.lock().unwrap()
        );
    }

    fn client(&self, v6: bool) -> Client {
        let addr: SocketAddr = if v6 {
            format!("[::1]:{}", self.fe_port).parse().unwrap()
        } else {
            format!("127.0.0.1:{}", self.fe_port).parse().unwrap()
        };
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Client(BufReader::new(s))
    }

    fn signal(&self, signal: &str) {
        Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the SPOE answered: `x-ip-score` is an integer 0..=100 and no SPOE error is set.
    fn score(&self, context: &str) -> i64 {
        self.checked_score()
            .unwrap_or_else(|why| panic!("{context}: {why}"))
    }

    /// The score, or why the SPOE did not answer.
    fn checked_score(&self) -> Result<i64, String> {
        if self.status != 200 {
            return Err(format!("status {}", self.status));
        }
        // HAProxy leaves out a header whose value is empty: no header, no error.
        let error = self.header("x-spoe-error").unwrap_or("");
        if !error.is_empty() {
            return Err(format!(
                "SPOE error {error} after {} ms",
                self.header("x-spoe-ptime").unwrap_or("?")
            ));
        }
        let score = self.header("x-ip-score").ok_or("no x-ip-score")?;
        let score: i64 = score
            .parse()
            .map_err(|_| format!("x-ip-score {score:?} is not an integer"))?;
        if !(0..=100).contains(&score) {
            return Err(format!("score {score}"));
        }
        Ok(score)
    }
}

/// An HTTP/1.1 keep-alive client connection.
struct Client(BufReader<TcpStream>);

/// One request on `c`, written with one write (no Nagle stall).
fn get(c: &mut Client, path: &str) -> Response {
    try_get(c, path).unwrap_or_else(|why| panic!("{why}"))
}

/// [`get`], saying what went wrong instead of panicking.
fn try_get(c: &mut Client, path: &str) -> Result<Response, String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    c.0.get_mut()
        .write_all(request.as_bytes())
        .map_err(|e| format!("request: {e}"))?;
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let n =
            c.0.read_line(&mut head)
                .map_err(|e| format!("response head: {e}"))?;
        if n == 0 {
            return Err("connection closed before the response".into());
        }
    }
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    c.0.read_exact(&mut body)
        .map_err(|e| format!("response body: {e}"))?;
    Ok(Response { status, headers })
}

/// One HAProxy test at a time: each runs HAProxy 2.6 and 3.2 against both runtimes, with the
/// seed's 15 ms `timeout processing`; several at once on a 2-CPU machine make the agent miss it
/// for reasons that have nothing to do with the agent.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serialized() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn each_pair(test: impl Fn(&Agent, &str, &PathBuf)) {
    for (label, bin) in haproxies() {
        for runtime in runtimes() {
            let agent = Agent::start(runtime, &[]);
            test(&agent, &label, &bin);
        }
    }
}

#[test]
fn ipv4_and_ipv6_clients_get_an_ip_score() {
    let _serial = serialized();
    each_pair(|agent, label, bin| {
        let h = Haproxy::start(label, bin, agent.addr.port());
        for v6 in [false, true] {
            let mut c = h.client(v6);
            for _ in 0..3 {
                get(&mut c, "/").score(&format!(
                    "HAProxy {label}, {} runtime, v6={v6}",
                    agent.runtime
                ));
            }
        }
    });
}

/// `--runtime auto` beside a running HAProxy that may use every CPU (no `cpu-map`): std, which
/// is measured faster sharing CPUs with HAProxy, with the HAProxy process named.
#[test]
fn runtime_auto_runs_std_beside_a_haproxy_on_the_same_cpus() {
    let _serial = serialized();
    if !runtimes().contains(&"uring") {
        eprintln!("NOTE: uring cannot run here: auto is std whatever HAProxy does");
        return;
    }
    let agent = Agent::start("std", &[]);
    for (label, bin) in haproxies() {
        let h = Haproxy::start(&label, &bin, agent.addr.port());
        let out = Command::new(support::BIN)
            .args(["--runtime", "auto", "-n", "1", "--check-runtime"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(
            support::haproxy_named(&out, h.child.id()).is_some(),
            "HAProxy {label} (pid {}): {out}",
            h.child.id()
        );
    }
}

#[test]
fn the_example_config_works_as_it_is() {
    let _serial = serialized();
    each_pair(|agent, label, bin| {
        let h = Haproxy::start_config(
            label,
            bin,
            agent.addr.port(),
            "examples/haproxy",
            "haproxy.cfg",
        );
        let context = format!(
            "examples/haproxy with HAProxy {label}, {} runtime",
            agent.runtime
        );
        // No admin frontend here: the first requests may come before the health check says UP.
        let end = Instant::now() + Duration::from_secs(15);
        let mut seen = 0;
        while seen < 20 {
            assert!(
                Instant::now() < end,
                "{context}: no scores: {:#?}",
                h.logs.lock().unwrap()
            );
            let Ok(s) = TcpStream::connect(("127.0.0.1", h.fe_port)) else {
                thread::sleep(Duration::from_millis(50));
                continue;
            };
            s.set_nodelay(true).unwrap();
            let r = get(&mut Client(BufReader::new(s)), "/");
            let Some(score) = r.header("x-ip-score").and_then(|s| s.parse::<i64>().ok()) else {
                thread::sleep(Duration::from_millis(50));
                continue;
            };
            assert!((0..=100).contains(&score), "{context}: score {score}");
            let verdict = if score < 20 { "bad" } else { "good" };
            assert_eq!(
                r.header("x-ip-reputation"),
                Some(verdict),
                "{context}: ACL on score {score}"
            );
            seen += 1;
        }
    });
}

#[test]
fn agent_keeps_serving_after_haproxy_soft_stop_and_kill() {
    let _serial = serialized();
    each_pair(|agent, label, bin| {
        let context = format!("HAProxy {label}, {} runtime", agent.runtime);
        let mut first = Haproxy::start(label, bin, agent.addr.port());
        get(&mut first.client(false), "/").score(&context);
        first.signal("USR1");
        assert!(
            first.wait_exit(Duration::from_secs(15)),
            "{context}: soft stop did not end HAProxy"
        );

        let mut second = Haproxy::start(label, bin, agent.addr.port());
        get(&mut second.client(true), "/").score(&format!("{context}, after soft stop"));
        second.signal("KILL");
        assert!(second.wait_exit(Duration::from_secs(5)));

        let third = Haproxy::start(label, bin, agent.addr.port());
        get(&mut third.client(false), "/").score(&format!("{context}, after kill"));
        let mut direct = agent.session();
        direct
            .write_all(&support::notify(
                1,
                1,
                spop_core::TypedData::Ipv4([127, 0, 0, 1].into()),
            ))
            .unwrap();
        let (hdr, p) = support::read_frame(&mut direct).unwrap();
        support::check_score_ack(&hdr, &p);
    });
}

#[test]
fn ten_thousand_requests_see_no_spoe_error() {
    let _serial = serialized();
    each_pair(|agent, label, bin| {
        let h = Haproxy::start(label, bin, agent.addr.port());
        let started = Instant::now();
        let workers: Vec<_> = (0..4)
            .map(|i| {
                let mut c = h.client(i % 2 == 1);
                let context = format!("HAProxy {label}, {} runtime", agent.runtime);
                thread::spawn(move || {
                    for n in 0..2500 {
                        get(&mut c, "/").score(&format!("{context}, request {n}"));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        eprintln!(
            "HAProxy {label}, {} runtime: 10000 requests in {:?}",
            agent.runtime,
            started.elapsed()
        );
    });
}

/// One request on a new connection from IPv4 or IPv6 loopback.
/// The example configuration has no admin frontend: waits (15 s at most) until ::1, scored 80 by
/// `--default-score`, gets a 200 with `x-ip-reputation: good`, i.e. the agent is UP for HAProxy.
fn wait_for_a_good_score_for_ipv6(h: &Haproxy, context: &str) {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let r = TcpStream::connect(("::1", h.fe_port)).ok().map(|s| {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            get(&mut Client(BufReader::new(s)), "/")
        });
        if r.as_ref().and_then(|r| r.header("x-ip-score")) == Some("80") {
            let r = r.unwrap();
            assert_eq!(r.status, 200, "{context}");
            assert_eq!(r.header("x-ip-reputation"), Some("good"), "{context}");
            return;
        }
        assert!(
            Instant::now() < end,
            "{context}: no score for ::1: {:#?}",
            h.logs.lock().unwrap()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// 127.0.0.1 is listed (score 5): the example ACL denies it; ::1 is not and passes.
fn assert_the_listed_ipv4_client_denied_and_ipv6_allowed(h: &Haproxy, context: &str) {
    for _ in 0..3 {
        assert_eq!(
            fresh_get(h, false).status,
            403,
            "{context}: 127.0.0.1 denied"
        );
        assert_eq!(fresh_get(h, true).status, 200, "{context}: ::1 allowed");
    }
}

fn fresh_get(h: &Haproxy, v6: bool) -> Response {
    get(&mut h.client(v6), "/")
}

#[test]
fn a_listed_client_is_denied_by_the_example_acl_and_a_reload_changes_the_verdict() {
    let _serial = serialized();
    let dir = Dir::new("haproxy-deny");
    let scores = dir.0.join("scores.txt");
    for (label, bin) in haproxies() {
        for runtime in runtimes() {
            // 127.0.0.1 is listed with a bad score; ::1 is in no list and gets the default.
            std::fs::write(&scores, "# test\n127.0.0.1 5\n").unwrap();
            let agent = Agent::start(
                runtime,
                &[
                    "--scores",
                    scores.to_str().unwrap(),
                    "--default-score",
                    "80",
                ],
            );
            let h = Haproxy::start_config_env(
                label.as_str(),
                &bin,
                agent.addr.port(),
                "examples/haproxy",
                "haproxy.cfg",
                &[("IPREP_DENY", "1")],
            );
            let context = format!("HAProxy {label}, {} runtime", agent.runtime);
            // No admin frontend in the example: wait for a scored answer (agent UP).
            wait_for_a_good_score_for_ipv6(&h, &context);
            assert_the_listed_ipv4_client_denied_and_ipv6_allowed(&h, &context);

            // The lists change; HAProxy keeps running and so does the agent.
            dir.replace(&scores, "127.0.0.1 90\n::1 10\n");
            agent.signal("HUP");
            assert!(
                agent.wait_log("scores reloaded (SIGHUP)", Duration::from_secs(10)),
                "{context}: {:#?}",
                agent.logs()
            );
            let r = fresh_get(&h, false);
            assert_eq!(
                (r.status, r.header("x-ip-score")),
                (200, Some("90")),
                "{context}: 127.0.0.1 after the reload"
            );
            assert_eq!(
                fresh_get(&h, true).status,
                403,
                "{context}: ::1 after the reload"
            );
        }
    }
}

#[test]
fn haproxy_reaches_the_agent_over_a_unix_socket() {
    let _serial = serialized();
    let dir = Dir::new("haproxy-unix");
    let socket = dir.socket();
    // 127.0.0.1 is listed with a bad score; ::1 is in no list and gets the default.
    let scores = dir.file("scores.txt", "127.0.0.1 5\n");
    let unix = format!("unix:{}", socket.display());
    for (label, bin) in haproxies() {
        for runtime in runtimes() {
            let agent = Agent::start_on(
                runtime,
                &["-a", "127.0.0.1", "-p", "0", "-a", &unix],
                &[
                    "--unix-mode",
                    "0660",
                    "--scores",
                    scores.to_str().unwrap(),
                    "--default-score",
                    "80",
                ],
            );
            let context = format!("HAProxy {label} over unix@, {} runtime", agent.runtime);
            let env = [("AGENT_SOCKET", socket.to_str().unwrap())];
            // No agent on this port: only the socket can answer.
            let nowhere = free_port();
            // The test configuration: UP by its SPOP health check over the socket, then scores.
            let h = Haproxy::start_config_env(
                &label,
                &bin,
                nowhere,
                "tests/haproxy",
                "haproxy-test.cfg",
                &env,
            );
            h.wait_up();
            for v6 in [false, true] {
                let mut c = h.client(v6);
                for _ in 0..3 {
                    let want = if v6 { 80 } else { 5 };
                    assert_eq!(get(&mut c, "/").score(&context), want, "{context}, v6={v6}");
                }
            }
            drop(h);
            // The example configuration: its ACL denies the listed client.
            let h = Haproxy::start_config_env(
                &label,
                &bin,
                nowhere,
                "examples/haproxy",
                "haproxy.cfg",
                &[env[0], ("IPREP_DENY", "1")],
            );
            wait_for_a_good_score_for_ipv6(&h, &context);
            assert_the_listed_ipv4_client_denied_and_ipv6_allowed(&h, &context);
        }
    }
}

/// Clients sending one request per connection through HAProxy (from IPv4 and IPv6 loopback in
/// turn), each pausing between requests, and what became of every request.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<thread::JoinHandle<Outcomes>>,
}

#[derive(Default)]
struct Outcomes {
    /// When each request answered with a score was sent.
    scored: Vec<Instant>,
    /// Every other request: when it was sent and what went wrong.
    failures: Vec<(Instant, String)>,
}

impl Load {
    fn start(h: &Haproxy, clients: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let clients = (0..clients)
            .map(|i| {
                let stop = Arc::clone(&stop);
                let addr: SocketAddr = if i % 2 == 1 {
                    format!("[::1]:{}", h.fe_port)
                } else {
                    format!("127.0.0.1:{}", h.fe_port)
                }
                .parse()
                .unwrap();
                thread::spawn(move || {
                    let mut out = Outcomes::default();
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let answer = TcpStream::connect(addr)
                            .map_err(|e| format!("connect: {e}"))
                            .and_then(|s| {
                                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                                let _ = s.set_nodelay(true);
                                try_get(&mut Client(BufReader::new(s)), "/")
                            })
                            .and_then(|r| r.checked_score());
                        match answer {
                            Ok(_) => out.scored.push(sent),
                            Err(why) => out.failures.push((
                                sent,
                                format!(
                                    "request sent at {} ms: {why}",
                                    (sent - started).as_millis()
                                ),
                            )),
                        }
                        thread::sleep(pause);
                    }
                    out
                })
            })
            .collect();
        Load { stop, clients }
    }

    fn stop(self) -> Outcomes {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Outcomes::default();
        for client in self.clients {
            let out = client.join().unwrap();
            all.scored.extend(out.scored);
            all.failures.extend(out.failures);
        }
        all
    }
}

/// How the agent is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    /// It binds its port itself (`-a`, `-p`): the port is closed from the old agent's exit to
    /// the new agent's bind.
    Bind,
    /// The test keeps a listening socket and passes it to each agent (LISTEN_FDS), as systemd
    /// does with a socket unit: stop the old agent (SIGTERM, wait for its exit), start the new
    /// one on the same socket. Connections made meanwhile wait in the socket's queue.
    ///
    /// One failure remains possible, from SPOP itself: the old agent ends each connection with
    /// AGENT-DISCONNECT, and a NOTIFY that HAProxy sends on that connection in the instant
    /// before it reads the DISCONNECT fails (2.6: SPOE error 256, the agent's status 0; 3.2:
    /// 257, an I/O error). Measured: 4 requests in 80 restarts at about 400 requests/s.
    KeptSocket,
    /// As [`Restart::KeptSocket`], and the test also plays systemd's descriptor store
    /// (`support::fdstore`): the old agent (`--hand-over-connections`) hands its open
    /// connections over instead of ending them, and the new one is started with them beside
    /// the listening socket. Nothing is left to fail.
    HandOver,
}

/// What a run of [`restart_under_load`] saw.
struct RestartRun {
    /// Connections the stopping agents handed over ([`Restart::HandOver`]), summed.
    handed_over: usize,
    scored: usize,
    /// Scored requests sent while no agent was ready (from the SIGTERM to the new agent's
    /// startup line): the ones a restart puts at risk.
    scored_in_gaps: usize,
    failures: Vec<String>,
    /// Of `failures`, those that look like the drain race (see [`Restart::KeptSocket`]): sent
    /// within 10 ms of a SIGTERM and failed at once with the agent's AGENT-DISCONNECT (2.6: SPOE
    /// error 256, status 0) or the I/O error of its close (3.2: 257).
    drain_races: usize,
    /// From each SIGTERM to the new agent's startup line.
    gaps: Vec<Duration>,
    /// The last agent's log and HAProxy's last lines, for a failure's message.
    logs: Vec<String>,
}

/// HAProxy (`tests/haproxy/haproxy-test.cfg`) under a request-per-connection load of about
/// `clients` x 1/`pause` requests/s while the agent is restarted `restarts` times, 400 ms apart.
fn restart_under_load(
    label: &str,
    bin: &PathBuf,
    runtime: &'static str,
    how: Restart,
    restarts: usize,
    clients: usize,
    pause: Duration,
) -> RestartRun {
    let socket = runtime_core::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let kept = match how {
        Restart::KeptSocket | Restart::HandOver => Some(socket),
        Restart::Bind => {
            drop(socket);
            None
        }
    };
    let store = (how == Restart::HandOver)
        .then(|| support::fdstore::Manager::new(&format!("restart-{label}-{runtime}")));
    let port_arg = port.to_string();
    let start_agent = || match (&kept, &store) {
        (Some(socket), Some(store)) => {
            // What the old agent stored, passed to the new one (as systemd does), then out of
            // the test's hands: the new agent has its own copies.
            let stored = store.take();
            store.start(runtime, socket, &support::fdstore::passed(&stored))
        }
        (Some(socket), None) => support::inherit::start_on(runtime, socket, &[]),
        (None, _) => Agent::start_on(runtime, &["-a", "127.0.0.1", "-p", &port_arg], &[]),
    };
    let mut agent = start_agent();
    let mut handed_over = 0;
    let h = Haproxy::start(label, bin, port);
    let load = Load::start(&h, clients, pause);
    thread::sleep(Duration::from_millis(500));
    let mut gaps = Vec::new();
    for n in 0..restarts {
        let stopped = Instant::now();
        agent.signal("TERM");
        while agent.child.try_wait().unwrap().is_none() {
            assert!(
                stopped.elapsed() < Duration::from_secs(10),
                "HAProxy {label}, {runtime} runtime: restart {n}: the agent did not stop: {:?}",
                agent.logs()
            );
            thread::sleep(Duration::from_millis(1));
        }
        handed_over += store.as_ref().map_or(0, |s| s.len());
        agent = start_agent();
        gaps.push((stopped, Instant::now()));
        thread::sleep(Duration::from_millis(400));
    }
    let out = load.stop();
    let mut logs = agent.logs();
    logs.extend(h.logs.lock().unwrap().iter().rev().take(20).rev().cloned());
    let drain_races = out
        .failures
        .iter()
        .filter(|(sent, why)| {
            let at_a_sigterm = gaps.iter().any(|(term, _)| {
                let apart = sent
                    .checked_duration_since(*term)
                    .unwrap_or_else(|| *term - *sent);
                apart < Duration::from_millis(10)
            });
            let at_once = ["SPOE error 256 after 0 ms", "SPOE error 256 after 1 ms"]
                .iter()
                .chain(&["SPOE error 257 after 0 ms", "SPOE error 257 after 1 ms"])
                .any(|signature| why.ends_with(signature));
            at_a_sigterm && at_once
        })
        .count();
    let scored_in_gaps = out
        .scored
        .iter()
        .filter(|sent| gaps.iter().any(|(from, to)| from <= *sent && *sent <= to))
        .count();
    RestartRun {
        handed_over,
        scored: out.scored.len(),
        scored_in_gaps,
        failures: out.failures.into_iter().map(|(_, why)| why).collect(),
        drain_races,
        gaps: gaps.iter().map(|(from, to)| *to - *from).collect(),
        logs,
    }
}

#[test]
fn restarts_that_hand_connections_over_fail_no_request() {
    let _serial = serialized();
    for (label, bin) in haproxies() {
        for runtime in runtimes() {
            let context = format!("HAProxy {label}, {runtime} runtime");
            let run = restart_under_load(
                &label,
                &bin,
                runtime,
                Restart::HandOver,
                5,
                4,
                Duration::from_millis(10),
            );
            eprintln!(
                "{context}: 5 restarts (each {:?}), {} connections handed over, {} requests scored, {} of them sent during a restart, {} failed",
                run.gaps,
                run.handed_over,
                run.scored,
                run.scored_in_gaps,
                run.failures.len(),
            );
            // Socket activation alone failed about 1 request in 20 restarts (the
            // AGENT-DISCONNECT race, Restart::KeptSocket): with the hand-over, none.
            assert!(
                run.failures.is_empty(),
                "{context}: {} requests failed ({} like the drain race): {:#?}\nthe last agent's log, then HAProxy's: {:#?}",
                run.failures.len(),
                run.drain_races,
                run.failures.iter().take(20).collect::<Vec<_>>(),
                run.logs
            );
            assert!(
                run.handed_over > 0,
                "{context}: no connection was handed over: the restarts proved nothing"
            );
            assert!(
                run.scored_in_gaps > 0,
                "{context}: no request was sent while the agent restarted: the load proved nothing"
            );
        }
    }
}

/// `scripts/restart-under-load.sh`: the same restarts with the agent binding its own port
/// (`SPOA_RESTART=bind`), on a kept socket (`kept`) or on a kept socket handing its connections
/// over (`handover`, the default), `SPOA_RESTARTS` times (10), one line of numbers per HAProxy
/// version and runtime. Measures, asserts nothing.
#[test]
#[ignore = "a measurement: scripts/restart-under-load.sh"]
fn measure_restarts_under_load() {
    let _serial = serialized();
    let how = match std::env::var("SPOA_RESTART").as_deref() {
        Ok("bind") => Restart::Bind,
        Ok("kept") => Restart::KeptSocket,
        _ => Restart::HandOver,
    };
    let restarts: usize = std::env::var("SPOA_RESTARTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    for (label, bin) in haproxies() {
        for runtime in runtimes() {
            let run = restart_under_load(
                &label,
                &bin,
                runtime,
                how,
                restarts,
                4,
                Duration::from_millis(10),
            );
            let mut gaps: Vec<u128> = run.gaps.iter().map(Duration::as_millis).collect();
            gaps.sort_unstable();
            println!(
                "RESULT haproxy={label} runtime={runtime} restart={how:?} restarts={restarts} handed_over={} scored={} scored_during_restarts={} failed={} drain_race={} restart_ms_median={} restart_ms_max={}",
                run.handed_over,
                run.scored,
                run.scored_in_gaps,
                run.failures.len(),
                run.drain_races,
                gaps.get(gaps.len() / 2).copied().unwrap_or(0),
                gaps.last().copied().unwrap_or(0),
            );
            for failure in &run.failures {
                println!("FAILURE haproxy={label} runtime={runtime} restart={how:?}: {failure}");
            }
        }
    }
}
