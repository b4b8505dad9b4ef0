//! `libava_opencl.so`: the OpenCL API for applications inside a VM (or on
//! the host, for testing), remoted to the `ava-worker` over a shared-memory
//! region.
//!
//! Load it with `LD_PRELOAD=libava_opencl.so`, or put it on the library path
//! as `libOpenCL.so.1`. The region comes from `AVA_REGION` (a `/dev/shm`
//! file or an ivshmem `resource2` path); when that is unset, the library
//! probes the PCI bus for an ivshmem device. Log verbosity follows
//! `AVA_LOG` (e.g. `AVA_LOG=debug`).
//!
//! Every exported function is generated from `specs/opencl.lapis` by the
//! `lapis` code generator at build time.

use std::path::PathBuf;

mod checks;
mod fast_paths;
mod icd;
mod images;
mod mapping;
mod native_kernel;
mod recorded;
mod svm;

remoting::generated! {
    /// The generated OpenCL entry points and types.
    pub mod opencl = "opencl_guest.rs";
}

/// Finds the region when `AVA_REGION` is unset: the first ivshmem PCI
/// device's BAR2 whose header is a valid region.
fn locate_region() -> Result<PathBuf, String> {
    ivshmem_probe::find_region()
        .map_err(|e| format!("AVA_REGION is not set and probing failed: {e}"))
}

/// Runs when the library is loaded: logging, and handles as ICD objects.
extern "C" fn init() {
    init_logging();
    // Every handle is a dispatchable object from here on (see `icd`).
    remoting::guest::objects::enable(icd::dispatch_table());
}

/// Sets up logging to stderr (`AVA_LOG`, default `warn`); an application
/// that set up `tracing` itself keeps its own.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AVA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs when the library is unloaded or the process exits: gives the
/// channel back to the region at once.
extern "C" fn release_channel() {
    remoting::guest::shutdown();
}

/// Registers [`release_channel`] with the dynamic loader.
#[used]
#[unsafe(link_section = ".fini_array")]
static RELEASE_AT_EXIT: extern "C" fn() = release_channel;

/// Registers [`init`] with the dynamic loader.
#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;
