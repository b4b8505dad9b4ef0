//! `ava-bench groups`: what isolation costs on the fast path. Two VMs
//! (regions), each with a guest process making small calls (a device
//! query) and kernel launches (each with its `clFinish`), served once by
//! one executor per VM (the default: separate isolation groups) and once by
//! one executor for both (`--isolation-group`): the figures of the shared
//! group beside those of separate groups, from the same run, alternating.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::report::{BenchResult, compare};

/// p50s of one configuration: (query, launch) of each guest.
fn one(shared: bool, quick: bool, round: usize) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut args: Vec<String> = [
        "--channels",
        "2",
        "--arena-size",
        "4194304",
        "--heap-size",
        "0",
    ]
    .map(String::from)
    .into();
    if shared {
        let r: Vec<PathBuf> = (0..2)
            .map(|i| {
                PathBuf::from(format!(
                    "/dev/shm/ava-bench-groups-{round}-{}-{i}",
                    std::process::id()
                ))
            })
            .collect();
        args.push("--isolation-group".into());
        args.push(format!("both={},{}", r[0].display(), r[1].display()));
    }
    let fleet = crate::fleet::start(&format!("groups-{round}"), 2, &args)?;
    let regions = &fleet.regions;
    let (queries, launches) = if quick { (3_000, 300) } else { (30_000, 3_000) };
    // One guest after the other: with two cores, two guests and two
    // serving threads polling at once would measure the machine's
    // oversubscription, not the executors.
    let mut p50s = Vec::new();
    for (i, r) in regions.iter().enumerate() {
        let out = Command::new(std::env::current_exe()?)
            .args(["peer", "opencl-guest"])
            .arg(i.to_string())
            .arg(queries.to_string())
            .arg(launches.to_string())
            .env("AVA_REGION", r)
            .env_remove("LD_PRELOAD")
            .output()
            .context("running a guest")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(out.status.success(), "a guest failed: {text}");
        let field = |name: &str| -> anyhow::Result<f64> {
            let mut w = text.split_whitespace();
            while let Some(x) = w.next() {
                if x == name {
                    return Ok(w.next().context("value")?.parse()?);
                }
            }
            anyhow::bail!("no {name} in {text}")
        };
        p50s.push((field("query_p50_ns")?, field("launch_p50_ns")?));
    }
    Ok(p50s)
}

/// Runs the benchmark: five rounds, each configuration once per round;
/// each figure is the median of the guests' p50s over the rounds.
pub fn run(quick: bool) -> anyhow::Result<Vec<BenchResult>> {
    let rounds = 5;
    let (mut sep, mut shared) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        eprintln!(
            "[round {}/{rounds}] separate groups, then one shared group",
            r + 1
        );
        sep.extend(one(false, quick, r)?);
        shared.extend(one(true, quick, r)?);
    }
    let median = |v: Vec<f64>| {
        let mut v = v;
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut out = vec![
        BenchResult::value(
            "query_separate_groups",
            "ns",
            median(sep.iter().map(|x| x.0).collect()),
        ),
        BenchResult::value(
            "query_shared_group",
            "ns",
            median(shared.iter().map(|x| x.0).collect()),
        ),
        BenchResult::value(
            "launch_separate_groups",
            "ns",
            median(sep.iter().map(|x| x.1).collect()),
        ),
        BenchResult::value(
            "launch_shared_group",
            "ns",
            median(shared.iter().map(|x| x.1).collect()),
        ),
    ];
    compare(&mut out, "query_shared_group", "query_separate_groups");
    compare(&mut out, "launch_shared_group", "launch_separate_groups");
    Ok(out)
}
