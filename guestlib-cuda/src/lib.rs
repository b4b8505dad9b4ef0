//! `libava_cuda.so`: the CUDA driver API for applications inside a VM (or
//! on the host, for testing), remoted to the `ava-worker` over a
//! shared-memory region.
//!
//! Use it as the application's `libcuda.so.1`: a directory on
//! `LD_LIBRARY_PATH` holding a `libcuda.so.1` link to it, or
//! `LD_PRELOAD=libava_cuda.so`. It exports the ABI names real binaries link
//! (`cuMemAlloc_v2`, ...) and answers `cuGetProcAddress` with its own entry
//! points, so the CUDA runtime's and cuda-python's lookups find them. The
//! region comes from `AVA_REGION` (a `/dev/shm` file or an ivshmem
//! `resource2` path); when that is unset, the library probes the PCI bus for
//! an ivshmem device. Log verbosity follows `AVA_LOG`.
//!
//! Every exported function is generated from `specs/cuda.lapis` by the
//! `lapis` code generator at build time; `fast_paths` holds what the guest
//! answers itself or prepares (module images, kernel parameters, entry
//! points, page-locked memory).

use std::path::PathBuf;

mod copies;
mod fast_paths;
mod host_memory;
mod per_thread;
mod pools;

remoting::generated! {
    /// The generated CUDA entry points and types.
    pub mod cuda = "cuda_guest.rs";
}

/// Finds the region when `AVA_REGION` is unset: the first ivshmem PCI
/// device's BAR2 whose header is a valid region.
fn locate_region() -> Result<PathBuf, String> {
    ivshmem_probe::find_region()
        .map_err(|e| format!("AVA_REGION is not set and probing failed: {e}"))
}

/// Sets up logging to stderr (`AVA_LOG`, default `warn`) when the library
/// is loaded; an application that set up `tracing` itself keeps its own.
extern "C" fn init_logging() {
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

/// Registers [`init_logging`] with the dynamic loader.
#[used]
#[unsafe(link_section = ".init_array")]
static INIT_LOGGING: extern "C" fn() = init_logging;
