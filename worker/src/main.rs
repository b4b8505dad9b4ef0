//! `ava-worker`: serves VM regions and executes their OpenCL calls on the
//! host's real OpenCL library.

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
    after_help = "Examples:\n  ava-worker --region /dev/shm/vm1\n  ava-worker --region /dev/shm/vm1 --region /dev/shm/vm2 --cores 2,3\n  AVA_LOG=debug ava-worker --region /dev/shm/test --opencl-lib /usr/lib/x86_64-linux-gnu/libOpenCL.so.1\n  ava-worker --region /dev/shm/vm1 --backends opencl\n  ava-worker --region /dev/shm/t --backends opencl,testapi --testapi-lib target/debug/libava_testapi.so\n\nA region that does not exist is created with --channels/--ring-size/--arena-size;\none that exists (e.g. made by `ivshmem-setup create`) is served as it is.\nLog levels: AVA_LOG=error|warn|info|debug|trace (default info)."
)]
struct Cli {
    /// A region to serve (one per VM); repeat for several VMs.
    #[arg(long = "region", required = true, value_name = "PATH")]
    regions: Vec<PathBuf>,
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
    use ava_worker::backend::{Backend, DEFAULT, KNOWN, OpenCl, TestApi};
    if let Some(b) = cli.backends.iter().find(|b| !KNOWN.contains(&b.as_str())) {
        anyhow::bail!("unknown backend `{b}` (known: {})", KNOWN.join(", "));
    }
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
    let config = RegionConfig {
        channels: cli.channels,
        cmd_ring_size: cli.ring_size,
        resp_ring_size: cli.ring_size,
        arena_size: cli.arena_size,
        heap_size: cli.heap_size,
    };
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
    let opts = server::ServeOptions {
        cores: cli.cores,
        stale_after: Duration::from_secs(cli.stale_after),
        ..Default::default()
    };
    server::serve(&cli.regions, &config, &backends, &opts, &STOP)?;
    tracing::info!("stopped");
    Ok(())
}
