//! A real `ava-worker` serving regions of its own for a benchmark: started,
//! waited for, and stopped with its region files removed when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::opencl_bench::{Worker, sibling};

/// A worker and its regions (one per VM).
pub(crate) struct Fleet {
    /// The worker process (its first region is removed with it).
    pub worker: Worker,
    /// The regions, in order.
    pub regions: Vec<PathBuf>,
    _others: Vec<Remove>,
}

/// Starts `ava-worker` on `n` new regions named after `tag`, with `args`
/// besides `--region` (and AVA_LOG=warn), and waits until it serves them.
pub(crate) fn start(tag: &str, n: usize, args: &[String]) -> anyhow::Result<Fleet> {
    let regions: Vec<PathBuf> = (0..n)
        .map(|i| {
            PathBuf::from(format!(
                "/dev/shm/ava-bench-{tag}-{}-{i}",
                std::process::id()
            ))
        })
        .collect();
    for r in &regions {
        let _ = std::fs::remove_file(r);
    }
    let mut c = Command::new(sibling("ava-worker")?);
    for r in &regions {
        c.arg("--region").arg(r);
    }
    c.args(args).env("AVA_LOG", "warn");
    let worker = Worker(
        c.spawn().context("starting ava-worker")?,
        regions[0].clone(),
    );
    let fleet = Fleet {
        worker,
        _others: regions[1..].iter().cloned().map(Remove).collect(),
        regions,
    };
    let start = Instant::now();
    while !fleet
        .regions
        .iter()
        .all(|r| transport::Region::open(r).is_ok_and(|r| r.worker_heartbeat() > 0))
    {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "the worker did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(fleet)
}

/// Removes a region file when dropped.
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
