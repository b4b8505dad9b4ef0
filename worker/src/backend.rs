//! Backends: the host libraries the worker executes calls on, loaded at run
//! time so that the worker builds and starts without them.

use anyhow::Context;
use remoting::ApiId;
use remoting::worker::Dispatcher;

use crate::opencl;

/// One API the worker serves: its identity (name and specification
/// revision), the dispatcher generated from its specification over the host
/// library, and what it runs on. A backend is loaded by its own constructor;
/// one that cannot load is left out and the others are served.
pub trait Backend: Send + Sync {
    /// The API and specification revision that guests must name.
    fn api(&self) -> ApiId;
    /// Executes the API's calls; also destroys what a departed guest left
    /// ([`Dispatcher::destroy`]).
    fn dispatcher(&self) -> &dyn Dispatcher;
    /// What the backend runs on, in words, for the log.
    fn describe(&self) -> String;
}

/// The backends `ava-worker` knows, by name.
pub const KNOWN: &[&str] = &["opencl"];

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
