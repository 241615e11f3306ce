//! `--metrics-address`: `/metrics` in the Prometheus text format, served on a thread of its own
//! (never on a worker: a slow scraper must not delay a NOTIFY). The numbers come from
//! [`runtime_core::Metrics`], which the workers update without locks; this module only sums and
//! formats them at scrape time.

use std::net::SocketAddr;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use runtime_core::metrics::{ClosedBy, Snapshot, LATENCY_BUCKETS_US, STATUSES};
use runtime_core::Metrics;
use spoa::reload::{Loaded, Lookups, Scores};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// Binds `address` and serves `/metrics` from `metrics` on a thread of its own. Returns the
/// bound address (the real port when 0 was asked).
pub fn serve(
    address: SocketAddr,
    metrics: Metrics,
    runtime: &'static str,
    scores: Option<Arc<Scores>>,
) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http(address)
        .map_err(|e| format!("--metrics-address {address}: cannot listen: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| format!("--metrics-address {address}: not an IP listener"))?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(AgentCollector { metrics, runtime }));
    if let Some(scores) = scores {
        registry.register_collector(Box::new(ScoresCollector { scores }));
    }
    // One thread answers scrapes one at a time, which is all Prometheus needs; the workers
    // never wait on it.
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || answer_scrapes(&server, &registry))
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    Ok(bound)
}

fn answer_scrapes(server: &tiny_http::Server, registry: &Registry) {
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or_default();
        let response = match (request.method(), path) {
            (tiny_http::Method::Get, "/metrics") => {
                let mut body = String::with_capacity(8192);
                match prometheus_client::encoding::prometheus_text::encode(&mut body, registry) {
                    Ok(()) => with_content_type(
                        tiny_http::Response::from_string(body),
                        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    ),
                    Err(_) => {
                        tiny_http::Response::from_string("encoding failed\n").with_status_code(500)
                    }
                }
            }
            (tiny_http::Method::Get, "/") => {
                tiny_http::Response::from_string("spoa: metrics at /metrics\n")
            }
            _ => {
                tiny_http::Response::from_string("not found: GET /metrics\n").with_status_code(404)
            }
        };
        // A scraper that went away: nothing to do.
        let _ = request.respond(response);
    }
}

fn with_content_type<R: std::io::Read>(
    response: tiny_http::Response<R>,
    value: &str,
) -> tiny_http::Response<R> {
    match tiny_http::Header::from_bytes(&b"Content-Type"[..], value.as_bytes()) {
        Ok(header) => response.with_header(header),
        Err(()) => response,
    }
}

/// Encodes a [`Snapshot`] at each scrape.
#[derive(Debug)]
struct AgentCollector {
    metrics: Metrics,
    runtime: &'static str,
}

type Labels = Vec<(&'static str, String)>;

impl Collector for AgentCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = self.metrics.snapshot() else {
            return Ok(());
        };
        let mut out = Out {
            encoder: &mut encoder,
        };
        out.gauge(
            "spoa_build_info",
            "The agent's version and runtime (always 1).",
            &[(
                vec![
                    ("version", env!("CARGO_PKG_VERSION").to_string()),
                    ("runtime", self.runtime.to_string()),
                ],
                1,
            )],
        )?;
        self.connections(&mut out, &s)?;
        self.frames(&mut out, &s)?;
        self.disconnects(&mut out, &s)?;
        out.histogram(&s, self.labels())
    }
}

impl AgentCollector {
    /// Every family's labels: the runtime.
    fn labels(&self) -> Labels {
        vec![("runtime", self.runtime.to_string())]
    }

    /// The runtime and one more label.
    fn with(&self, name: &'static str, value: &str) -> Labels {
        let mut labels = self.labels();
        labels.push((name, value.to_string()));
        labels
    }

    /// One value per worker, labelled with its index.
    fn by_worker(&self, values: &[u64]) -> Vec<(Labels, u64)> {
        values
            .iter()
            .enumerate()
            .map(|(worker, &v)| (self.with("worker", &worker.to_string()), v))
            .collect()
    }

    /// One value per status code seen (and always 0), the codes past the spec's as `other`.
    fn by_status(&self, values: &[u64]) -> Vec<(Labels, u64)> {
        values
            .iter()
            .enumerate()
            .filter(|&(status, &v)| v > 0 || status == 0)
            .map(|(status, &v)| {
                let label = if status < STATUSES {
                    status.to_string()
                } else {
                    "other".to_string()
                };
                (self.with("status", &label), v)
            })
            .collect()
    }

    /// Accepted, open, refused and closed connections, and the closes operators alert on.
    fn connections(&self, out: &mut Out<'_, '_>, s: &Snapshot) -> Result<(), std::fmt::Error> {
        out.counter(
            "spoa_connections_accepted",
            "Connections accepted and handed to a worker.",
            &self.by_worker(&s.accepted),
        )?;
        out.gauge(
            "spoa_connections_open",
            "Connections open now.",
            &self
                .by_worker(&s.open)
                .into_iter()
                .map(|(l, v)| (l, i64::try_from(v).unwrap_or(i64::MAX)))
                .collect::<Vec<_>>(),
        )?;
        out.counter(
            "spoa_connections_refused",
            "Connections closed at accept: limit (--max-connections), allow_from (--allow-from).",
            &[
                (self.with("reason", "limit"), s.refused_limit),
                (self.with("reason", "allow_from"), s.refused_allow_from),
            ],
        )?;
        out.counter(
            "spoa_connections_closed",
            "Connections ended, by reason.",
            &ClosedBy::ALL
                .iter()
                .map(|&by| (self.with("reason", by.label()), s.closed_by(by)))
                .collect::<Vec<_>>(),
        )?;
        out.counter(
            "spoa_healthchecks",
            "HAProxy health checks (option spop-check) answered.",
            &[(self.labels(), s.closed_by(ClosedBy::Healthcheck))],
        )?;
        out.counter(
            "spoa_read_timeouts",
            "Connections cut because a HELLO or a frame did not arrive in time (hello/frame timeout).",
            &[(self.labels(), s.closed_by(ClosedBy::ReadTimeout))],
        )?;
        out.counter(
            "spoa_write_timeouts",
            "Connections cut because the peer did not read its ACKs in time (write timeout).",
            &[(self.labels(), s.closed_by(ClosedBy::WriteTimeout))],
        )
    }

    /// Frames received by type, NOTIFYs and their fates, ACKs sent.
    fn frames(&self, out: &mut Out<'_, '_>, s: &Snapshot) -> Result<(), std::fmt::Error> {
        let other = s
            .frames
            .saturating_sub(s.hellos + s.notifies + s.disconnects + s.unknown_frames);
        out.counter(
            "spoa_frames_received",
            "Frames received, by type (other: NOTIFY fragments after the first, unexpected frames).",
            &[
                (self.with("type", "haproxy_hello"), s.hellos),
                (self.with("type", "notify"), s.notifies),
                (self.with("type", "haproxy_disconnect"), s.disconnects),
                (self.with("type", "unknown"), s.unknown_frames),
                (self.with("type", "other"), other),
            ],
        )?;
        out.counter(
            "spoa_notifies",
            "NOTIFY frames received.",
            &[(self.labels(), s.notifies)],
        )?;
        out.counter("spoa_acks", "ACK frames sent.", &[(self.labels(), s.acks)])?;
        out.counter(
            "spoa_unknown_frames",
            "Frames of unknown type skipped.",
            &[(self.labels(), s.unknown_frames)],
        )?;
        out.counter(
            "spoa_notifies_aborted",
            "NOTIFYs HAProxy aborted (no ACK).",
            &[(self.labels(), s.aborted)],
        )?;
        out.counter(
            "spoa_notifies_reassembled",
            "NOTIFYs reassembled from fragments.",
            &[(self.labels(), s.reassembled)],
        )
    }

    /// DISCONNECT frames each way, by status.
    fn disconnects(&self, out: &mut Out<'_, '_>, s: &Snapshot) -> Result<(), std::fmt::Error> {
        out.counter(
            "spoa_agent_disconnects",
            "AGENT-DISCONNECT frames sent, by status (0: normal; others are faults, see SPOE.txt).",
            &self.by_status(&s.agent_disconnects),
        )?;
        out.counter(
            "spoa_haproxy_disconnects",
            "HAPROXY-DISCONNECT frames received, by status.",
            &self.by_status(&s.haproxy_disconnects),
        )
    }
}

/// The `--scores` table: which one is loaded, and how many lookups found an address in it.
/// Read at scrape time from [`Scores`] (the handlers' own counters, summed).
struct ScoresCollector {
    scores: Arc<Scores>,
}

impl std::fmt::Debug for ScoresCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScoresCollector")
    }
}

impl Collector for ScoresCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Loaded {
            table,
            at,
            generation,
            ..
        } = self.scores.loaded();
        let Lookups { lookups, hits } = self.scores.lookups();
        let (v4, v6) = table.families();
        let gauge = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let mut out = Out {
            encoder: &mut encoder,
        };
        out.gauge(
            "spoa_scores_networks",
            "Networks in the loaded --scores table, by address family.",
            &[
                (vec![("family", "ipv4".to_string())], gauge(v4)),
                (vec![("family", "ipv6".to_string())], gauge(v6)),
            ],
        )?;
        out.gauge(
            "spoa_scores_file_networks",
            "Networks each --scores file brought to the loaded table (before repeats).",
            &table
                .files()
                .iter()
                .map(|f| {
                    (
                        vec![("file", f.path.display().to_string())],
                        gauge(f.entries()),
                    )
                })
                .collect::<Vec<_>>(),
        )?;
        out.gauge(
            "spoa_scores_loaded_timestamp_seconds",
            "When the loaded table was swapped in (Unix time).",
            &[(
                Vec::new(),
                at.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            )],
        )?;
        let mut family = out.encoder.encode_descriptor(
            "spoa_scores_load_duration_seconds",
            "How long reading, parsing and building the loaded table took.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(table.load_time().as_secs_f64())
            .encode(family.encode_family(&Labels::new())?)?;
        out.counter(
            "spoa_scores_reloads",
            "Tables swapped in since start (a failed reload keeps the old table and counts not).",
            &[(Vec::new(), generation.saturating_sub(1))],
        )?;
        out.counter(
            "spoa_scores_lookups",
            "Addresses looked up in the table.",
            &[(Vec::new(), lookups)],
        )?;
        out.counter(
            "spoa_scores_hits",
            "Lookups that found the address in a list (the others got the default score).",
            &[(Vec::new(), hits)],
        )
    }
}

/// Writes metric families through prometheus-client's encoder.
struct Out<'a, 'b> {
    encoder: &'a mut DescriptorEncoder<'b>,
}

impl Out<'_, '_> {
    fn counter(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(Labels, u64)],
    ) -> Result<(), std::fmt::Error> {
        let mut family = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in samples {
            ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn gauge(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(Labels, i64)],
    ) -> Result<(), std::fmt::Error> {
        let mut family = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, value) in samples {
            ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn histogram(&mut self, s: &Snapshot, labels: Labels) -> Result<(), std::fmt::Error> {
        let mut family = self.encoder.encode_descriptor(
            "spoa_notify_to_ack_seconds",
            "Per batch: from the read that completed a NOTIFY to the write that flushed its ACK.",
            None,
            MetricType::Histogram,
        )?;
        // Per-bucket counts (the encoder accumulates them); the last bucket is +Inf.
        let bounds = LATENCY_BUCKETS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(s.latency_buckets.iter().copied()).collect();
        family.encode_family(&labels)?.encode_histogram::<Labels>(
            s.latency_sum.as_secs_f64(),
            s.latency_count,
            &buckets,
            None,
        )
    }
}
