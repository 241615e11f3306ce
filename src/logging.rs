//! Log lines on standard error: text for people, or one JSON object per line for log collectors
//! (journald, Loki, Elasticsearch...), with the `log` key-values that runtime-core and the
//! runtimes attach (`peer`, `connection`, `worker`, `status`...) as fields of their own, so a
//! collector filters by peer without parsing messages. A line written while a runtime serves a
//! connection (the engine's per-frame lines with `-d`, the handler's) names that connection
//! when it does not itself ([`runtime_core::log_context`]): `connection #N: ` in text, a
//! `connection` field in JSON.

use std::fmt::Write as _;
use std::io::Write;

use log::kv::{self, VisitSource};
use log::LevelFilter;

use crate::cli::LogFormat;

/// Starts the logger. The level is `level` when given (RUST_LOG's per-module directives still
/// apply), else RUST_LOG's, else `default`.
pub fn init(format: LogFormat, level: Option<LevelFilter>, default: LevelFilter) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(default);
    if let Ok(filters) = std::env::var("RUST_LOG") {
        builder.parse_filters(&filters);
    }
    if let Some(level) = level {
        builder.filter_level(level);
    }
    // glommio warns when it cannot register its I/O buffers with io_uring (a low
    // RLIMIT_MEMLOCK without CAP_IPC_LOCK): those buffers serve file I/O only, which this
    // agent never does, so the warning would only alarm operators.
    builder.filter_module("glommio::sys::uring", LevelFilter::Error);
    match format {
        LogFormat::Text => {
            builder.format(|buf, record| {
                let style = buf.default_level_style(record.level());
                write!(
                    buf,
                    "[{} {style}{:<5}{style:#} {}] ",
                    buf.timestamp_millis(),
                    record.level(),
                    record.target()
                )?;
                if let Some(id) = serving(record) {
                    write!(buf, "connection #{id}: ")?;
                }
                writeln!(buf, "{}", record.args())
            });
        }
        LogFormat::Json => {
            builder.format(|buf, record| {
                let line = json_line(&buf.timestamp_millis().to_string(), record);
                writeln!(buf, "{line}")
            });
        }
    }
    builder.init();
}

/// `{"time":…,"level":…,"target":…,"message":…,<key-values>}`; integer and boolean values stay
/// JSON numbers and booleans, everything else becomes a string.
fn json_line(time: &str, record: &log::Record<'_>) -> String {
    let mut line = String::with_capacity(256);
    line.push_str("{\"time\":");
    push_str(&mut line, time);
    line.push_str(",\"level\":");
    push_str(&mut line, record.level().as_str());
    line.push_str(",\"target\":");
    push_str(&mut line, record.target());
    line.push_str(",\"message\":");
    push_str(&mut line, &record.args().to_string());
    if let Some(id) = serving(record) {
        let _ = write!(line, ",\"connection\":{id}");
    }
    let mut fields = Fields(&mut line);
    // A key-value that fails to visit is left out; the message still carries the facts.
    let _ = record.key_values().visit(&mut fields);
    line.push('}');
    line
}

/// The connection a runtime is serving while `record` is written, unless the record names one.
fn serving(record: &log::Record<'_>) -> Option<u64> {
    if record
        .key_values()
        .get(kv::Key::from("connection"))
        .is_some()
    {
        return None;
    }
    runtime_core::log_context::current()
}

/// Appends each key-value as a JSON member.
struct Fields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let key = key.as_str();
        // The fixed members come first and are not repeated.
        if matches!(key, "time" | "level" | "target" | "message") {
            return Ok(());
        }
        self.0.push(',');
        push_str(self.0, key);
        self.0.push(':');
        if let Some(n) = value.to_u64() {
            let _ = write!(self.0, "{n}");
        } else if let Some(n) = value.to_i64() {
            let _ = write!(self.0, "{n}");
        } else if let Some(b) = value.to_bool() {
            self.0.push_str(if b { "true" } else { "false" });
        } else {
            push_str(self.0, &value.to_string());
        }
        Ok(())
    }
}

/// Appends `s` as a JSON string.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_written_while_a_connection_is_served_names_it_once() {
        let record = |kvs: &[(&str, kv::Value<'_>)]| {
            json_line(
                "t",
                &log::Record::builder()
                    .args(format_args!("<- NOTIFY"))
                    .level(log::Level::Debug)
                    .target("spop_core::engine")
                    .key_values(&kvs)
                    .build(),
            )
        };
        let plain = "{\"time\":\"t\",\"level\":\"DEBUG\",\"target\":\"spop_core::engine\",\
                     \"message\":\"<- NOTIFY\"";
        assert_eq!(record(&[]), format!("{plain}}}"));
        runtime_core::log_context::serving(4, || {
            assert_eq!(record(&[]), format!("{plain},\"connection\":4}}"));
            // A record that names its connection keeps its own, not a second one.
            assert_eq!(
                record(&[("connection", kv::Value::from(9u64))]),
                format!("{plain},\"connection\":9}}")
            );
        });
    }

    #[test]
    fn strings_are_escaped_and_integers_stay_numbers() {
        let peer: std::net::SocketAddr = ([127, 0, 0, 1], 4000).into();
        let args = format_args!("a \"quoted\"\nline\u{1}");
        let kvs: [(&str, kv::Value<'_>); 3] = [
            ("peer", kv::Value::from_display(&peer)),
            ("connection", kv::Value::from(7u64)),
            ("level", kv::Value::from("dup")),
        ];
        let record = log::Record::builder()
            .args(args)
            .level(log::Level::Warn)
            .target("runtime_core::report")
            .key_values(&kvs)
            .build();
        assert_eq!(
            json_line("2026-01-01T00:00:00.000Z", &record),
            "{\"time\":\"2026-01-01T00:00:00.000Z\",\"level\":\"WARN\",\
             \"target\":\"runtime_core::report\",\"message\":\"a \\\"quoted\\\"\\nline\\u0001\",\
             \"peer\":\"127.0.0.1:4000\",\"connection\":7}"
        );
    }
}
