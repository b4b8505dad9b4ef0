//! Generates the OpenCL guest functions from `specs/opencl.lapis`.

use lapis::codegen::{Options, Side, build_script};

fn main() {
    let opts = Options {
        // CL_INVALID_OPERATION: what the application sees for an API
        // function that is not remoted or missing on the host.
        unsupported_error: -59,
        // CL_OUT_OF_RESOURCES: the worker could not be reached.
        transport_error: -5,
        locate_region: "crate::locate_region".into(),
        ..Options::default()
    };
    let spec = std::env::var("AVA_OPENCL_SPEC").unwrap_or_else(|_| "../specs/opencl.lapis".into());
    println!("cargo:rerun-if-env-changed=AVA_OPENCL_SPEC");
    build_script(&spec, Side::Guest, &opts, "opencl_guest.rs");
}
