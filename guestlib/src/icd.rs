//! The library as an OpenCL installable client driver (`cl_khr_icd`), so
//! that programs linked with the system's ICD loader (ocl-icd, the Khronos
//! loader) see the remoted platform beside any others.
//!
//! - Every handle the application receives is a dispatchable object whose
//!   first word is [`dispatch_table`] (`remoting::guest::objects`); the
//!   loader calls through it.
//! - `clIcdGetPlatformIDsKHR` lists the worker's platforms. It lists none
//!   inside the worker itself (a host whose loader also lists this driver
//!   must not have the worker connect to itself) and none when no worker
//!   can be reached, so that the loader goes on with the other drivers.
//! - `clGetExtensionFunctionAddress[ForPlatform]` return
//!   `clIcdGetPlatformIDsKHR` for its name.
//!
//! Installed as `/etc/OpenCL/vendors/ava.icd` holding the library's path
//! (`ivshmem-setup icd` writes it). Loaded directly (`LD_PRELOAD`, or as
//! `libOpenCL.so.1`), the library works as before: the objects are plain
//! pointers to the application.

use std::ffi::{CStr, c_char, c_void};
use std::sync::OnceLock;

use crate::opencl::{self, cl_int, cl_platform_id, cl_uint};

/// `CL_PLATFORM_NOT_FOUND_KHR`: no platform (the loader skips the driver).
const CL_PLATFORM_NOT_FOUND_KHR: cl_int = -1001;

/// The entries of `struct _cl_icd_dispatch` (Khronos `CL/cl_icd.h`), in
/// order. Entries this library does not export stay NULL.
const DISPATCH_ORDER: &[&str] = &[
    "clGetPlatformIDs",
    "clGetPlatformInfo",
    "clGetDeviceIDs",
    "clGetDeviceInfo",
    "clCreateContext",
    "clCreateContextFromType",
    "clRetainContext",
    "clReleaseContext",
    "clGetContextInfo",
    "clCreateCommandQueue",
    "clRetainCommandQueue",
    "clReleaseCommandQueue",
    "clGetCommandQueueInfo",
    "clSetCommandQueueProperty",
    "clCreateBuffer",
    "clCreateImage2D",
    "clCreateImage3D",
    "clRetainMemObject",
    "clReleaseMemObject",
    "clGetSupportedImageFormats",
    "clGetMemObjectInfo",
    "clGetImageInfo",
    "clCreateSampler",
    "clRetainSampler",
    "clReleaseSampler",
    "clGetSamplerInfo",
    "clCreateProgramWithSource",
    "clCreateProgramWithBinary",
    "clRetainProgram",
    "clReleaseProgram",
    "clBuildProgram",
    "clUnloadCompiler",
    "clGetProgramInfo",
    "clGetProgramBuildInfo",
    "clCreateKernel",
    "clCreateKernelsInProgram",
    "clRetainKernel",
    "clReleaseKernel",
    "clSetKernelArg",
    "clGetKernelInfo",
    "clGetKernelWorkGroupInfo",
    "clWaitForEvents",
    "clGetEventInfo",
    "clRetainEvent",
    "clReleaseEvent",
    "clGetEventProfilingInfo",
    "clFlush",
    "clFinish",
    "clEnqueueReadBuffer",
    "clEnqueueWriteBuffer",
    "clEnqueueCopyBuffer",
    "clEnqueueReadImage",
    "clEnqueueWriteImage",
    "clEnqueueCopyImage",
    "clEnqueueCopyImageToBuffer",
    "clEnqueueCopyBufferToImage",
    "clEnqueueMapBuffer",
    "clEnqueueMapImage",
    "clEnqueueUnmapMemObject",
    "clEnqueueNDRangeKernel",
    "clEnqueueTask",
    "clEnqueueNativeKernel",
    "clEnqueueMarker",
    "clEnqueueWaitForEvents",
    "clEnqueueBarrier",
    "clGetExtensionFunctionAddress",
    "clCreateFromGLBuffer",
    "clCreateFromGLTexture2D",
    "clCreateFromGLTexture3D",
    "clCreateFromGLRenderbuffer",
    "clGetGLObjectInfo",
    "clGetGLTextureInfo",
    "clEnqueueAcquireGLObjects",
    "clEnqueueReleaseGLObjects",
    "clGetGLContextInfoKHR",
    "clGetDeviceIDsFromD3D10KHR",
    "clCreateFromD3D10BufferKHR",
    "clCreateFromD3D10Texture2DKHR",
    "clCreateFromD3D10Texture3DKHR",
    "clEnqueueAcquireD3D10ObjectsKHR",
    "clEnqueueReleaseD3D10ObjectsKHR",
    "clSetEventCallback",
    "clCreateSubBuffer",
    "clSetMemObjectDestructorCallback",
    "clCreateUserEvent",
    "clSetUserEventStatus",
    "clEnqueueReadBufferRect",
    "clEnqueueWriteBufferRect",
    "clEnqueueCopyBufferRect",
    "clCreateSubDevicesEXT",
    "clRetainDeviceEXT",
    "clReleaseDeviceEXT",
    "clCreateEventFromGLsyncKHR",
    "clCreateSubDevices",
    "clRetainDevice",
    "clReleaseDevice",
    "clCreateImage",
    "clCreateProgramWithBuiltInKernels",
    "clCompileProgram",
    "clLinkProgram",
    "clUnloadPlatformCompiler",
    "clGetKernelArgInfo",
    "clEnqueueFillBuffer",
    "clEnqueueFillImage",
    "clEnqueueMigrateMemObjects",
    "clEnqueueMarkerWithWaitList",
    "clEnqueueBarrierWithWaitList",
    "clGetExtensionFunctionAddressForPlatform",
    "clCreateFromGLTexture",
    "clGetDeviceIDsFromD3D11KHR",
    "clCreateFromD3D11BufferKHR",
    "clCreateFromD3D11Texture2DKHR",
    "clCreateFromD3D11Texture3DKHR",
    "clCreateFromDX9MediaSurfaceKHR",
    "clEnqueueAcquireD3D11ObjectsKHR",
    "clEnqueueReleaseD3D11ObjectsKHR",
    "clGetDeviceIDsFromDX9MediaAdapterKHR",
    "clEnqueueAcquireDX9MediaSurfacesKHR",
    "clEnqueueReleaseDX9MediaSurfacesKHR",
    "clCreateFromEGLImageKHR",
    "clEnqueueAcquireEGLObjectsKHR",
    "clEnqueueReleaseEGLObjectsKHR",
    "clCreateEventFromEGLSyncKHR",
    "clCreateCommandQueueWithProperties",
    "clCreatePipe",
    "clGetPipeInfo",
    "clSVMAlloc",
    "clSVMFree",
    "clEnqueueSVMFree",
    "clEnqueueSVMMemcpy",
    "clEnqueueSVMMemFill",
    "clEnqueueSVMMap",
    "clEnqueueSVMUnmap",
    "clCreateSamplerWithProperties",
    "clSetKernelArgSVMPointer",
    "clSetKernelExecInfo",
    "clGetKernelSubGroupInfoKHR",
    "clCloneKernel",
    "clCreateProgramWithIL",
    "clEnqueueSVMMigrateMem",
    "clGetDeviceAndHostTimer",
    "clGetHostTimer",
    "clGetKernelSubGroupInfo",
    "clSetDefaultDeviceCommandQueue",
    "clSetProgramReleaseCallback",
    "clSetProgramSpecializationConstant",
    "clCreateBufferWithProperties",
    "clCreateImageWithProperties",
    "clSetContextDestructorCallback",
];

/// The dispatch table: this library's own entry points, looked up in this
/// library (never in the loader, which exports the same names).
struct Table(Box<[usize]>);

/// The table, made on first use.
pub(crate) fn dispatch_table() -> *const c_void {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE
        .get_or_init(|| Table(DISPATCH_ORDER.iter().map(|n| own_symbol(n)).collect()))
        .0
        .as_ptr()
        .cast()
}

/// The address of `name` as this library exports it (0 if it does not).
fn own_symbol(name: &str) -> usize {
    static SELF: OnceLock<usize> = OnceLock::new();
    let handle = *SELF.get_or_init(|| {
        let mut info: libc::Dl_info = empty_dl_info();
        let here = dispatch_table as *const c_void;
        // SAFETY: `here` is an address inside this library; `info` is a
        // valid out-parameter.
        if unsafe { libc::dladdr(here, &mut info) } == 0 || info.dli_fname.is_null() {
            return 0;
        }
        // SAFETY: `dli_fname` is the NUL-terminated path of the object that
        // holds `here`, which is loaded: RTLD_NOLOAD only takes another
        // reference to it.
        unsafe { libc::dlopen(info.dli_fname, libc::RTLD_LAZY | libc::RTLD_NOLOAD) as usize }
    });
    if handle == 0 {
        return 0;
    }
    let Ok(name) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: `handle` came from dlopen and is never closed; `name` is a
    // NUL-terminated string.
    unsafe { libc::dlsym(handle as *mut c_void, name.as_ptr()) as usize }
}

fn empty_dl_info() -> libc::Dl_info {
    libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    }
}

/// Whether this process is the worker (whose host OpenCL may be an ICD
/// loader that lists this driver too).
fn in_worker() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n == "ava-worker"))
        .unwrap_or(false)
}

/// `clIcdGetPlatformIDsKHR`: the worker's platforms as dispatchable
/// objects; `CL_PLATFORM_NOT_FOUND_KHR` inside the worker or when no
/// worker answers.
///
/// # Safety
/// OpenCL's contract for `clGetPlatformIDs`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn clIcdGetPlatformIDsKHR(
    num_entries: cl_uint,
    platforms: *mut cl_platform_id,
    num_platforms: *mut cl_uint,
) -> cl_int {
    let none = || {
        if !num_platforms.is_null() {
            // SAFETY: the caller's contract: writable when not NULL.
            unsafe { *num_platforms = 0 };
        }
        CL_PLATFORM_NOT_FOUND_KHR
    };
    if in_worker() {
        return none();
    }
    if let Err(e) = remoting::guest::connection(&opencl::API, crate::locate_region) {
        tracing::warn!("the remoted OpenCL platform is not listed: {e}");
        return none();
    }
    // SAFETY: the caller's arguments, passed on.
    let rc = unsafe { opencl::clGetPlatformIDs(num_entries, platforms, num_platforms) };
    if rc == opencl::CL_SUCCESS { rc } else { none() }
}

/// The functions the library itself answers in
/// `clGetExtensionFunctionAddress[ForPlatform]`.
fn local_function(name: *const c_char) -> Option<*mut c_void> {
    if name.is_null() {
        return None;
    }
    // SAFETY: OpenCL's contract: a NUL-terminated function name.
    let name = unsafe { CStr::from_ptr(name) };
    (name.to_bytes() == b"clIcdGetPlatformIDsKHR").then_some(clIcdGetPlatformIDsKHR as *mut c_void)
}

/// `clGetExtensionFunctionAddress`: `clIcdGetPlatformIDsKHR` here; other
/// names take the ordinary (remoted, NULL) path.
///
/// # Safety
/// `func_name` is NULL or a NUL-terminated string.
pub unsafe fn extension_function_address(func_name: *const c_char) -> Option<*mut c_void> {
    local_function(func_name)
}

/// `clGetExtensionFunctionAddressForPlatform`: as
/// [`extension_function_address`].
///
/// # Safety
/// `func_name` is NULL or a NUL-terminated string.
pub unsafe fn extension_function_address_for_platform(
    _platform: cl_platform_id,
    func_name: *const c_char,
) -> Option<*mut c_void> {
    local_function(func_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_the_khronos_layout_and_this_librarys_functions() {
        assert_eq!(DISPATCH_ORDER.len(), 149, "entries of cl_icd_dispatch");
        let i = |n: &str| DISPATCH_ORDER.iter().position(|x| *x == n).unwrap();
        assert_eq!(i("clGetPlatformIDs"), 0);
        assert_eq!(i("clGetExtensionFunctionAddress"), 65);
        assert_eq!(i("clSetEventCallback"), 81);
        assert_eq!(i("clCreateSubDevices"), 93);
        assert_eq!(i("clCreateCommandQueueWithProperties"), 123);
        assert_eq!(i("clSetContextDestructorCallback"), 148);
    }

    #[test]
    fn only_the_icd_entry_is_answered_locally() {
        assert!(local_function(c"clIcdGetPlatformIDsKHR".as_ptr()).is_some());
        assert!(local_function(c"clGetKernelSuggestedLocalWorkSizeKHR".as_ptr()).is_none());
        assert!(local_function(std::ptr::null()).is_none());
    }
}
