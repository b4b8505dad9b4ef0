//! Generates the OpenCL and CUDA dispatchers from `specs/opencl.lapis` and
//! `specs/cuda.lapis`, and the test
//! API's from `testapi/testapi.lapis` (a backend for tests).

use lapis::codegen::{Options, Side, build_script};

fn main() {
    let opts = Options {
        locate_region: String::new(),
        guards: "crate::guards".into(),
        ..Options::default()
    };
    let spec = std::env::var("AVA_OPENCL_SPEC").unwrap_or_else(|_| "../specs/opencl.lapis".into());
    println!("cargo:rerun-if-env-changed=AVA_OPENCL_SPEC");
    build_script(&spec, Side::Worker, &opts, "opencl_worker.rs");
    let cuda = Options {
        locate_region: String::new(),
        guards: "crate::cuda_guards".into(),
        ..Options::default()
    };
    let spec = std::env::var("AVA_CUDA_SPEC").unwrap_or_else(|_| "../specs/cuda.lapis".into());
    println!("cargo:rerun-if-env-changed=AVA_CUDA_SPEC");
    build_script(&spec, Side::Worker, &cuda, "cuda_worker.rs");
    let testapi = Options {
        locate_region: String::new(),
        ..Options::default()
    };
    build_script(
        "../testapi/testapi.lapis",
        Side::Worker,
        &testapi,
        "testapi_worker.rs",
    );
}
