//! The host worker: opens VM regions, polls their channels, executes the
//! remoted calls on the host's real libraries through generated
//! dispatchers, and cleans up after guests that go away.

pub mod backend;
pub mod guards;
pub mod server;

remoting::generated! {
    /// The generated OpenCL dispatcher and types.
    pub mod opencl = "opencl_worker.rs";
}
