//! `ava-bench all`: every benchmark in one run, with a progress bar, into
//! `DIR/results.json` and `DIR/report.md` with SVG plots. Every figure sits
//! beside its baseline from the same run, and the report names the machine.
//! With `--docs FILE` the same report also becomes the documentation's
//! results page (`docs/benchmarks.md` is written this way, never by hand).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::report::{BenchResult, Series, svg_plot};

/// One benchmark's results, with what it ran on.
#[derive(Serialize)]
struct Section {
    name: &'static str,
    /// What the figures were measured on, when it is not the obvious.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    seconds: f64,
    results: Vec<BenchResult>,
    /// Why the benchmark could not run, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The machine the figures come from.
#[derive(Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    kernel: String,
    opencl_device: String,
    date: String,
}

#[derive(Serialize)]
struct Doc<'a> {
    machine: &'a Machine,
    quick: bool,
    sections: &'a [Section],
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let opencl_device = std::process::Command::new("clinfo")
        .arg("-l")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.split_once("Device #0:").map(|(_, d)| d.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown (clinfo -l lists none)".into());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        kernel,
        opencl_device,
        date,
    }
}

/// The CUDA driver to measure: the host's when it loads, else the stand-in
/// test double built beside this program (labelled as such).
fn cuda_driver() -> (String, Option<String>) {
    // SAFETY: loading the driver runs its initialisers, as any CUDA program
    // does; nothing of it is called here.
    if unsafe { libloading::Library::new("libcuda.so.1") }.is_ok() {
        return ("libcuda.so.1".into(), None);
    }
    let standin = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("libava_cuda_standin.so")))
        .unwrap_or_else(|| PathBuf::from("libava_cuda_standin.so"));
    (
        standin.display().to_string(),
        Some(
            "no CUDA driver on this machine: measured on the stand-in driver \
             (libava_cuda_standin.so, a test double that executes PTX on the CPU), \
             natively and remoted; the figures show the remoting's cost, not a GPU's"
                .into(),
        ),
    )
}

/// Runs every benchmark and writes the results and the report into `out`,
/// and the documentation's results page into `docs` when given.
pub fn run(quick: bool, out: &Path, docs: Option<&Path>) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let machine = machine();
    let (cuda_lib, cuda_note) = cuda_driver();
    let scaling_svg = out.join("scaling.svg");
    type Job<'a> = (
        &'static str,
        Box<dyn Fn() -> anyhow::Result<Vec<BenchResult>> + 'a>,
    );
    let jobs: Vec<Job<'_>> = vec![
        (
            "transport",
            Box::new(|| crate::transport_bench::run(quick, [0, 1])),
        ),
        (
            "opencl",
            Box::new(|| crate::opencl_bench::run(quick, "libOpenCL.so.1")),
        ),
        (
            "scaling",
            Box::new(|| crate::scaling_bench::run(quick, Some(&scaling_svg))),
        ),
        ("idle", Box::new(|| crate::idle_bench::run(quick))),
        (
            "cuda",
            Box::new(|| crate::cuda_bench::run(quick, &cuda_lib)),
        ),
    ];
    let bar = indicatif::ProgressBar::new(jobs.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "[{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} benchmarks, now: {msg}",
        )?
        .progress_chars("##-"),
    );
    let mut sections = Vec::new();
    // Some benchmarks pin this process to a core; each starts from the
    // affinity the run started with (a pinned worker and guest would share
    // one core, and every call would wait for a context switch).
    let affinity = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))?;
    for (name, job) in &jobs {
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &affinity)?;
        bar.set_message(*name);
        let t = Instant::now();
        // The benchmarks print their own progress; the bar is redrawn after.
        let r = bar.suspend(job);
        let seconds = t.elapsed().as_secs_f64();
        let (results, error) = match r {
            Ok(r) => {
                crate::report::print_table(name, &r);
                (r, None)
            }
            Err(e) => {
                eprintln!("{name}: could not run: {e:#}");
                (Vec::new(), Some(format!("{e:#}")))
            }
        };
        sections.push(Section {
            name,
            note: (*name == "cuda").then(|| cuda_note.clone()).flatten(),
            seconds,
            results,
            error,
        });
        bar.inc(1);
    }
    bar.finish_with_message("done");
    let doc = Doc {
        machine: &machine,
        quick,
        sections: &sections,
    };
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&doc)?,
    )?;
    let plots = write_plots(out, &sections)?;
    let mut page = format!(
        "# Benchmark report\n\nWritten by `ava-bench all{}`; every ratio compares a figure with its baseline measured in the same run.\n\n",
        if quick { " --quick" } else { "" }
    );
    page += &report(&machine, &sections, &plots, "");
    std::fs::write(out.join("report.md"), page)?;
    eprintln!(
        "wrote {} and {}",
        out.join("results.json").display(),
        out.join("report.md").display()
    );
    if let Some(docs) = docs {
        std::fs::write(
            docs,
            docs_page(&machine, quick, &sections, &plots, out, docs)?,
        )?;
        eprintln!("wrote {}", docs.display());
    }
    Ok(())
}

/// The documentation's results page: how it was made and how to reproduce
/// it, then the report with its plots linked from where the page lies.
fn docs_page(
    m: &Machine,
    quick: bool,
    sections: &[Section],
    plots: &[(String, String)],
    out: &Path,
    docs: &Path,
) -> anyhow::Result<String> {
    let page_dir = std::path::absolute(docs)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let out_abs = std::path::absolute(out)?;
    // Links from the page into DIR: relative when DIR is under the page's
    // folder, absolute otherwise.
    let link = match out_abs.strip_prefix(&page_dir) {
        Ok(rel) if rel.as_os_str().is_empty() => String::new(),
        Ok(rel) => format!("{}/", rel.display()),
        Err(_) => format!("{}/", out_abs.display()),
    };
    let total: f64 = sections.iter().map(|s| s.seconds).sum();
    let q = if quick { " --quick" } else { "" };
    // The arguments that wrote this page, which reproduce it.
    let args = format!("{q} --out {} --docs {}", out.display(), docs.display());
    let mut o = String::new();
    let _ = writeln!(o, "# Benchmark results\n");
    let _ = writeln!(
        o,
        "<!-- Written by `ava-bench all{args}`; do not edit: run it again. -->\n"
    );
    let _ = writeln!(
        o,
        "Every benchmark of `ava-bench all{q}` in one run ({total:.0} s), on the machine named below. \
         Each figure sits beside its baseline measured in the same run (alternating rounds where a \
         baseline is a native run), so a ratio holds on this machine even where the absolute figures \
         move with its load. The machine-readable results are [{link}results.json]({link}results.json).\n"
    );
    let _ = writeln!(
        o,
        "To reproduce on your machine (builds what it needs, then also runs clpeak natively and remoted):\n"
    );
    let _ = writeln!(o, "```sh\nbash scripts/bench.sh{args}\n```\n");
    let _ = writeln!(
        o,
        "What each figure measures, the goals set for them, and earlier full runs of each benchmark \
         with their discussion: [benchmark-notes.md](benchmark-notes.md).\n"
    );
    o += &report(m, sections, plots, &link);
    Ok(o)
}

fn find<'a>(sections: &'a [Section], section: &str, name: &str) -> Option<&'a BenchResult> {
    sections
        .iter()
        .find(|s| s.name == section)?
        .results
        .iter()
        .find(|r| r.name == name)
}

/// The plots that the results allow, written into `out`: (file, caption).
fn write_plots(out: &Path, sections: &[Section]) -> anyhow::Result<Vec<(String, String)>> {
    let mut plots = Vec::new();
    // Latency of a small exchange by transport, at three percentiles.
    let pct = |s: &str, n: &str| -> Option<Vec<(f64, f64)>> {
        let r = find(sections, s, n)?;
        Some(vec![
            (50.0, r.p50? / 1000.0),
            (99.0, r.p99? / 1000.0),
            (99.9, r.p999? / 1000.0),
        ])
    };
    let named = [
        (
            "transport",
            "pingpong_rtt",
            "shared-memory ping-pong (the limit)",
            false,
        ),
        ("transport", "ring_rtt", "ring round trip", false),
        (
            "opencl",
            "query_remoted",
            "remoted clGetDeviceInfo (rings)",
            false,
        ),
        ("transport", "unix_rtt", "Unix socket round trip", true),
        ("transport", "tcp_rtt", "TCP round trip", true),
    ];
    /// A series to plot: label, points, right axis.
    type Line<'a> = (&'a str, Vec<(f64, f64)>, bool);
    let data: Vec<Line<'_>> = named
        .iter()
        .filter_map(|&(s, n, label, right)| Some((label, pct(s, n)?, right)))
        .collect();
    if !data.is_empty() {
        let series: Vec<Series<'_>> = data
            .iter()
            .map(|(l, p, r)| (*l, p.as_slice(), *r))
            .collect();
        std::fs::write(
            out.join("latency.svg"),
            svg_plot(
                "Round-trip latency (µs) by percentile",
                "percentile",
                &series,
            ),
        )?;
        plots.push((
            "latency.svg".into(),
            "Latency of a small exchange (µs) at p50, p99 and p99.9: the rings and a remoted call (left axis) against the shared-memory ping-pong and sockets (right axis).".into(),
        ));
    }
    // Bandwidth by size against native.
    let sizes = [
        ("4KiB", 4.0),
        ("64KiB", 64.0),
        ("1MiB", 1024.0),
        ("4MiB", 4096.0),
        ("16MiB", 16384.0),
    ];
    let mut bw: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for dir in ["write", "read"] {
        for side in ["remoted", "native"] {
            let pts: Vec<(f64, f64)> = sizes
                .iter()
                .filter_map(|(n, kib)| {
                    Some((
                        *kib,
                        find(sections, "opencl", &format!("{dir}_bw_{n}_{side}"))?.value / 1e9,
                    ))
                })
                .collect();
            if !pts.is_empty() {
                bw.push((format!("{dir} {side}"), pts));
            }
        }
    }
    if !bw.is_empty() {
        let series: Vec<Series<'_>> = bw
            .iter()
            .map(|(l, p)| (l.as_str(), p.as_slice(), false))
            .collect();
        std::fs::write(
            out.join("bandwidth.svg"),
            svg_plot(
                "OpenCL transfer bandwidth (GB/s)",
                "transfer size (KiB)",
                &series,
            ),
        )?;
        plots.push((
            "bandwidth.svg".into(),
            "Blocking reads and writes of a buffer by size (GB/s), remoted and native, in the same run.".into(),
        ));
    }
    if out.join("scaling.svg").exists() {
        plots.push((
            "scaling.svg".into(),
            "Small calls from 1 to 16 guests, each in a VM of its own: aggregate calls/s and latency.".into(),
        ));
    }
    // Idle: worker CPU and wake-up latency, doorbells against polling.
    let idle: Vec<(&str, f64)> = [
        ("worker CPU, doorbells (% core)", "worker_cpu_adaptive"),
        ("worker CPU, polling (% core)", "worker_cpu_poll"),
    ]
    .iter()
    .filter_map(|(l, n)| Some((*l, find(sections, "idle", n)?.value)))
    .collect();
    if !idle.is_empty() {
        std::fs::write(
            out.join("idle.svg"),
            svg_bars("Idle guests: worker CPU", &idle),
        )?;
        plots.push((
            "idle.svg".into(),
            "What 16 idle guests cost the worker, with doorbells and with polling.".into(),
        ));
    }
    Ok(plots)
}

/// A horizontal bar chart as SVG, each bar labelled with its value.
fn svg_bars(title: &str, bars: &[(&str, f64)]) -> String {
    let (w, row, l) = (720.0, 28.0, 260.0);
    let h = 50.0 + row * bars.len() as f64;
    let top = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{title}</text>",
        w / 2.0
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let len = v / top * (w - l - 90.0);
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>\n\
             <rect x=\"{l}\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"#1f77b4\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{v:.3}</text>",
            l - 8.0,
            y + row * 0.6,
            row * 0.7,
            l + len + 6.0,
            y + row * 0.6
        );
    }
    o.push_str("</svg>\n");
    o
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "".into(),
        Some(v) if v.abs() >= 1e6 => format!("{v:.3e}"),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// The report: the machine, then each benchmark's table (each figure with
/// its baseline and ratio from the same run), then the plots.
/// `link` is prefixed to the plots' file names.
fn report(m: &Machine, sections: &[Section], plots: &[(String, String)], link: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "| machine | |\n|---|---|");
    let _ = writeln!(o, "| CPU | {} |", m.cpu);
    let _ = writeln!(o, "| cores | {} |", m.cores);
    let _ = writeln!(o, "| kernel | {} |", m.kernel);
    let _ = writeln!(o, "| OpenCL device | {} |", m.opencl_device);
    let _ = writeln!(o, "| date | {} |\n", m.date);
    for s in sections {
        let _ = writeln!(o, "## {} ({:.0} s)\n", s.name, s.seconds);
        if let Some(n) = &s.note {
            let _ = writeln!(o, "{n}.\n");
        }
        if let Some(e) = &s.error {
            let _ = writeln!(o, "Could not run: {e}\n");
            continue;
        }
        let _ = writeln!(
            o,
            "| figure | unit | p50 | p99 | p99.9 | value | baseline | ratio |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
        for r in &s.results {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                r.unit,
                num(r.p50),
                num(r.p99),
                num(r.p999),
                num(Some(r.value)),
                r.baseline.as_deref().unwrap_or(""),
                r.ratio.map(|x| format!("{x:.3}")).unwrap_or_default()
            );
        }
        let _ = writeln!(o);
    }
    if !plots.is_empty() {
        let _ = writeln!(o, "## Plots\n");
        for (file, caption) in plots {
            let _ = writeln!(o, "![{caption}]({link}{file})\n\n{caption}\n");
        }
    }
    o
}
