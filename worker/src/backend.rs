//! Backends: the host libraries the worker executes calls on, loaded at run
//! time so that the worker builds and starts without them.

use anyhow::Context;
use remoting::ApiId;
use remoting::worker::Dispatcher;

use crate::opencl;

/// The backends `ava-worker` knows, by name.
pub const KNOWN: &[&str] = &["opencl", "cuda", "testapi"];

/// The backends served when none are named: every one for real devices
/// (the test API is served only when named). One whose driver is missing
/// is left out with a warning, and the others are served.
pub const DEFAULT: &[&str] = &["opencl", "cuda"];

pub use server::Backend;

/// The name of function `func` of the API called `api`, for logs (among the
/// APIs this worker knows).
pub fn function_name(api: &str, func: u32) -> Option<&'static str> {
    let names = match api {
        "opencl" => opencl::FUNCTION_NAMES,
        "cuda" => crate::cuda::FUNCTION_NAMES,
        "testapi" => crate::testapi::FUNCTION_NAMES,
        _ => return None,
    };
    names.get(func as usize).copied()
}

/// The host's OpenCL library (normally the ICD loader) and its dispatcher.
pub struct OpenCl {
    /// Keeps the library loaded while the dispatcher's pointers are used.
    _lib: libloading::Library,
    /// The generated dispatcher over the library's functions.
    pub dispatch: opencl::Dispatch,
    /// The library's path as loaded.
    library: String,
    /// The devices the driver reported at load time.
    devices: Vec<String>,
}

impl OpenCl {
    /// Loads `path` (default `libOpenCL.so.1`) and resolves the API.
    pub fn load(path: Option<&str>) -> anyhow::Result<OpenCl> {
        let path = path.unwrap_or("libOpenCL.so.1");
        // SAFETY: loading a shared library runs its initialisers; the
        // OpenCL ICD loader is designed to be loaded this way.
        let lib = unsafe { libloading::Library::new(path) }
            .with_context(|| format!("loading the host OpenCL library {path} (is an ICD loader such as ocl-icd-libopencl1 installed?)"))?;
        let api = opencl::Api::load(&lib);
        // The driver is initialised here, on one thread, before any guest
        // calls it: PoCL's first platform and device queries are not safe
        // to make from two threads at once (concurrent first calls saw
        // CL_DEVICE_NOT_FOUND and a maximum allocation of 0).
        let devices = devices(&api);
        tracing::info!(
            library = path,
            functions = api.available(),
            of = opencl::FUNCTION_NAMES.len(),
            devices = %devices.join("; "),
            "OpenCL backend loaded"
        );
        Ok(OpenCl {
            _lib: lib,
            dispatch: opencl::Dispatch { api },
            library: path.to_string(),
            devices,
        })
    }
}

/// The names of every device of every platform (`platform: device`).
fn devices(api: &opencl::Api) -> Vec<String> {
    let (Some(platforms), Some(device_ids), Some(device_info)) = (
        api.clGetPlatformIDs,
        api.clGetDeviceIDs,
        api.clGetDeviceInfo,
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut ps = [std::ptr::null_mut(); 16];
    let mut np = 0u32;
    // SAFETY: the arrays and counts are locals of the sizes passed.
    if unsafe { platforms(16, ps.as_mut_ptr(), &mut np) } != 0 {
        return out;
    }
    for &p in &ps[..(np as usize).min(16)] {
        let mut ds = [std::ptr::null_mut(); 16];
        let mut nd = 0u32;
        // SAFETY: as above; `p` is a platform the driver returned.
        if unsafe { device_ids(p, 0xFFFF_FFFF, 16, ds.as_mut_ptr(), &mut nd) } != 0 {
            continue;
        }
        for &d in &ds[..(nd as usize).min(16)] {
            let mut name = [0u8; 256];
            // SAFETY: `d` is a device the driver returned; the buffer is a
            // local of the size passed.
            let rc = unsafe {
                device_info(
                    d,
                    opencl::CL_DEVICE_NAME,
                    name.len(),
                    name.as_mut_ptr().cast(),
                    std::ptr::null_mut(),
                )
            };
            if rc == 0 {
                let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
                out.push(String::from_utf8_lossy(&name[..end]).into_owned());
            }
        }
    }
    out
}

impl Backend for OpenCl {
    fn api(&self) -> ApiId {
        opencl::API
    }

    fn dispatcher(&self) -> &dyn Dispatcher {
        self
    }

    fn describe(&self) -> String {
        format!(
            "{} of {} OpenCL functions from {}; devices: {}",
            self.dispatch.api.available(),
            opencl::FUNCTION_NAMES.len(),
            self.library,
            if self.devices.is_empty() {
                "none".to_string()
            } else {
                self.devices.join(", ")
            }
        )
    }
}

/// The host's CUDA driver (`libcuda.so.1`, or the library `--cuda-lib`
/// names) and its dispatcher.
pub struct Cuda {
    /// Keeps the library loaded while the dispatcher's pointers are used.
    _lib: libloading::Library,
    /// The generated dispatcher over the driver's functions.
    pub dispatch: crate::cuda::Dispatch,
    library: String,
    /// The devices the driver reported at load time.
    devices: Vec<String>,
}

impl Cuda {
    /// Loads `path` (default `libcuda.so.1`), resolves the driver API and
    /// initialises the driver. Fails with a clear reason when there is no
    /// driver or no device.
    pub fn load(path: Option<&str>) -> anyhow::Result<Cuda> {
        use crate::cuda;
        let path = path.unwrap_or("libcuda.so.1");
        // SAFETY: loading a shared library runs its initialisers; the CUDA
        // driver library is designed to be loaded this way.
        let lib = unsafe { libloading::Library::new(path) }.with_context(|| {
            format!("no CUDA driver: loading {path} failed (is the NVIDIA driver installed? `--cuda-lib PATH` names another library)")
        })?;
        let mut api = cuda::Api::load(&lib);
        let init = api
            .cuInit
            .with_context(|| format!("{path} is not a CUDA driver (it has no cuInit)"))?;
        // SAFETY: cuInit takes a flags word (0) and nothing else.
        let rc = unsafe { init(0) };
        anyhow::ensure!(
            rc == cuda::CUDA_SUCCESS,
            "the CUDA driver {path} did not initialise: cuInit returned {rc}{}",
            if rc == cuda::CUDA_ERROR_NO_DEVICE {
                " (no CUDA device)"
            } else {
                ""
            }
        );
        let devices = cuda_devices(&api);
        anyhow::ensure!(
            !devices.is_empty(),
            "the CUDA driver {path} reports no device"
        );
        crate::cuda_guards::guard_primary_contexts(&mut api);
        tracing::info!(
            library = path,
            functions = api.available(),
            of = cuda::FUNCTION_NAMES.len(),
            devices = %devices.join("; "),
            "CUDA backend loaded"
        );
        Ok(Cuda {
            _lib: lib,
            dispatch: cuda::Dispatch { api },
            library: path.to_string(),
            devices,
        })
    }
}

/// The name of every CUDA device.
fn cuda_devices(api: &crate::cuda::Api) -> Vec<String> {
    let (Some(count), Some(get), Some(name)) =
        (api.cuDeviceGetCount, api.cuDeviceGet, api.cuDeviceGetName)
    else {
        return Vec::new();
    };
    let mut n = 0i32;
    // SAFETY: the output is a local.
    if unsafe { count(&mut n) } != 0 {
        return Vec::new();
    }
    (0..n)
        .filter_map(|i| {
            let mut dev = 0;
            let mut buf = [0u8; 256];
            // SAFETY: the outputs are locals of the sizes passed.
            let ok = unsafe {
                get(&mut dev, i) == 0 && name(buf.as_mut_ptr().cast(), buf.len() as i32, dev) == 0
            };
            let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
            ok.then(|| String::from_utf8_lossy(&buf[..end]).into_owned())
        })
        .collect()
}

impl Backend for Cuda {
    fn api(&self) -> ApiId {
        crate::cuda::API
    }

    fn dispatcher(&self) -> &dyn Dispatcher {
        self
    }

    fn describe(&self) -> String {
        format!(
            "{} of {} CUDA functions from {}; devices: {}",
            self.dispatch.api.available(),
            crate::cuda::FUNCTION_NAMES.len(),
            self.library,
            self.devices.join(", ")
        )
    }
}

/// The generated CUDA dispatcher, plus the cleanup of what it tracks
/// outside the handle table: the device memory a guest process left.
impl Dispatcher for Cuda {
    fn dispatch(
        &self,
        func: u32,
        args: &mut remoting::wire::Decoder<'_>,
        cx: &mut remoting::worker::CallCtx<'_>,
    ) -> Result<(), remoting::worker::DispatchError> {
        self.dispatch.dispatch(func, args, cx)
    }

    fn name(&self, func: u32) -> Option<&'static str> {
        self.dispatch.name(func)
    }

    fn destroy(&self, kind: u16, host: u64) {
        self.dispatch.destroy(kind, host);
    }

    fn guest_gone(&self, caller: &remoting::worker::Caller) {
        crate::cuda_memory::free_all_of(&self.dispatch.api, &caller.vm, caller.owner);
    }
}

/// The generated OpenCL dispatcher, plus what a dead guest's cleanup needs
/// beyond its destructors: failing the user events it left pending.
impl Dispatcher for OpenCl {
    fn dispatch(
        &self,
        func: u32,
        args: &mut remoting::wire::Decoder<'_>,
        cx: &mut remoting::worker::CallCtx<'_>,
    ) -> Result<(), remoting::worker::DispatchError> {
        self.dispatch.dispatch(func, args, cx)
    }

    fn name(&self, func: u32) -> Option<&'static str> {
        self.dispatch.name(func)
    }

    fn destroy(&self, kind: u16, host: u64) {
        self.dispatch.destroy(kind, host);
    }

    /// Kernels that waited for the dead guest's user events failed without
    /// running, and PoCL reports them to no callback: their accounting is
    /// settled now.
    fn after_destroy(&self) {
        crate::accounting::settle(&self.dispatch.api);
    }

    /// A command waiting on a user event that nobody will complete never
    /// ends, and the driver's destructors wait for it (PoCL's
    /// `clReleaseCommandQueue` finishes the queue): each user event the
    /// guest left pending is set to an error status first, which the
    /// specification defines as terminating the commands that wait on it.
    fn before_destroy(&self, owned: &[(u16, u64, u32)]) {
        let (Some(info), Some(set)) = (
            self.dispatch.api.clGetEventInfo,
            self.dispatch.api.clSetUserEventStatus,
        ) else {
            return;
        };
        for &(kind, host, _) in owned {
            if kind != opencl::kind::cl_event {
                continue;
            }
            let event = host as usize as opencl::cl_event;
            let query = |param, out: &mut i32| {
                // SAFETY: `event` is a live event of the guest's (its
                // references are released only after this), and `out` is a
                // local of the size passed.
                unsafe {
                    info(
                        event,
                        param,
                        4,
                        (out as *mut i32).cast(),
                        std::ptr::null_mut(),
                    )
                }
            };
            let (mut command, mut status) = (0, 0);
            if query(opencl::CL_EVENT_COMMAND_TYPE, &mut command) != 0
                || command as u32 != opencl::CL_COMMAND_USER
                || query(opencl::CL_EVENT_COMMAND_EXECUTION_STATUS, &mut status) != 0
                || status <= 0
            {
                continue;
            }
            // SAFETY: a live user event whose status was never set.
            let rc = unsafe { set(event, opencl::CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST) };
            tracing::info!(rc, "failing a user event the guest left pending");
        }
    }
}

/// The test API (`testapi/testapi.lapis`) over `libava_testapi.so`: a small
/// C library built in this workspace, served so that tests can run guests
/// of two APIs against one worker.
pub struct TestApi {
    _lib: libloading::Library,
    /// The generated dispatcher over the library's functions.
    pub dispatch: crate::testapi::Dispatch,
    library: String,
}

impl TestApi {
    /// Loads the test library at `path`.
    pub fn load(path: &std::path::Path) -> anyhow::Result<TestApi> {
        // SAFETY: the test library runs no initialisers of note.
        let lib = unsafe { libloading::Library::new(path) }
            .with_context(|| format!("loading the test API library {}", path.display()))?;
        Ok(TestApi {
            dispatch: crate::testapi::Dispatch {
                api: crate::testapi::Api::load(&lib),
            },
            _lib: lib,
            library: path.display().to_string(),
        })
    }
}

impl Backend for TestApi {
    fn api(&self) -> ApiId {
        crate::testapi::API
    }

    fn dispatcher(&self) -> &dyn Dispatcher {
        &self.dispatch
    }

    fn describe(&self) -> String {
        format!(
            "{} of {} test API functions from {}",
            self.dispatch.api.available(),
            crate::testapi::FUNCTION_NAMES.len(),
            self.library
        )
    }
}
