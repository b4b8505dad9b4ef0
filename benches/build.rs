//! Generates the OpenCL function table (`Api`) from `specs/opencl.lapis`:
//! the benchmarks call the native library and the guest library through it.

use lapis::codegen::{Options, Side, build_script};

fn main() {
    build_script(
        "../specs/opencl.lapis",
        Side::Table,
        &Options::default(),
        "opencl_table.rs",
    );
}
