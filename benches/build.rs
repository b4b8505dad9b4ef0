//! Generates the OpenCL and CUDA function tables (`Api`) from
//! `specs/opencl.lapis` and `specs/cuda.lapis`: the benchmarks call the
//! native library and the guest library through them.

use lapis::codegen::{Options, Side, build_script};

fn main() {
    build_script(
        "../specs/opencl.lapis",
        Side::Table,
        &Options::default(),
        "opencl_table.rs",
    );
    build_script(
        "../specs/cuda.lapis",
        Side::Table,
        &Options::default(),
        "cuda_table.rs",
    );
}
