//! The host worker: opens VM regions, polls their channels, executes the
//! remoted calls on the host's real libraries through generated
//! dispatchers, and cleans up after guests that go away.

pub mod accounting;
pub mod backend;
pub mod config;
pub mod cuda_copies;
pub mod cuda_guards;
pub mod cuda_memory;
pub mod guards;
pub mod metrics;
pub mod supervisor;
pub mod svm;

/// The serving core (`ava-server`), re-exported for the worker binary.
pub use server;

remoting::generated! {
    /// The generated OpenCL dispatcher and types.
    pub mod opencl = "opencl_worker.rs";
}

remoting::generated! {
    /// The generated CUDA driver API dispatcher and types.
    pub mod cuda = "cuda_worker.rs";
}

remoting::generated! {
    /// The generated dispatcher of the test API (`testapi/testapi.lapis`),
    /// served by the `testapi` backend for tests of the worker.
    pub mod testapi = "testapi_worker.rs";
}
