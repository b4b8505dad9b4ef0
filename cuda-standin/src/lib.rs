//! A **test double** of the CUDA driver (`libcuda.so.1`) for CI machines
//! without a GPU. It is never shipped or installed: tests point unmodified
//! CUDA programs at it through `LD_LIBRARY_PATH` (a directory holding a
//! `libcuda.so.1` symlink to `libava_cuda_standin.so`).
//!
//! It exports the C ABI of CUDA 12's `cuda.h` (the `_v2` names real
//! binaries link) for one device that runs PTX on the CPU through the
//! `ptoxide` interpreter. Device memory is one byte array per device;
//! device pointers are offsets into it (never 0). CUDA contexts own their
//! allocations, modules, streams and events; each thread has its own stack
//! of current contexts. Stream work runs when it is enqueued, in order, so
//! every stream is trivially ordered; a kernel fault (an out-of-bounds
//! access, an instruction the interpreter lacks) is sticky for its context,
//! as on a real device. See `README.md` for what is and is not supported.

pub mod api;
pub mod copies;
pub mod errors;
pub mod libraries;
pub mod per_thread;
pub mod pools;
pub mod procaddr;
pub mod ptx;
mod state;

/// `CUresult`: a driver status code.
pub type CUresult = u32;
/// `CUdevice`: a device ordinal.
pub type CUdevice = i32;
/// `CUdeviceptr`: a device address.
pub type CUdeviceptr = u64;
/// An opaque driver handle (`CUcontext`, `CUmodule`, `CUfunction`,
/// `CUstream`, `CUevent`): a tagged id, never a pointer into the stand-in.
pub type Handle = *mut std::ffi::c_void;

/// The driver version the stand-in reports (CUDA 12.8).
pub const DRIVER_VERSION: i32 = 12080;
/// The stand-in device's name.
pub const DEVICE_NAME: &str = "ava stand-in (PTX on CPU, test double)";
/// Device memory the stand-in reports and allows (2 GiB).
pub const TOTAL_MEM: u64 = 2 << 30;
