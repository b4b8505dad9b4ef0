//! Results: a table for people, JSON for machines.

use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

/// One measured figure, with the baseline it is compared to.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Stable name, e.g. `ring_rtt`.
    pub name: String,
    /// Unit of the figures, e.g. `ns` or `msgs/s`.
    pub unit: String,
    /// Percentiles, for latency figures.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// The headline value: p50 for latencies, the rate for throughputs.
    pub value: f64,
    /// Name of the result this one is compared against, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// `value / baseline value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

impl BenchResult {
    /// A latency figure from a histogram of nanoseconds.
    pub fn latency(name: &str, h: &Histogram<u64>) -> BenchResult {
        let q = |p: f64| Some(h.value_at_quantile(p) as f64);
        BenchResult {
            name: name.into(),
            unit: "ns".into(),
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
            value: h.value_at_quantile(0.5) as f64,
            baseline: None,
            ratio: None,
        }
    }

    /// A rate or other single-valued figure.
    pub fn value(name: &str, unit: &str, value: f64) -> BenchResult {
        BenchResult {
            name: name.into(),
            unit: unit.into(),
            p50: None,
            p99: None,
            p999: None,
            value,
            baseline: None,
            ratio: None,
        }
    }
}

/// Sets `ratio` of `name` against `baseline` (both must be present).
pub fn compare(results: &mut [BenchResult], name: &str, baseline: &str) {
    let Some(base) = results.iter().find(|r| r.name == baseline).map(|r| r.value) else {
        return;
    };
    if let Some(r) = results.iter_mut().find(|r| r.name == name) {
        r.baseline = Some(baseline.into());
        r.ratio = Some(r.value / base);
    }
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1e6 => format!("{:.3e}", v),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// Prints the results as an aligned table.
pub fn print_table(title: &str, results: &[BenchResult]) {
    println!("\n{title} benchmark");
    println!(
        "{:<20} {:>8} {:>11} {:>11} {:>11} {:>11}  {:<18} {:>8}",
        "name", "unit", "p50", "p99", "p99.9", "value", "baseline", "ratio"
    );
    for r in results {
        println!(
            "{:<20} {:>8} {:>11} {:>11} {:>11} {:>11}  {:<18} {:>8}",
            r.name,
            r.unit,
            fmt(r.p50),
            fmt(r.p99),
            fmt(r.p999),
            fmt(Some(r.value)),
            r.baseline.as_deref().unwrap_or("-"),
            r.ratio.map(|x| format!("{x:.3}")).unwrap_or("-".into()),
        );
    }
}

/// Writes `{"results": [...]}` to `path`.
pub fn write_json(path: &Path, results: &[BenchResult]) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Doc<'a> {
        results: &'a [BenchResult],
    }
    std::fs::write(path, serde_json::to_string_pretty(&Doc { results })?)?;
    Ok(())
}
