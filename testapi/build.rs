//! Generates both sides of the test API from `testapi.lapis`, and of the
//! paper's Figure 4 spec.

use lapis::codegen::{Options, Side, build_script};

fn main() {
    let opts = Options {
        unsupported_error: -3,
        transport_error: -4,
        locate_region: "::remoting::guest::no_region".into(),
        ..Options::default()
    };
    build_script("testapi.lapis", Side::Guest, &opts, "testapi_guest.rs");
    build_script("testapi.lapis", Side::Worker, &opts, "testapi_worker.rs");
    // The paper's Figure 4, completed: must generate and compile.
    let fig4 = "../lapis/tests/specs/figure4.lapis";
    let cuda = Options {
        unsupported_error: 801,
        transport_error: 999,
        locate_region: "::remoting::guest::no_region".into(),
        ..Options::default()
    };
    build_script(fig4, Side::Guest, &cuda, "figure4_guest.rs");
    build_script(fig4, Side::Worker, &cuda, "figure4_worker.rs");
}
