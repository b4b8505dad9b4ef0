//! Runs the `lapis` binary.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_lapis");

fn spec(name: &str) -> String {
    format!("{}/../tests/specs/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run lapis");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_good_spec_prints_summary() {
    let (code, out, _) = run(&[
        "check",
        &spec("figure4.lapis"),
        &spec("opencl_sample.lapis"),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("api `cuda` version figure4, 4 functions, 0 unsupported"),
        "{out}"
    );
    assert!(
        out.contains("api `opencl` version 1.2, 11 functions, 1 unsupported"),
        "{out}"
    );
}

#[test]
fn check_bad_spec_reports_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.lapis");
    std::fs::write(
        &path,
        "api t version \"1\";\ntype size_t = usize;\nsize_t f(size_t* p) {\n    argument(q) { in; }\n}\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let (code, out, err) = run(&["check", p]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("{p}:4:14")), "{err}");
    assert!(err.contains("unknown argument `q`"), "{err}");
    assert!(err.contains(&format!("{p}:3:10")), "{err}");
    assert!(err.contains("2 errors"), "{err}");
    assert!(!err.contains('\u{1b}'), "no colors when not a terminal");
}

#[test]
fn check_missing_file_fails() {
    let (code, _, err) = run(&["check", "/nonexistent/x.lapis"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn explain_prints_plain_english() {
    let (code, out, _) = run(&["explain", &spec("figure4.lapis"), "cuMemcpyDtoHAsync"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("dst: not copied to the worker; the worker allocates `size` bytes"),
        "{out}"
    );
    let (code, _, err) = run(&["explain", &spec("figure4.lapis"), "cuNope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no function `cuNope`"), "{err}");
}

#[test]
fn generate_prints_both_sides() {
    let (code, out, err) = run(&["generate", &spec("figure4.lapis"), "--side", "guest"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("pub unsafe extern \"C\" fn cuMemcpyDtoHAsync("),
        "{out}"
    );
    let (code, out, err) = run(&["generate", &spec("figure4.lapis"), "--side", "worker"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("fn call_cuStreamSynchronize("), "{out}");
    // The function table alone: the `Api` struct, no dispatcher.
    let (code, out, err) = run(&["generate", &spec("figure4.lapis"), "--side", "table"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pub struct Api {"), "{out}");
    assert!(!out.contains("fn call_cuStreamSynchronize("), "{out}");
    let (code, _, err) = run(&["generate", &spec("figure4.lapis"), "--side", "both"]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid value"), "{err}");
}

#[test]
fn help_has_examples() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Examples:") && out.contains("lapis check"),
        "{out}"
    );
}
