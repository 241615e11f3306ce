//! What people read: the machine, the markdown table, the goals, and the latency plots.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::client::{LoadResult, Shape};

/// The name prefix of the canned responder's rows (`canned-epoll`, `canned-threads`).
pub const CANNED: &str = "canned";

/// The percentiles of the table, as quantiles.
pub const PERCENTILES: [(f64, &str); 4] =
    [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9")];

/// The project's goals for shape 1x32 (README.md, "Benchmarks").
pub const GOAL_SHAPE: &str = "1x32";
/// At least this fraction of the canned responder's throughput.
pub const GOAL_FRACTION: f64 = 0.90;
/// p99 below this, µs.
pub const GOAL_P99_US: f64 = 200.0;
/// Agent CPU per ACK at most this, µs.
pub const GOAL_CPU_US: f64 = 2.0;

/// One measured row.
#[derive(Clone, Debug)]
pub struct Row {
    /// `canned`, `std`, `uring`, ...
    pub runtime: String,
    /// What was measured.
    pub result: LoadResult,
}

/// The machine, for the top of the report.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "model name" | "Model" | "Hardware" | "cpu model")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let online = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    // Not this process's CPUs: by now the harness may have pinned itself to the load
    // generator's (the report's placement line says which CPUs each side got).
    format!(
        "{model}; {online} CPUs online; Linux {kernel}; {}",
        env!("LOADGEN_RUSTC_VERSION"),
    )
}

/// `/proc/loadavg`'s three averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn us(v: f64) -> String {
    if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The best canned rate at `shape`, if measured.
fn canned_rate(rows: &[Row], shape: Shape) -> Option<f64> {
    rows.iter()
        .filter(|r| r.runtime.starts_with(CANNED) && r.result.shape == shape)
        .map(|r| r.result.rate())
        .fold(None, |best: Option<f64>, r| {
            Some(best.map_or(r, |b| b.max(r)))
        })
        .filter(|&r| r > 0.0)
}

/// Fraction of the canned rate of the same shape.
pub fn fraction_of_canned(rows: &[Row], row: &Row) -> Option<f64> {
    canned_rate(rows, row.result.shape).map(|c| row.result.rate() / c)
}

/// The markdown table, rows grouped by shape in the order given.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| runtime | shape | ACKs/s | % of canned | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors | agent CPU µs/ACK | agent syscalls/ACK | agent ctx switches/ACK | loadgen CPU µs/ACK |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let r = &row.result;
        let pct = fraction_of_canned(rows, row)
            .map(|f| format!("{:.0}%", f * 100.0))
            .unwrap_or_else(|| "–".into());
        let cpu = |c| {
            r.per_ack_us(c)
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "–".into())
        };
        let lat: Vec<String> = if r.acks > 0 {
            PERCENTILES
                .iter()
                .map(|(q, _)| us(r.quantile_us(*q)))
                .chain([us(r.max_us())])
                .collect()
        } else {
            vec!["–".into(); 5]
        };
        let syscalls = r
            .agent_syscalls_per_ack
            .map_or_else(|| "–".into(), |v| format!("{v:.2}"));
        let switches = match (r.agent_switches, r.acks) {
            (Some(n), acks) if acks > 0 => format!("{:.3}", n as f64 / acks as f64),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.runtime,
            r.shape,
            thousands(r.rate()),
            pct,
            lat.join(" | "),
            r.errors,
            cpu(r.agent_cpu),
            syscalls,
            switches,
            cpu(r.loadgen_cpu),
        );
    }
    out
}

/// The first errors of every row that had some.
pub fn error_details(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows.iter().filter(|r| r.result.errors > 0) {
        let _ = writeln!(
            out,
            "- {} {}: {} errors; first: {}",
            row.runtime,
            row.result.shape,
            row.result.errors,
            row.result.first_errors.join("; ")
        );
    }
    out
}

/// The project's goals for [`GOAL_SHAPE`], one line per agent runtime, measured not judged.
pub fn goals(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows
        .iter()
        .filter(|r| !r.runtime.starts_with(CANNED) && r.result.shape.to_string() == GOAL_SHAPE)
    {
        let r = &row.result;
        let mark = |ok: bool| if ok { "met" } else { "MISSED" };
        let frac = fraction_of_canned(rows, row);
        let p99 = r.quantile_us(0.99);
        let cpu = r.per_ack_us(r.agent_cpu);
        let _ = writeln!(
            out,
            "- {} {GOAL_SHAPE}: throughput {} of canned (goal ≥ {:.0}%: {}); p99 {} µs (goal < {GOAL_P99_US:.0}: {}); agent CPU {} µs/ACK (goal ≤ {GOAL_CPU_US:.0}: {}); errors {}",
            row.runtime,
            frac.map_or("–".into(), |f| format!("{:.0}%", f * 100.0)),
            GOAL_FRACTION * 100.0,
            frac.map_or("unknown", |f| mark(f >= GOAL_FRACTION)),
            us(p99),
            mark(r.acks > 0 && p99 < GOAL_P99_US),
            cpu.map_or("–".into(), |c| format!("{c:.2}")),
            cpu.map_or("unknown", |c| mark(c <= GOAL_CPU_US)),
            r.errors,
        );
    }
    out
}

/// The x of quantile `q` on the "nines" axis: 0.9 -> 1, 0.99 -> 2, 0.999 -> 3.
fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-12).log10()
}

fn percentile_label(x: f64) -> String {
    if x < 1e-9 {
        return "min".into();
    }
    let q = 1.0 - 10f64.powf(-x);
    let pct = q * 100.0;
    let decimals = (x.round() as i32 - 2).max(0) as usize;
    format!("p{pct:.decimals$}")
}

/// The canned responder in greys (the reference), each runtime in its own colour.
fn series_color(name: &str, i: usize) -> RGBAColor {
    const OTHERS: [RGBColor; 4] = [
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(23, 190, 207),
        RGBColor(140, 86, 75),
    ];
    let rgb = match name {
        "canned-epoll" => RGBColor(100, 100, 100),
        n if n.starts_with(CANNED) => RGBColor(175, 175, 175),
        "std" => RGBColor(31, 119, 180),
        "uring" => RGBColor(214, 39, 40),
        n if n.starts_with("uring-spin") => RGBColor(255, 127, 14),
        _ => OTHERS[i % OTHERS.len()],
    };
    rgb.to_rgba()
}

/// Plots the latency percentile curves of every runtime measured at `shape` into an SVG file.
pub fn plot(rows: &[Row], shape: Shape, path: &Path, subtitle: &str) -> Result<(), String> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = rows
        .iter()
        .filter(|r| r.result.shape == shape && r.result.acks > 0)
        .map(|r| {
            let h = &r.result.latency_ns;
            // Up to the quantile that still has samples beyond it.
            let top = (h.len() as f64).log10().clamp(1.0, 5.0);
            let steps = (top / 0.025).round() as usize;
            let pts: Vec<(f64, f64)> = (0..=steps)
                .map(|i| {
                    let x = i as f64 * 0.025;
                    let q = 1.0 - 10f64.powf(-x);
                    (x, h.value_at_quantile(q) as f64 / 1000.0)
                })
                .collect();
            (r.runtime.as_str(), pts)
        })
        .collect();
    if series.is_empty() {
        return Err(format!("no data for shape {shape}"));
    }
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.last().map(|l| l.0))
        .fold(1.0, f64::max);
    let x_max = (x_max - 1e-6).ceil();
    let (y_min, y_max) = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|v| v.1))
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let y_min = (y_min * 0.8).max(0.1);
    let y_max = (y_max * 1.25).max(y_min * 10.0);

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("plot {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("SPOA latency, NOTIFY write -> ACK read, shape {shape} ({subtitle})"),
            ("sans-serif", 18),
        )
        .margin(12)
        .margin_right(40)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                percentile_label(*x)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| {
            if *y >= 10.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        })
        .x_desc("percentile")
        .y_desc("latency (µs, log scale)")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = series_color(name, i);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        let marks = [0.5, 0.9, 0.99, 0.999]
            .iter()
            .map(|&q| nines(q))
            .filter_map(|x| pts.iter().find(|p| (p.0 - x).abs() < 0.013).copied());
        chart
            .draw_series(marks.map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(percentile_label(1.0), "p90");
        assert_eq!(percentile_label(2.0), "p99");
        assert_eq!(percentile_label(3.0), "p99.9");
        assert_eq!(percentile_label(4.0), "p99.99");
        assert_eq!(percentile_label(0.0), "min");
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
    }
}
