//! The host worker: opens VM regions, polls their channels, executes the
//! remoted calls on the host's real libraries through generated
//! dispatchers, and cleans up after guests that go away.

pub mod backend;
pub mod guards;
pub mod server;

/// The generated OpenCL dispatcher and types.
#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    unused_parens,
    unused_imports,
    clippy::all
)]
pub mod opencl {
    include!(concat!(env!("OUT_DIR"), "/opencl_worker.rs"));
}
