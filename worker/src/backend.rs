//! Backends: the host libraries the worker executes calls on, loaded at run
//! time so that the worker builds and starts without them.

use anyhow::Context;

use crate::opencl;

/// The host's OpenCL library (normally the ICD loader) and its dispatcher.
pub struct OpenCl {
    /// Keeps the library loaded while the dispatcher's pointers are used.
    _lib: libloading::Library,
    /// The generated dispatcher over the library's functions.
    pub dispatch: opencl::Dispatch,
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
        })
    }
}
