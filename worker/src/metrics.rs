//! The worker's metrics, per VM, in the Prometheus text format: served at
//! `http://ADDR/metrics` by the supervisor (`--metrics ADDR`), read from
//! the ledger that every executor writes, and printed as a table by
//! `ava-worker stats`.
//!
//! Every VM's series carry `vm="NAME"` (and `group="NAME"`, its isolation
//! group). See docs/worker.md for the list.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use server::Ledger;
use server::ledger::{Field, LATENCY_BUCKETS, VmSlot};

use crate::supervisor::GroupState;

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its name, type, help and samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &str, value: f64) {
        let v = if value.is_infinite() {
            "+Inf".to_string()
        } else {
            format!("{value}")
        };
        let _ = writeln!(self.out, "{name}{{{labels}}} {v}");
    }
}

/// The metrics of every VM in `ledger`, with the groups of `groups`.
pub fn render(ledger: &Ledger, groups: &[Arc<GroupState>]) -> String {
    let mut out = String::new();
    let vms = ledger.vms();
    let group_of = |vm: &str| {
        groups
            .iter()
            .find(|g| g.vm_names.iter().any(|n| n == vm))
            .map(|g| g.group.name.clone())
            .unwrap_or_default()
    };
    let labels: Vec<String> = vms
        .iter()
        .map(|v| {
            let n = v.name();
            format!("vm=\"{}\",group=\"{}\"", label(&n), label(&group_of(&n)))
        })
        .collect();
    let mut f = Family { out: &mut out };
    type Get = fn(&VmSlot) -> f64;
    let simple: [(&str, &str, &str, Get); 15] = [
        ("ava_vm_calls_total", "counter", "Calls served.", |v| {
            v.get(Field::Calls) as f64
        }),
        (
            "ava_vm_call_errors_total",
            "counter",
            "Calls rejected or failed.",
            |v| v.get(Field::Errors) as f64,
        ),
        (
            "ava_vm_kernels_total",
            "counter",
            "Kernels completed on the device.",
            |v| v.get(Field::Kernels) as f64,
        ),
        (
            "ava_vm_device_seconds_total",
            "counter",
            "Device time of completed kernels.",
            |v| v.get(Field::DeviceNs) as f64 / 1e9,
        ),
        (
            "ava_vm_kernels_in_flight",
            "gauge",
            "Kernels admitted and not completed.",
            |v| v.get(Field::InFlight) as f64,
        ),
        (
            "ava_vm_memory_bytes",
            "gauge",
            "Device memory held by the VM's objects.",
            |v| v.get(Field::Memory) as f64,
        ),
        (
            "ava_vm_memory_quota_bytes",
            "gauge",
            "The VM's memory quota (+Inf: none).",
            |v| {
                v.settings()
                    .memory_quota
                    .map_or(f64::INFINITY, |q| q as f64)
            },
        ),
        (
            "ava_vm_memory_refusals_total",
            "counter",
            "Allocations refused by the memory quota.",
            |v| v.get(Field::MemoryRefusals) as f64,
        ),
        (
            "ava_vm_throttled_seconds_total",
            "counter",
            "Time calls were held back by the scheduling policy.",
            |v| v.get(Field::ThrottledNs) as f64 / 1e9,
        ),
        ("ava_vm_channels", "gauge", "Channels attached.", |v| {
            v.get(Field::Channels) as f64
        }),
        (
            "ava_vm_processes",
            "gauge",
            "Guest processes attached.",
            |v| v.get(Field::Processes) as f64,
        ),
        (
            "ava_vm_executor_restarts_total",
            "counter",
            "Restarts of the VM's executor after it died.",
            |v| v.get(Field::Restarts) as f64,
        ),
        (
            "ava_vm_weight",
            "gauge",
            "The VM's weight in the fair share of device time.",
            |v| v.settings().weight as f64,
        ),
        (
            "ava_vm_priority",
            "gauge",
            "The VM's priority class (0 high, 1 normal, 2 low).",
            |v| v.settings().priority as f64,
        ),
        (
            "ava_vm_max_launches_per_second",
            "gauge",
            "The VM's launch rate limit (+Inf: none).",
            |v| {
                v.settings()
                    .max_launches_per_s
                    .map_or(f64::INFINITY, |r| r as f64)
            },
        ),
    ];
    for (name, kind, help, get) in simple {
        f.head(name, kind, help);
        for (v, l) in vms.iter().zip(&labels) {
            f.sample(name, l, get(v));
        }
    }
    f.head(
        "ava_vm_bytes_total",
        "counter",
        "Bytes moved between the guest and the device.",
    );
    for (v, l) in vms.iter().zip(&labels) {
        for (dir, field) in [
            ("to_device", Field::BytesToDevice),
            ("from_device", Field::BytesFromDevice),
            ("in_place", Field::BytesInPlace),
        ] {
            f.sample(
                "ava_vm_bytes_total",
                &format!("{l},direction=\"{dir}\""),
                v.get(field) as f64,
            );
        }
    }
    let apis = ledger.apis();
    f.head(
        "ava_vm_function_calls_total",
        "counter",
        "Calls served, by API and function.",
    );
    let mut errors = Vec::new();
    for (v, l) in vms.iter().zip(&labels) {
        for (api, name) in &apis {
            for func in 0..server::ledger::FUNCS {
                let (calls, errs) = v.function_calls(*api, func);
                if calls == 0 {
                    continue;
                }
                let fname = crate::backend::function_name(name, func as u32)
                    .map_or_else(|| format!("#{func}"), str::to_string);
                let fl = format!("{l},api=\"{}\",function=\"{}\"", label(name), label(&fname));
                f.sample("ava_vm_function_calls_total", &fl, calls as f64);
                errors.push((fl, errs));
            }
        }
    }
    f.head(
        "ava_vm_function_errors_total",
        "counter",
        "Calls rejected or failed, by API and function.",
    );
    for (fl, errs) in errors {
        f.sample("ava_vm_function_errors_total", &fl, errs as f64);
    }
    f.head(
        "ava_vm_call_latency_seconds",
        "histogram",
        "Time the worker took to serve a call (one call in 16 is timed).",
    );
    for (v, l) in vms.iter().zip(&labels) {
        let counts = v.latency_buckets();
        let mut cumulative = 0u64;
        for (i, c) in counts.iter().enumerate() {
            cumulative += c;
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| format!("{b}"));
            f.sample(
                "ava_vm_call_latency_seconds_bucket",
                &format!("{l},le=\"{le}\""),
                cumulative as f64,
            );
        }
        f.sample(
            "ava_vm_call_latency_seconds_sum",
            l,
            v.get(Field::LatencySumNs) as f64 / 1e9,
        );
        f.sample("ava_vm_call_latency_seconds_count", l, cumulative as f64);
    }
    f.head(
        "ava_group_executor_pid",
        "gauge",
        "The pid of each isolation group's executor process (0: not running).",
    );
    for g in groups {
        f.sample(
            "ava_group_executor_pid",
            &format!("group=\"{}\"", label(&g.group.name)),
            f64::from(g.pid().unwrap_or(0)),
        );
    }
    f.head(
        "ava_group_executor_restarts_total",
        "counter",
        "Restarts of each isolation group's executor after it died.",
    );
    for g in groups {
        f.sample(
            "ava_group_executor_restarts_total",
            &format!("group=\"{}\"", label(&g.group.name)),
            f64::from(g.restarts.load(Ordering::Relaxed)),
        );
    }
    out
}

/// Serves the metrics at `http://addr/metrics` on a thread of its own
/// until `stop`.
pub fn serve(
    addr: &str,
    ledger: Ledger,
    groups: Arc<Mutex<Vec<Arc<GroupState>>>>,
    stop: &'static AtomicBool,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let http = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("cannot serve metrics at {addr}: {e}"))?;
    tracing::info!("metrics at http://{addr}/metrics");
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok(Some(req)) = http.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let resp = if req.url() == "/metrics" {
                let gs = groups.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let header = tiny_http::Header::from_bytes(
                    &b"Content-Type"[..],
                    &b"text/plain; version=0.0.4"[..],
                )
                .expect("a valid header");
                tiny_http::Response::from_string(render(&ledger, &gs)).with_header(header)
            } else {
                tiny_http::Response::from_string("ava-worker: see /metrics\n").with_status_code(404)
            };
            let _ = req.respond(resp);
        }
    }))
}

/// Fetches `http://addr/metrics`.
pub fn fetch(addr: &str) -> anyhow::Result<String> {
    let mut s = std::net::TcpStream::connect(addr)
        .map_err(|e| anyhow::anyhow!("cannot reach the worker's metrics at {addr}: {e} (is it running with --metrics {addr}?)"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .ok_or_else(|| anyhow::anyhow!("{addr}: not an HTTP response"))?;
    Ok(body)
}

/// The value of each sample `name{…vm="VM"…}` in `text`, by VM.
pub fn by_vm(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once("} ")?;
            let vm = labels.split("vm=\"").nth(1)?.split('"').next()?;
            Some((vm.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `ava-worker stats`: the running worker's metrics as a table.
pub fn print_stats(addr: &str) -> anyhow::Result<()> {
    let text = fetch(addr)?;
    let cols = [
        ("calls", "ava_vm_calls_total", 1.0),
        ("errors", "ava_vm_call_errors_total", 1.0),
        ("kernels", "ava_vm_kernels_total", 1.0),
        ("device s", "ava_vm_device_seconds_total", 1.0),
        ("memory MiB", "ava_vm_memory_bytes", 1.0 / (1 << 20) as f64),
        (
            "quota MiB",
            "ava_vm_memory_quota_bytes",
            1.0 / (1 << 20) as f64,
        ),
        ("held s", "ava_vm_throttled_seconds_total", 1.0),
        ("channels", "ava_vm_channels", 1.0),
        ("processes", "ava_vm_processes", 1.0),
    ];
    let vms: Vec<String> = by_vm(&text, "ava_vm_calls_total")
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    print!("{:<16}", "vm");
    for (h, _, _) in cols {
        print!(" {h:>11}");
    }
    println!();
    for vm in vms {
        print!("{vm:<16}");
        for (_, name, scale) in cols {
            let v = by_vm(&text, name)
                .into_iter()
                .find(|(n, _)| *n == vm)
                .map_or(f64::NAN, |(_, v)| v * scale);
            if v.fract() == 0.0 || v.is_infinite() {
                print!(" {v:>11}");
            } else {
                print!(" {v:>11.3}");
            }
        }
        println!();
    }
    Ok(())
}
