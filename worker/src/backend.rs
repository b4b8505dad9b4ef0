//! Backends: the host libraries the worker executes calls on, loaded at run
//! time so that the worker builds and starts without them.

use anyhow::Context;
use remoting::ApiId;
use remoting::worker::Dispatcher;

use crate::opencl;

/// The backends `ava-worker` knows, by name.
pub const KNOWN: &[&str] = &["opencl", "testapi"];

/// The backends served when none are named: every one for real devices
/// (the test API is served only when named).
pub const DEFAULT: &[&str] = &["opencl"];

pub use server::Backend;

/// The name of function `func` of the API called `api`, for logs (among the
/// APIs this worker knows).
pub fn function_name(api: &str, func: u32) -> Option<&'static str> {
    let names = match api {
        "opencl" => opencl::FUNCTION_NAMES,
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
        tracing::info!(
            library = path,
            functions = api.available(),
            of = opencl::FUNCTION_NAMES.len(),
            "OpenCL backend loaded"
        );
        Ok(OpenCl {
            _lib: lib,
            dispatch: opencl::Dispatch { api },
            library: path.to_string(),
        })
    }
}

impl Backend for OpenCl {
    fn api(&self) -> ApiId {
        opencl::API
    }

    fn dispatcher(&self) -> &dyn Dispatcher {
        &self.dispatch
    }

    fn describe(&self) -> String {
        format!(
            "{} of {} OpenCL functions from {}",
            self.dispatch.api.available(),
            opencl::FUNCTION_NAMES.len(),
            self.library
        )
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
