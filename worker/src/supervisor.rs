//! The supervisor: one executor process per isolation group of VMs.
//!
//! A driver that aborts or faults takes down the process it runs in. So the
//! worker runs every backend in **executor** processes — `ava-worker`
//! itself, started with `--executor` — one per isolation group: the VMs of
//! one group share a process and its device contexts (fine-grained sharing);
//! VMs of different groups share nothing a driver fault can reach. By
//! default every VM (region) is a group of its own.
//!
//! The supervisor holds every region's worker lease (the executors serve
//! under it), waits on each executor (the exit is noticed at once, not after
//! a timeout), and when one dies: logs how it died and which call it was
//! executing (from the executor's [`InFlight`] table), takes its VMs'
//! claimed channels back so that their guests get errors instead of waiting
//! (the guest library then opens a new channel), and starts the executor
//! again, with a backoff that grows while it keeps dying soon after
//! starting. Other groups see nothing of it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use server::InFlight;
use transport::{ChannelState, Region};

/// One isolation group: a name and its regions (VMs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group's name (for a VM that is a group of its own, its region's
    /// file name).
    pub name: String,
    /// The regions of its VMs.
    pub regions: Vec<PathBuf>,
}

/// The groups of `regions`: each `NAME=PATH[,PATH…]` of `specs` puts those
/// regions in group `NAME`; every other region is a group of its own.
pub fn groups(regions: &[PathBuf], specs: &[String]) -> anyhow::Result<Vec<Group>> {
    let mut out: Vec<Group> = Vec::new();
    let mut placed: Vec<&PathBuf> = Vec::new();
    for spec in specs {
        let (name, paths) = spec.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("isolation group `{spec}`: expected NAME=PATH[,PATH...]")
        })?;
        anyhow::ensure!(!name.is_empty(), "isolation group `{spec}` has no name");
        anyhow::ensure!(
            out.iter().all(|g| g.name != name),
            "isolation group `{name}` is given twice"
        );
        let mut group = Group {
            name: name.to_string(),
            regions: Vec::new(),
        };
        for p in paths.split(',').filter(|p| !p.is_empty()) {
            let r = regions.iter().find(|r| r.as_os_str() == p).ok_or_else(|| {
                anyhow::anyhow!("isolation group `{name}`: {p} is not one of the --region paths")
            })?;
            anyhow::ensure!(!placed.contains(&r), "{p} is in two isolation groups");
            placed.push(r);
            group.regions.push(r.clone());
        }
        anyhow::ensure!(
            !group.regions.is_empty(),
            "isolation group `{name}` has no region"
        );
        out.push(group);
    }
    for r in regions.iter().filter(|r| !placed.contains(r)) {
        out.push(Group {
            name: server::name_of_region(r),
            regions: vec![r.clone()],
        });
    }
    Ok(out)
}

/// How executors are started.
#[derive(Debug, Clone)]
pub struct ExecutorCommand {
    /// The program (this `ava-worker`).
    pub program: PathBuf,
    /// Arguments every executor gets (backends, libraries, timeouts).
    pub common_args: Vec<String>,
}

/// The exit status of an executor that cannot start (no backend loads, a
/// region cannot be served): the supervisor stops instead of restarting it.
pub const EXIT_CANNOT_START: i32 = 78;

/// Shortest and longest wait before restarting an executor.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));
/// An executor that ran this long before dying starts again at once.
const HEALTHY: Duration = Duration::from_secs(10);

/// A running isolation group, as the supervisor and its metrics see it.
#[derive(Debug)]
pub struct GroupState {
    /// The group.
    pub group: Group,
    /// Its VMs' names, as its regions (for the ledger and logs).
    pub vm_names: Vec<String>,
    /// The executor's pid while it runs.
    pub child_pid: Mutex<Option<u32>>,
    /// Times the executor was restarted after dying.
    pub restarts: AtomicU32,
    /// Set to stop this group alone (a VM removed by a reload).
    pub stop: AtomicBool,
}

impl GroupState {
    /// A group not started yet.
    pub fn new(group: Group, vm_names: Vec<String>) -> GroupState {
        GroupState {
            group,
            vm_names,
            child_pid: Mutex::new(None),
            restarts: AtomicU32::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// The executor's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        *self.child_pid.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_pid(&self, pid: Option<u32>) {
        *self.child_pid.lock().unwrap_or_else(|p| p.into_inner()) = pid;
    }

    /// Stops the executor (SIGTERM) and the group's supervision.
    pub fn terminate(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

/// Supervises the executor of `state`'s group until `stop` (or the group's
/// own stop): starts it, waits for it, and after each death cleans up and
/// starts it again. `regions` are the group's regions, opened by the
/// supervisor (which holds their lease); `ledger`, when given, is where
/// the group's VMs' state is reset after a death and restarts counted.
pub fn supervise(
    state: &GroupState,
    regions: &[Region],
    cmd: &ExecutorCommand,
    in_flight_path: &std::path::Path,
    ledger: Option<&server::Ledger>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let group = &state.group;
    let stopping = || stop.load(Ordering::Relaxed) || state.stop.load(Ordering::Relaxed);
    let table = InFlight::create(in_flight_path, regions.len())?;
    let mut backoff = BACKOFF.0;
    while !stopping() {
        table.clear();
        let mut c = Command::new(&cmd.program);
        c.args(&cmd.common_args)
            .arg("--executor")
            .arg(&group.name)
            .arg("--lease-pid")
            .arg(std::process::id().to_string())
            .arg("--in-flight")
            .arg(in_flight_path);
        for r in &group.regions {
            c.arg("--region").arg(r);
        }
        // Channel threads come and go with guests; glibc gives threads
        // arenas of their own (up to 8 per core), whose freed memory
        // fragments and stays resident. Two arenas, and large blocks (a
        // driver's buffers) always mapped on their own and unmapped when
        // freed (a fixed threshold: glibc otherwise raises it after each
        // such free, and later large blocks then grow the arenas), keep
        // an executor's memory flatter over guests' lifetimes. The
        // operator's own settings win.
        for (var, value) in [
            ("MALLOC_ARENA_MAX", "2"),
            ("MALLOC_MMAP_THRESHOLD_", "131072"),
        ] {
            if std::env::var_os(var).is_none() {
                c.env(var, value);
            }
        }
        let started = Instant::now();
        let mut child = c.spawn()?;
        state.set_pid(Some(child.id()));
        tracing::info!(group = %group.name, pid = child.id(), regions = regions.len(), "executor started");
        let status = child.wait()?;
        state.set_pid(None);
        if stopping() {
            tracing::info!(group = %group.name, %status, "executor stopped");
            break;
        }
        if status.code() == Some(EXIT_CANNOT_START) {
            anyhow::bail!(
                "the executor of group {} cannot start (see its error above)",
                group.name
            );
        }
        tracing::error!(group = %group.name, %status, "executor died");
        for r in table.running() {
            let vm = state.vm_names.get(r.region).cloned().unwrap_or_default();
            let func = crate::backend::function_name(&r.api, r.func).unwrap_or("?");
            tracing::error!(group = %group.name, vm, channel = r.channel, api = %r.api, "the executor died executing {func}");
        }
        // Its guests' channels: taken back, so that calls in flight and
        // later calls fail at once; the guest library opens new ones. The
        // channels claimed now are noted first, then taken back by their
        // generation: a guest that already opens a new channel (it may, as
        // soon as its first channel is taken back) keeps it.
        let claimed: Vec<(usize, u32, u32)> = regions
            .iter()
            .enumerate()
            .flat_map(|(r, region)| {
                (0..region.channel_count()).filter_map(move |i| {
                    region
                        .status(i)
                        .ok()
                        .filter(|s| s.state == ChannelState::Claimed)
                        .map(|s| (r, i, s.generation))
                })
            })
            .collect();
        for (r, i, generation) in claimed {
            let _ = regions[r].reclaim(i, generation);
        }
        // What died with the executor (its device memory, its kernels) is
        // no longer the VMs': their quotas are credited.
        if let Some(l) = ledger {
            for name in &state.vm_names {
                if let Some(v) = l.vm(name) {
                    v.reset_after_death();
                    v.add(server::ledger::Field::Restarts, 1);
                }
            }
        }
        let restarts = state.restarts.fetch_add(1, Ordering::Relaxed) + 1;
        if started.elapsed() >= HEALTHY {
            backoff = BACKOFF.0;
        }
        let wait = backoff;
        backoff = (backoff * 2).min(BACKOFF.1);
        tracing::warn!(group = %group.name, restarts, "restarting the executor in {wait:?}");
        let until = Instant::now() + wait;
        while Instant::now() < until && !stopping() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_is_its_own_group_unless_named() {
        let r: Vec<PathBuf> = ["/dev/shm/a", "/dev/shm/b", "/dev/shm/c"]
            .map(PathBuf::from)
            .into();
        let g = groups(&r, &[]).unwrap();
        assert_eq!(
            g.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        let g = groups(&r, &["shared=/dev/shm/a,/dev/shm/c".into()]).unwrap();
        assert_eq!(g[0].name, "shared");
        assert_eq!(g[0].regions, [r[0].clone(), r[2].clone()]);
        assert_eq!(g[1].regions, [r[1].clone()]);
    }

    #[test]
    fn bad_group_specifications_are_refused() {
        let r: Vec<PathBuf> = ["/dev/shm/a", "/dev/shm/b"].map(PathBuf::from).into();
        for bad in [
            vec!["noequals".to_string()],
            vec!["=/dev/shm/a".into()],
            vec!["g=/dev/shm/zzz".into()],
            vec!["g=".into()],
            vec!["g=/dev/shm/a".into(), "h=/dev/shm/a".into()],
            vec!["g=/dev/shm/a".into(), "g=/dev/shm/b".into()],
        ] {
            assert!(groups(&r, &bad).is_err(), "{bad:?}");
        }
    }
}
