//! Generates both sides of the test API from `testapi.lapis`, and of the
//! paper's Figure 4 spec.

use lapis::codegen::{Options, Side, build_script};

fn main() {
    let opts = Options {
        locate_region: "::remoting::guest::no_region".into(),
        ..Options::default()
    };
    build_script("testapi.lapis", Side::Guest, &opts, "testapi_guest.rs");
    build_script("testapi.lapis", Side::Worker, &opts, "testapi_worker.rs");
    // Another revision of the same API, as a guest library built before a
    // function was removed would have it: its function ids are shifted, so
    // the worker must refuse it (tests/multi_api.rs).
    let spec = std::fs::read_to_string("testapi.lapis").expect("testapi.lapis");
    let at = spec
        .find("\nta_obj ta_create(")
        .expect("ta_create in testapi.lapis");
    let older = format!(
        "{}\nta_status ta_removed(ta_obj obj) {{ sync; }}\n{}",
        &spec[..at],
        &spec[at..]
    );
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let older_path = out.join("testapi_older.lapis");
    std::fs::write(&older_path, older).expect("write the older revision");
    build_script(
        older_path.to_str().expect("UTF-8 path"),
        Side::Guest,
        &opts,
        "testapi_older_guest.rs",
    );
    // Linked beside the current guest code in one test binary: its entry
    // points are ordinary Rust functions there, not exported C symbols.
    let generated = out.join("testapi_older_guest.rs");
    let code = std::fs::read_to_string(&generated).expect("generated older guest");
    std::fs::write(&generated, code.replace("#[unsafe(no_mangle)]", ""))
        .expect("rewrite the older guest");
    // The paper's Figure 4, completed: must generate and compile.
    let fig4 = "../lapis/tests/specs/figure4.lapis";
    let cuda = Options {
        locate_region: "::remoting::guest::no_region".into(),
        ..Options::default()
    };
    build_script(fig4, Side::Guest, &cuda, "figure4_guest.rs");
    build_script(fig4, Side::Worker, &cuda, "figure4_worker.rs");
}
