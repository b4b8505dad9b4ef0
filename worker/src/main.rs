//! `ava-worker`: serves VM regions and executes their calls on the host's
//! real libraries — as a supervisor of one executor process per isolation
//! group of VMs (`ava_worker::supervisor`), each executor being this same
//! program started with `--executor`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use transport::RegionConfig;

/// Executes remoted OpenCL calls from VMs (or host processes) on this host.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Examples:\n  ava-worker --region /dev/shm/vm1\n  ava-worker --region /dev/shm/vm1 --region /dev/shm/vm2 --cores 2,3\n  AVA_LOG=debug ava-worker --region /dev/shm/test --opencl-lib /usr/lib/x86_64-linux-gnu/libOpenCL.so.1\n  ava-worker --region /dev/shm/vm1 --backends opencl\n  ava-worker --region /dev/shm/t --backends opencl,testapi --testapi-lib target/debug/libava_testapi.so\n  ava-worker --region /dev/shm/vm1 --region /dev/shm/vm2 --region /dev/shm/vm3 --isolation-group team=/dev/shm/vm1,/dev/shm/vm2\n\nEach isolation group of VMs (by default each VM) is served by an executor process of its own;\nif a driver crashes one, its VMs' guests get errors and it is restarted, and no other VM notices.\n\nA region that does not exist is created with --channels/--ring-size/--arena-size;\none that exists (e.g. made by `ivshmem-setup create`) is served as it is.\nLog levels: AVA_LOG=error|warn|info|debug|trace (default info)."
)]
struct Cli {
    /// A region to serve (one per VM); repeat for several VMs.
    #[arg(long = "region", value_name = "PATH")]
    regions: Vec<PathBuf>,
    /// The VMs to serve, in TOML (`[[vm]]` with `name`, `region`,
    /// `isolation_group`; see docs/worker.md), beside any `--region`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Internal: a VM's name, NAME=REGION, for logs.
    #[arg(long = "vm-name", hide = true, value_name = "NAME=PATH")]
    vm_names: Vec<String>,
    /// Cores to pin the poller threads to (one thread per region), e.g. 2,3.
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// The backends (APIs) to serve, of: opencl, testapi (a small API for
    /// tests). Default: opencl. A backend that cannot load is logged and
    /// left out; the others are served.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    backends: Vec<String>,
    /// The test API's library (default: libava_testapi.so beside this
    /// program).
    #[arg(long, value_name = "PATH")]
    testapi_lib: Option<PathBuf>,
    /// The host OpenCL library to load.
    #[arg(long, value_name = "PATH")]
    opencl_lib: Option<String>,
    /// Channels of a region created by the worker.
    #[arg(long, default_value_t = 4)]
    channels: u32,
    /// Ring size (bytes, a power of two) of a region created by the worker.
    #[arg(long, default_value_t = 256 << 10)]
    ring_size: u64,
    /// Arena size per channel (bytes) of a region created by the worker.
    #[arg(long, default_value_t = 32 << 20)]
    arena_size: u64,
    /// Smallest buffer heap (bytes) of a region created by the worker: the
    /// shared memory that holds device buffers the guest reads and writes
    /// in place. The region file is rounded up to a power of two and the
    /// heap takes what the channels leave. 0: no heap.
    #[arg(long, default_value_t = 64 << 20)]
    heap_size: u64,
    /// Seconds without a heartbeat after which a guest is taken for dead.
    #[arg(long, default_value_t = 5)]
    stale_after: u64,
    /// VMs that share one executor process and its device contexts:
    /// NAME=REGION[,REGION...] (repeatable). Every other region is an
    /// isolation group of its own, so that a driver crash in one VM's calls
    /// takes down nobody else's.
    #[arg(long = "isolation-group", value_name = "NAME=PATHS")]
    isolation_groups: Vec<String>,
    /// Internal: run as the executor of isolation group NAME (started by
    /// the supervisor).
    #[arg(long, hide = true, value_name = "NAME")]
    executor: Option<String>,
    /// Internal: the pid whose worker lease the executor serves under.
    #[arg(long, hide = true)]
    lease_pid: Option<u32>,
    /// Internal: the executor's table of calls in flight.
    #[arg(long, hide = true)]
    in_flight: Option<PathBuf>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AVA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    use ava_worker::backend::KNOWN;
    if let Some(b) = cli.backends.iter().find(|b| !KNOWN.contains(&b.as_str())) {
        anyhow::bail!("unknown backend `{b}` (known: {})", KNOWN.join(", "));
    }
    on_stop_signals()?;
    match &cli.executor {
        Some(group) => executor(&cli, group).map_err(|e| {
            // Not a crash: a restart would fail the same way.
            tracing::error!(group, "the executor cannot start: {e:#}");
            std::process::exit(ava_worker::supervisor::EXIT_CANNOT_START)
        }),
        None => supervisor(&cli),
    }
}

/// Stops at SIGINT or SIGTERM.
fn on_stop_signals() -> anyhow::Result<()> {
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_signal),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { nix::sys::signal::sigaction(sig, &action) }?;
    }
    Ok(())
}

fn region_config(cli: &Cli) -> RegionConfig {
    RegionConfig {
        channels: cli.channels,
        cmd_ring_size: cli.ring_size,
        resp_ring_size: cli.ring_size,
        arena_size: cli.arena_size,
        heap_size: cli.heap_size,
    }
}

/// The supervisor: opens (or creates) every region and holds its lease,
/// then runs and watches one executor per isolation group until stopped.
fn supervisor(cli: &Cli) -> anyhow::Result<()> {
    use ava_worker::supervisor::{ExecutorCommand, groups, supervise};
    let mut regions_given = cli.regions.clone();
    let mut group_specs = cli.isolation_groups.clone();
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    if let Some(path) = &cli.config {
        let config = ava_worker::config::Config::load(path)?;
        for vm in &config.vm {
            if !regions_given.contains(&vm.region) {
                regions_given.push(vm.region.clone());
            }
            names.push((vm.name.clone(), vm.region.clone()));
            if vm.scheduling().any() || config.defaults.any() {
                tracing::warn!(
                    vm = %vm.name,
                    "weight, priority, memory quota and rate limits are not enforced yet: the scheduler is not built"
                );
            }
        }
        group_specs.extend(config.groups());
    }
    anyhow::ensure!(
        !regions_given.is_empty(),
        "nothing to serve: give --region PATH or --config FILE"
    );
    let groups = groups(&regions_given, &group_specs)?;
    let config = region_config(cli);
    let regions: Vec<Vec<transport::Region>> = groups
        .iter()
        .map(|g| {
            g.regions
                .iter()
                .map(|p| server::open_region(p, &config))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<_>>()?;
    let mut common_args: Vec<String> = Vec::new();
    let mut push = |k: &str, v: String| {
        common_args.push(k.to_string());
        common_args.push(v);
    };
    if !cli.backends.is_empty() {
        push("--backends", cli.backends.join(","));
    }
    if let Some(p) = &cli.testapi_lib {
        push("--testapi-lib", p.display().to_string());
    }
    if let Some(p) = &cli.opencl_lib {
        push("--opencl-lib", p.clone());
    }
    if !cli.cores.is_empty() {
        let cores: Vec<String> = cli.cores.iter().map(ToString::to_string).collect();
        push("--cores", cores.join(","));
    }
    push("--stale-after", cli.stale_after.to_string());
    for (name, region) in &names {
        push("--vm-name", format!("{name}={}", region.display()));
    }
    let cmd = ExecutorCommand {
        program: std::env::current_exe()?,
        common_args,
    };
    let children: Vec<std::sync::Mutex<Option<u32>>> =
        groups.iter().map(|_| std::sync::Mutex::new(None)).collect();
    remove_stale_tables();
    let tables: Vec<PathBuf> = (0..groups.len())
        .map(|i| PathBuf::from(format!("/dev/shm/ava-in-flight-{}-{i}", std::process::id())))
        .collect();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            let (regions, cmd, table, child) = (&regions[i], &cmd, &tables[i], &children[i]);
            handles.push(s.spawn(move || {
                if let Err(e) = supervise(g, regions, cmd, table, child, &STOP) {
                    tracing::error!(group = %g.name, "cannot run the executor: {e:#}");
                    STOP.store(true, Ordering::Relaxed);
                }
            }));
        }
        while !STOP.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for c in &children {
            if let Some(pid) = *c.lock().unwrap_or_else(|p| p.into_inner()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for h in handles {
            let _ = h.join();
        }
    });
    for t in &tables {
        let _ = std::fs::remove_file(t);
    }
    for r in regions.iter().flatten() {
        r.release_worker(std::process::id());
    }
    tracing::info!("stopped");
    Ok(())
}

/// Removes the tables of calls in flight that supervisors which no longer
/// run left in `/dev/shm` (one killed outright cannot remove its own).
fn remove_stale_tables() {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("ava-in-flight-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
            Ok(()) => true,
            Err(e) => e == nix::errno::Errno::EPERM,
        };
        if !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// An executor: loads the backends and serves its group's regions, under
/// the supervisor's lease, until stopped (or until the supervisor dies).
fn executor(cli: &Cli, group: &str) -> anyhow::Result<()> {
    use ava_worker::backend::{Backend, DEFAULT, OpenCl, TestApi};
    // The supervisor gone, nobody would restart or stop this process.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)?;
    tracing::info!(group, pid = std::process::id(), "executor serving");
    let wanted = |name: &str| {
        if cli.backends.is_empty() {
            DEFAULT.contains(&name)
        } else {
            cli.backends.iter().any(|b| b == name)
        }
    };
    let mut loaded: Vec<Box<dyn Backend>> = Vec::new();
    if wanted("opencl") {
        match OpenCl::load(cli.opencl_lib.as_deref()) {
            Ok(b) => loaded.push(Box::new(b)),
            Err(e) => tracing::warn!("OpenCL backend unavailable: {e:#}"),
        }
    }
    if wanted("testapi") {
        let path = match &cli.testapi_lib {
            Some(p) => p.clone(),
            None => std::env::current_exe()?.with_file_name("libava_testapi.so"),
        };
        match TestApi::load(&path) {
            Ok(b) => loaded.push(Box::new(b)),
            Err(e) => tracing::warn!("test API backend unavailable: {e:#}"),
        }
    }
    for b in &loaded {
        tracing::info!(api = %b.api(), "serving: {}", b.describe());
    }
    anyhow::ensure!(
        !loaded.is_empty(),
        "no backend could be loaded (see the warnings above)"
    );
    let backends: Vec<&dyn Backend> = loaded.iter().map(|b| &**b).collect();
    let in_flight = match &cli.in_flight {
        Some(p) => Some(server::InFlight::open(p)?),
        None => None,
    };
    let vm_names = cli
        .vm_names
        .iter()
        .filter_map(|s| s.split_once('='))
        .map(|(n, p)| (PathBuf::from(p), n.to_string()))
        .collect();
    let opts = server::ServeOptions {
        cores: cli.cores.clone(),
        stale_after: Duration::from_secs(cli.stale_after),
        in_flight,
        lease_pid: cli.lease_pid,
        vm_names,
        ..Default::default()
    };
    server::serve(&cli.regions, &region_config(cli), &backends, &opts, &STOP)?;
    tracing::info!(group, "executor stopped");
    Ok(())
}
