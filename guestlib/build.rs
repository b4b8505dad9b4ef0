//! Generates the OpenCL guest functions from `specs/opencl.lapis`.

use lapis::codegen::{Options, Side, build_script};

fn main() {
    let opts = Options {
        locate_region: "crate::locate_region".into(),
        ..Options::default()
    };
    let spec = std::env::var("AVA_OPENCL_SPEC").unwrap_or_else(|_| "../specs/opencl.lapis".into());
    println!("cargo:rerun-if-env-changed=AVA_OPENCL_SPEC");
    build_script(&spec, Side::Guest, &opts, "opencl_guest.rs");
    // Calls inside the library go to its own functions even when an ICD
    // loader that exports the same names was loaded first (the library as
    // an installable client driver, `src/icd.rs`).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic-functions");
}
