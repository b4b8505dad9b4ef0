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

/// A plotted series: its name, its points, and whether it uses the right
/// axis.
pub type Series<'a> = (&'a str, &'a [(f64, f64)], bool);

/// A line plot as SVG: each series (name, points, whether on the right
/// axis) against a shared x axis (log2-spaced when its values are powers
/// of two); the left and right axes are scaled to their series.
pub fn svg_plot(title: &str, x_label: &str, series: &[Series<'_>]) -> String {
    use std::fmt::Write as _;
    let (w, h, l, r, t, b) = (720.0, 420.0, 90.0, 90.0, 40.0, 60.0);
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .collect();
    let (x0, x1) = (
        xs.iter().copied().fold(f64::MAX, f64::min).max(1.0).log2(),
        xs.iter().copied().fold(f64::MIN, f64::max).max(2.0).log2(),
    );
    let top = |right: bool| {
        series
            .iter()
            .filter(|s| s.2 == right)
            .flat_map(|s| s.1.iter().map(|p| p.1))
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.1
    };
    let (yl, yr) = (top(false), top(true));
    let px = |x: f64| l + (x.max(1.0).log2() - x0) / (x1 - x0).max(1e-9) * (w - l - r);
    let py = |y: f64, right: bool| h - b - y / if right { yr } else { yl } * (h - t - b);
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];
    let mut o = String::new();
    let _ = write!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{title}</text>\n\
         <line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{}\" y1=\"{t}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x_label}</text>\n",
        w / 2.0,
        h - b,
        w - r,
        h - b,
        h - b,
        w - r,
        w - r,
        h - b,
        w / 2.0,
        h - 15.0
    );
    let mut xs_sorted = xs.clone();
    xs_sorted.sort_by(f64::total_cmp);
    xs_sorted.dedup();
    for x in xs_sorted {
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{x}</text>",
            px(x),
            h - b + 18.0
        );
    }
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.3e}</text>\n<text x=\"{}\" y=\"{:.1}\">{:.3e}</text>",
            l - 6.0,
            py(f * yl, false) + 4.0,
            f * yl,
            w - r + 6.0,
            py(f * yr, true) + 4.0,
            f * yr
        );
    }
    for (i, (name, pts, right)) in series.iter().enumerate() {
        let c = colours[i % colours.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y, *right)))
            .collect();
        let _ = writeln!(
            o,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for &(x, y) in pts.iter() {
            let _ = writeln!(
                o,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"/>",
                px(x),
                py(y, *right)
            );
        }
        let axis = if *right { "right axis" } else { "left axis" };
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"{}\" fill=\"{c}\">{name} ({axis})</text>",
            l + 10.0,
            t + 16.0 + 16.0 * i as f64
        );
    }
    o.push_str("</svg>\n");
    o
}
