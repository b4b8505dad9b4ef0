//! `ava-worker`: serves VM regions and executes their calls on the host's
//! real libraries — as a supervisor of one executor process per isolation
//! group of VMs (`ava_worker::supervisor`), each executor being this same
//! program started with `--executor`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ava_worker::config::Config;
use ava_worker::supervisor::{ExecutorCommand, Group, GroupState, groups, supervise};
use clap::Parser;
use transport::RegionConfig;

/// Executes remoted OpenCL calls from VMs (or host processes) on this host.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Examples:\n  ava-worker --region /dev/shm/vm1\n  ava-worker --region /dev/shm/vm1 --region /dev/shm/vm2 --cores 2,3\n  AVA_LOG=debug ava-worker --region /dev/shm/test --opencl-lib /usr/lib/x86_64-linux-gnu/libOpenCL.so.1\n  ava-worker --region /dev/shm/vm1 --backends opencl\n  ava-worker --region /dev/shm/vm1 --backends opencl,cuda --cuda-lib /usr/lib/x86_64-linux-gnu/libcuda.so.1\n  ava-worker --region /dev/shm/t --backends opencl,testapi --testapi-lib target/debug/libava_testapi.so\n  ava-worker --region /dev/shm/vm1 --region /dev/shm/vm2 --region /dev/shm/vm3 --isolation-group team=/dev/shm/vm1,/dev/shm/vm2\n\nEach isolation group of VMs (by default each VM) is served by an executor process of its own;\nif a driver crashes one, its VMs' guests get errors and it is restarted, and no other VM notices.\n\nA region that does not exist is created with --channels/--ring-size/--arena-size;\none that exists (e.g. made by `ivshmem-setup create`) is served as it is.\nLog levels: AVA_LOG=error|warn|info|debug|trace (default info)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A region to serve (one per VM); repeat for several VMs.
    #[arg(long = "region", value_name = "PATH")]
    regions: Vec<PathBuf>,
    /// The VMs to serve and their scheduling settings, in TOML (`[[vm]]`
    /// with `name`, `region`, `isolation_group`, `weight`, `priority`,
    /// `memory_quota`, rate limits; see docs/worker.md), beside any
    /// `--region`. Reloaded on SIGHUP and when the file changes.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g.
    /// 127.0.0.1:9464; a loopback address keeps them on this host).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Internal: the supervisor's ledger of VM settings and counters.
    #[arg(long, hide = true, value_name = "PATH")]
    ledger: Option<PathBuf>,
    /// Internal: a VM's name, NAME=REGION, for logs.
    #[arg(long = "vm-name", hide = true, value_name = "NAME=PATH")]
    vm_names: Vec<String>,
    /// Cores to pin the poller threads to (one thread per region), e.g. 2,3.
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// The backends (APIs) to serve, of: opencl, cuda, testapi (a small API
    /// for tests). Default: opencl,cuda. A backend that cannot load (no
    /// driver, no device) is logged and left out; the others are served.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    backends: Vec<String>,
    /// The test API's library (default: libava_testapi.so beside this
    /// program).
    #[arg(long, value_name = "PATH")]
    testapi_lib: Option<PathBuf>,
    /// The host OpenCL library to load.
    #[arg(long, value_name = "PATH")]
    opencl_lib: Option<String>,
    /// The host CUDA driver library to load (default: libcuda.so.1).
    #[arg(long, value_name = "PATH")]
    cuda_lib: Option<String>,
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
    /// How an idle channel waits for its guest: `adaptive` polls while work
    /// flows, then sleeps until the guest rings its doorbell (a guest on
    /// this host or in a container: one kernel); `poll` keeps polling with
    /// back-off (what a guest in a VM without a doorbell device gets anyway).
    #[arg(long, value_enum, default_value_t = WaitMode::Adaptive)]
    wait: WaitMode,
    /// Do not act as QEMU's ivshmem server. By default the worker listens
    /// on `<region>.sock` for each region, where QEMU's `ivshmem-doorbell`
    /// device connects (`-chardev socket,path=<region>.sock,id=ID -device
    /// ivshmem-doorbell,chardev=ID,vectors=1`): it hands QEMU the region and
    /// an eventfd, so that a guest in the VM rings the worker instead of
    /// being polled. `ivshmem-plain` devices (the region file as memory
    /// backend) work either way, polled.
    #[arg(long)]
    no_ivshmem_server: bool,
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

/// How idle channels wait (`--wait`).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WaitMode {
    /// Poll with back-off.
    Poll,
    /// Poll while busy, then sleep until the guest rings.
    Adaptive,
}

/// Commands beside serving.
#[derive(clap::Subcommand)]
enum Command {
    /// Prints what each VM of a running worker uses, as a table (from its
    /// metrics endpoint).
    #[command(
        after_help = "Example:\n  ava-worker --config vms.toml --metrics 127.0.0.1:9464 &\n  ava-worker stats --metrics 127.0.0.1:9464"
    )]
    Stats {
        /// The worker's metrics address (its --metrics).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
        metrics: String,
    },
}

static STOP: AtomicBool = AtomicBool::new(false);
/// Set when a group that must run (one given at start) cannot: the
/// supervisor then stops and exits with an error.
static FAILED: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: nix::libc::c_int) {
    if sig == nix::libc::SIGHUP {
        RELOAD.store(true, Ordering::Relaxed);
    } else {
        STOP.store(true, Ordering::Relaxed);
    }
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
    if let Some(Command::Stats { metrics }) = &cli.command {
        return ava_worker::metrics::print_stats(metrics);
    }
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

/// Stops at SIGINT or SIGTERM; reloads the configuration at SIGHUP.
fn on_stop_signals() -> anyhow::Result<()> {
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_signal),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
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

/// What the supervisor serves, from the command line and the
/// configuration: the isolation groups with their VMs' names, and every
/// VM's scheduling settings.
struct Plan {
    groups: Vec<(Group, Vec<String>)>,
    settings: Vec<(String, server::Settings)>,
}

fn plan(cli: &Cli, config: Option<&Config>) -> anyhow::Result<Plan> {
    let mut regions = cli.regions.clone();
    let mut specs = cli.isolation_groups.clone();
    let mut names: HashMap<PathBuf, String> = HashMap::new();
    let mut settings = Vec::new();
    if let Some(c) = config {
        for vm in &c.vm {
            if !regions.contains(&vm.region) {
                regions.push(vm.region.clone());
            }
            names.insert(vm.region.clone(), vm.name.clone());
            let s = c.settings(vm);
            let cuda = cli.backends.is_empty() || cli.backends.iter().any(|b| b == "cuda");
            if cuda && s.max_device_share.is_some() {
                tracing::warn!(
                    vm = %vm.name,
                    "max_device_share applies to OpenCL kernels only: the device time of CUDA kernels is not measured (docs/cuda.md)"
                );
            }
            settings.push((vm.name.clone(), s));
        }
        specs.extend(c.groups());
    }
    anyhow::ensure!(
        !regions.is_empty(),
        "nothing to serve: give --region PATH or --config FILE"
    );
    for r in &regions {
        if !names.contains_key(r) {
            let name = server::name_of_region(r);
            settings.push((name.clone(), server::Settings::default()));
            names.insert(r.clone(), name);
        }
    }
    let groups = groups(&regions, &specs)?
        .into_iter()
        .map(|mut g| {
            let vms: Vec<String> = g.regions.iter().map(|r| names[r].clone()).collect();
            // A VM that is a group of its own gives the group its name.
            if let [r] = g.regions.as_slice()
                && g.name == server::name_of_region(r)
            {
                g.name = vms[0].clone();
            }
            (g, vms)
        })
        .collect();
    Ok(Plan { groups, settings })
}

/// A group being supervised, on its own thread.
struct Running {
    state: Arc<GroupState>,
    thread: std::thread::JoinHandle<()>,
    table: PathBuf,
}

/// Opens `state`'s regions (taking their lease) and supervises its
/// executor on a thread of its own. When the executor cannot start, the
/// whole worker stops if `fatal` (the groups it started with), else the
/// group alone. With `ivshmem_server` (not `--no-ivshmem-server`) each of
/// its regions also gets QEMU's ivshmem server socket (doorbells).
fn start_group(
    state: Arc<GroupState>,
    cmd: &ExecutorCommand,
    config: &RegionConfig,
    ledger: &server::Ledger,
    table: PathBuf,
    fatal: bool,
    ivshmem_server: bool,
) -> anyhow::Result<Running> {
    let regions: Vec<transport::Region> = state
        .group
        .regions
        .iter()
        .map(|p| server::open_region(p, config))
        .collect::<anyhow::Result<_>>()?;
    let mut cmd = cmd.clone();
    for (r, name) in state.group.regions.iter().zip(&state.vm_names) {
        cmd.common_args.push("--vm-name".into());
        cmd.common_args.push(format!("{name}={}", r.display()));
    }
    let (st, ledger, path) = (state.clone(), ledger.clone(), table.clone());
    let doorbells = if ivshmem_server {
        Some(server::Doorbells::start(&regions)?)
    } else {
        None
    };
    let thread = std::thread::spawn(move || {
        if let Err(e) = supervise(&st, &regions, &cmd, &path, Some(&ledger), &STOP) {
            tracing::error!(group = %st.group.name, "cannot run the executor: {e:#}");
            if fatal {
                FAILED.store(true, Ordering::Relaxed);
                STOP.store(true, Ordering::Relaxed);
            }
        }
        if let Some(d) = doorbells {
            d.stop();
        }
        for r in &regions {
            r.release_worker(std::process::id());
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok(Running {
        state,
        thread,
        table,
    })
}

/// The supervisor: opens (or creates) every region and holds its lease,
/// then runs and watches one executor per isolation group until stopped;
/// reloads the configuration on SIGHUP and when its file changes, and
/// serves the metrics.
fn supervisor(cli: &Cli) -> anyhow::Result<()> {
    let config = match &cli.config {
        Some(path) => Some(Config::load(path)?),
        None => None,
    };
    let first = plan(cli, config.as_ref())?;
    remove_stale_tables();
    let ledger_path = PathBuf::from(format!("/dev/shm/ava-ledger-{}", std::process::id()));
    let ledger = server::Ledger::create(&ledger_path)?;
    let _ledger_file = RemoveOnDrop(ledger_path.clone());
    for (name, s) in &first.settings {
        ledger.add_vm(name, s)?;
    }
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
    if let Some(p) = &cli.cuda_lib {
        push("--cuda-lib", p.clone());
    }
    if !cli.cores.is_empty() {
        let cores: Vec<String> = cli.cores.iter().map(ToString::to_string).collect();
        push("--cores", cores.join(","));
    }
    push("--stale-after", cli.stale_after.to_string());
    push("--ledger", ledger_path.display().to_string());
    if cli.wait == WaitMode::Poll {
        push("--wait", "poll".into());
    }
    let cmd = ExecutorCommand {
        program: std::env::current_exe()?,
        common_args,
    };
    let region_config = region_config(cli);
    let mut tables = 0usize;
    let mut next_table = || {
        tables += 1;
        PathBuf::from(format!(
            "/dev/shm/ava-in-flight-{}-{tables}",
            std::process::id()
        ))
    };
    let mut running: Vec<Running> = Vec::new();
    for (g, vms) in first.groups {
        let state = Arc::new(GroupState::new(g, vms));
        running.push(start_group(
            state,
            &cmd,
            &region_config,
            &ledger,
            next_table(),
            true,
            !cli.no_ivshmem_server,
        )?);
    }
    let shown = Arc::new(Mutex::new(
        running.iter().map(|r| r.state.clone()).collect::<Vec<_>>(),
    ));
    let metrics = match &cli.metrics {
        Some(addr) => Some(ava_worker::metrics::serve(
            addr,
            ledger.clone(),
            shown.clone(),
            &STOP,
        )?),
        None => None,
    };
    let mut seen = cli.config.as_ref().and_then(|p| modified(p));
    let mut ticks = 0u32;
    while !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        ticks = ticks.wrapping_add(1);
        let Some(path) = &cli.config else { continue };
        let changed = ticks.is_multiple_of(10) && {
            let now = modified(path);
            let c = now != seen;
            seen = now;
            c
        };
        if RELOAD.swap(false, Ordering::Relaxed) || changed {
            reload(
                cli,
                path,
                &ledger,
                &cmd,
                &region_config,
                &mut running,
                &mut next_table,
            );
            *shown.lock().unwrap_or_else(|p| p.into_inner()) =
                running.iter().map(|r| r.state.clone()).collect();
        }
    }
    for r in &running {
        r.state.terminate();
    }
    for r in running {
        let _ = r.thread.join();
        let _ = std::fs::remove_file(&r.table);
    }
    if let Some(m) = metrics {
        let _ = m.join();
    }
    tracing::info!("stopped");
    anyhow::ensure!(
        !FAILED.load(Ordering::Relaxed),
        "a group of VMs could not be served (see the errors above)"
    );
    Ok(())
}

/// Removes a file when dropped: the ledger goes with the supervisor,
/// however it ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// When `path` was last modified (none if it cannot be read).
fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Applies the configuration at `path` again: settings change in place
/// (the running guests' next calls see them); groups whose VMs changed are
/// stopped (their guests drained) and started as the file now says; VMs
/// removed are released. A file that does not validate changes nothing.
fn reload(
    cli: &Cli,
    path: &std::path::Path,
    ledger: &server::Ledger,
    cmd: &ExecutorCommand,
    region_config: &RegionConfig,
    running: &mut Vec<Running>,
    next_table: &mut impl FnMut() -> PathBuf,
) {
    let new = match Config::load(path)
        .map_err(anyhow::Error::from)
        .and_then(|c| plan(cli, Some(&c)))
    {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("configuration not reloaded, the previous one stays in force: {e:#}");
            return;
        }
    };
    let same = |r: &Running, (g, vms): &(Group, Vec<String>)| {
        r.state.group == *g && r.state.vm_names == *vms
    };
    let (keep, stop): (Vec<Running>, Vec<Running>) = std::mem::take(running)
        .into_iter()
        .partition(|r| new.groups.iter().any(|n| same(r, n)));
    for r in &stop {
        tracing::info!(group = %r.state.group.name, "configuration: the group changed or was removed; draining its executor");
        r.state.terminate();
    }
    for r in stop {
        let _ = r.thread.join();
        let _ = std::fs::remove_file(&r.table);
    }
    *running = keep;
    for vm in ledger.vms() {
        let name = vm.name();
        if !new.settings.iter().any(|(n, _)| *n == name) {
            tracing::info!(vm = %name, "configuration: VM removed");
            ledger.remove_vm(&name);
        }
    }
    for (name, s) in &new.settings {
        if let Err(e) = ledger.add_vm(name, s) {
            tracing::error!(vm = %name, "configuration: {e:#}");
        }
    }
    for (g, vms) in new.groups {
        if running
            .iter()
            .any(|r| r.state.group == g && r.state.vm_names == vms)
        {
            continue;
        }
        tracing::info!(group = %g.name, "configuration: starting the group");
        let state = Arc::new(GroupState::new(g, vms));
        let ivshmem_server = !cli.no_ivshmem_server;
        match start_group(
            state,
            cmd,
            region_config,
            ledger,
            next_table(),
            false,
            ivshmem_server,
        ) {
            Ok(r) => running.push(r),
            Err(e) => tracing::error!("configuration: cannot serve a group: {e:#}"),
        }
    }
    tracing::info!(
        vms = new.settings.len(),
        groups = running.len(),
        "configuration reloaded from {}",
        path.display()
    );
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
    use ava_worker::backend::{Backend, Cuda, DEFAULT, OpenCl, TestApi};
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
    if wanted("cuda") {
        match Cuda::load(cli.cuda_lib.as_deref()) {
            Ok(b) => loaded.push(Box::new(b)),
            Err(e) => tracing::warn!("CUDA backend unavailable: {e:#}"),
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
    let mut opts = server::ServeOptions {
        cores: cli.cores.clone(),
        stale_after: Duration::from_secs(cli.stale_after),
        in_flight,
        lease_pid: cli.lease_pid,
        vm_names,
        notify: cli.wait == WaitMode::Adaptive,
        ..Default::default()
    };
    if let Some(path) = &cli.ledger {
        let ledger = server::Ledger::open(path)?;
        opts.admission = Arc::new(server::Policy::new(ledger.clone()));
        opts.ledger = Some(ledger);
    }
    server::serve(&cli.regions, &region_config(cli), &backends, &opts, &STOP)?;
    tracing::info!(group, "executor stopped");
    Ok(())
}
