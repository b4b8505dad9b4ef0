//! Unmodified `clpeak` natively and remoted through a real `ava-worker`, in
//! one run: every figure it prints, remoted beside native, and the goals of
//! a remoted OpenCL device checked against them: each transfer bandwidth at
//! least 90% of native, the kernel launch latency within native + 2 µs.

use std::process::Command;

use anyhow::Context;

use crate::opencl_bench::sibling;
use crate::report::BenchResult;

/// One figure clpeak printed: section, item, value, unit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    /// A short name: `section.item`, e.g. `xfer.enqueuewritebuffer`.
    pub name: String,
    /// The unit clpeak names in the section's header (`GBPS`, `us`, ...).
    pub unit: String,
    /// The value.
    pub value: f64,
}

/// A section header's short name.
fn section(header: &str) -> String {
    let h = header.to_ascii_lowercase();
    let short = [
        ("global memory bandwidth", "gmem"),
        ("single-precision", "sp"),
        ("half-precision", "hp"),
        ("double-precision", "dp"),
        ("integer compute fast 24bit", "int24"),
        ("integer char", "char"),
        ("integer short", "short"),
        ("integer compute", "int"),
        ("transfer bandwidth", "xfer"),
        ("kernel launch latency", "launch"),
    ];
    short.iter().find(|(k, _)| h.starts_with(k)).map_or_else(
        || h.split_whitespace().next().unwrap_or("").to_string(),
        |(_, s)| s.to_string(),
    )
}

/// An item's short name: lowercase words joined by `_`, without brackets.
fn item(s: &str) -> String {
    s.to_ascii_lowercase()
        .replace(['(', ')'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
}

/// The figures of clpeak's output, in order.
pub(crate) fn parse(out: &str) -> Vec<Figure> {
    let mut figures = Vec::new();
    let (mut sec, mut unit) = (String::new(), String::new());
    for line in out.lines() {
        let t = line.trim();
        // "Kernel launch latency : 12.34 us"
        if let Some(rest) = t.strip_prefix("Kernel launch latency") {
            let v = rest.trim_start_matches([' ', ':']);
            let mut w = v.split_whitespace();
            if let (Some(n), Some(u)) = (w.next(), w.next())
                && let Ok(value) = n.parse()
            {
                figures.push(Figure {
                    name: "launch.latency".into(),
                    unit: u.into(),
                    value,
                });
            }
            continue;
        }
        // "Global memory bandwidth (GBPS)"
        if let (Some(open), true, false) = (t.rfind('('), t.ends_with(')'), t.contains(':')) {
            sec = section(&t[..open]);
            unit = t[open + 1..t.len() - 1].to_string();
            continue;
        }
        if sec.is_empty() {
            continue;
        }
        if let Some((k, v)) = t.split_once(':')
            && let Ok(value) = v.trim().parse::<f64>()
        {
            figures.push(Figure {
                name: format!("{sec}.{}", item(k)),
                unit: unit.clone(),
                value,
            });
        }
    }
    figures
}

/// Runs clpeak with `args` natively, then remoted; returns the figures of
/// both, each remoted one with its ratio to native, and the goals' lines.
pub(crate) fn run(
    args: &[String],
    heap_size: Option<u64>,
) -> anyhow::Result<(Vec<BenchResult>, Vec<String>)> {
    let lib = sibling("libava_opencl.so")?;
    eprintln!("clpeak {}: native run", args.join(" "));
    let native = Command::new("clpeak")
        .args(args)
        .output()
        .context("running clpeak (Debian package `clpeak`)")?;
    anyhow::ensure!(
        native.status.success(),
        "native clpeak failed: {}",
        native.status
    );
    let worker_args: Vec<String> = heap_size
        .map(|h| vec!["--heap-size".to_string(), h.to_string()])
        .unwrap_or_default();
    let fleet = crate::fleet::start("clpeak", 1, &worker_args)?;
    eprintln!("clpeak {}: remoted run", args.join(" "));
    let remote = Command::new("clpeak")
        .args(args)
        .env("AVA_REGION", &fleet.regions[0])
        .env("LD_PRELOAD", &lib)
        .output()
        .context("running clpeak remoted")?;
    anyhow::ensure!(
        remote.status.success(),
        "remoted clpeak failed: {}",
        remote.status
    );
    drop(fleet);
    let n = parse(&String::from_utf8_lossy(&native.stdout));
    let r = parse(&String::from_utf8_lossy(&remote.stdout));
    anyhow::ensure!(!n.is_empty(), "no figures in clpeak's output");
    let mut results = Vec::new();
    let mut goals = Vec::new();
    for f in &n {
        let Some(g) = r.iter().find(|g| g.name == f.name) else {
            goals.push(format!("MISSING remoted: {}", f.name));
            continue;
        };
        results.push(BenchResult::value(
            &format!("{}.native", f.name),
            &f.unit,
            f.value,
        ));
        let mut rem = BenchResult::value(&format!("{}.remoted", f.name), &g.unit, g.value);
        rem.baseline = Some(format!("{}.native", f.name));
        rem.ratio = (f.value > 0.0).then(|| g.value / f.value);
        results.push(rem);
        if f.name.starts_with("xfer.") {
            let ratio = g.value / f.value;
            goals.push(format!(
                "{} {}: remoted {:.2} {} vs native {:.2}: {:.0}% (goal: at least 90%)",
                if ratio >= 0.9 { "MET  " } else { "UNMET" },
                f.name,
                g.value,
                g.unit,
                f.value,
                ratio * 100.0
            ));
        } else if f.name == "launch.latency" {
            let over = g.value - f.value;
            goals.push(format!(
                "{} {}: remoted {:.2} {} vs native {:.2}: +{:.2} {} (goal: at most +2 us)",
                if over <= 2.0 { "MET  " } else { "UNMET" },
                f.name,
                g.value,
                g.unit,
                f.value,
                over,
                g.unit
            ));
        }
    }
    Ok((results, goals))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_items_and_latency() {
        let out = "Platform: Portable Computing Language\n  Device: cpu\n    Driver version  : 5.0 (Linux x64)\n\n    Global memory bandwidth (GBPS)\n      float   : 10.50\n      float2  : 11.25\n\n    Transfer bandwidth (GBPS)\n      enqueueWriteBuffer              : 5.12\n      enqueueMapBuffer(for read)      : 200.00\n        memcpy from mapped ptr        : 6.00\n\n    Kernel launch latency : 12.34 us\n";
        let f = parse(out);
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gmem.float",
                "gmem.float2",
                "xfer.enqueuewritebuffer",
                "xfer.enqueuemapbuffer_for_read",
                "xfer.memcpy_from_mapped_ptr",
                "launch.latency"
            ]
        );
        assert_eq!(f[0].unit, "GBPS");
        assert_eq!(f[5].unit, "us");
        assert!((f[5].value - 12.34).abs() < 1e-9);
        assert!((f[2].value - 5.12).abs() < 1e-9);
    }
}
