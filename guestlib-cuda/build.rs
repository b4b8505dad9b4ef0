//! Generates the CUDA guest functions from `specs/cuda.lapis`.

use lapis::codegen::{Options, Side, build_script};

fn main() {
    let opts = Options {
        locate_region: "crate::locate_region".into(),
        ..Options::default()
    };
    let spec = std::env::var("AVA_CUDA_SPEC").unwrap_or_else(|_| "../specs/cuda.lapis".into());
    println!("cargo:rerun-if-env-changed=AVA_CUDA_SPEC");
    build_script(&spec, Side::Guest, &opts, "cuda_guest.rs");
}
