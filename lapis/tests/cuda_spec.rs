//! The CUDA specification (`specs/cuda.lapis`) checks cleanly, names the
//! ABI symbols real binaries link, and says what the remoting relies on:
//! streams that pass as themselves, kernel parameters sized by metadata
//! on both sides, and asynchronous launches and copies.

use lapis::codegen::{Side, generate};
use lapis::{CallMode, Spec};

fn spec() -> Spec {
    let path = format!("{}/../specs/cuda.lapis", env!("CARGO_MANIFEST_DIR"));
    lapis::load(&path).unwrap_or_else(|d| panic!("{}", d.render()))
}

#[test]
fn checks_cleanly_with_the_abi_names() {
    let s = spec();
    assert_eq!(s.api.name.name, "cuda");
    for name in [
        "cuMemAlloc_v2",
        "cuMemFree_v2",
        "cuMemcpyHtoD_v2",
        "cuMemcpyDtoH_v2",
        "cuMemcpyHtoDAsync_v2",
        "cuCtxCreate_v2",
        "cuCtxDestroy_v2",
        "cuStreamDestroy_v2",
        "cuEventDestroy_v2",
        "cuDevicePrimaryCtxRelease_v2",
        "cuModuleGetGlobal_v2",
        "cuLaunchKernel",
        "cuGetProcAddress_v2",
        "cuFuncGetParamInfo",
    ] {
        assert!(s.function(name).is_some(), "`{name}` is missing");
    }
    // The legacy (32-bit pointer) ABI names must not be exported under
    // the new signatures.
    for legacy in ["cuMemAlloc", "cuMemFree", "cuCtxCreate", "cuMemcpyHtoD"] {
        assert!(s.function(legacy).is_none(), "`{legacy}` has another ABI");
    }
    let unsupported: Vec<_> = s.functions.iter().filter_map(|f| f.unsupported()).collect();
    assert!(unsupported.iter().all(|r| !r.is_empty()));
}

#[test]
fn launches_and_copies_to_the_device_are_asynchronous() {
    let s = spec();
    for name in [
        "cuLaunchKernel",
        "cuMemcpyHtoDAsync_v2",
        "cuMemcpyDtoDAsync_v2",
        "cuEventRecord",
        "cuStreamWaitEvent",
        "cuMemsetD32Async",
    ] {
        assert_eq!(s.function(name).unwrap().mode(), CallMode::Async, "{name}");
    }
    // A copy into the guest's memory returns with the bytes there.
    assert_eq!(
        s.function("cuMemcpyDtoHAsync_v2").unwrap().mode(),
        CallMode::Sync
    );
}

#[test]
fn default_streams_pass_as_themselves_and_are_not_null_errors() {
    let s = spec();
    let stream = s.handles().find(|h| h.name.name == "CUstream").unwrap();
    assert_eq!(stream.pass_values(), vec![0, 1, 2]);
    let worker = generate(&s, Side::Worker).unwrap();
    assert!(
        worker.contains("matches!(hStream_id, 1u64 | 2u64)"),
        "the worker passes CU_STREAM_LEGACY and CU_STREAM_PER_THREAD on"
    );
    let guest = generate(&s, Side::Guest).unwrap();
    let launch = &guest[guest.find("unsafe fn __cuLaunchKernel").unwrap()..];
    let launch = &launch[..launch.find("\n}\n").unwrap()];
    assert!(
        !launch.contains("(hStream as usize) == 0"),
        "the NULL stream is the default stream, not an error"
    );
    assert!(
        launch.contains("(f as usize) == 0"),
        "a NULL function still fails at once"
    );
}

#[test]
fn kernel_parameters_are_sized_by_metadata_on_both_sides() {
    let s = spec();
    let guest = generate(&s, Side::Guest).unwrap();
    assert!(guest.contains("__conn.metadata(f as usize as u64, \"fn_arg_size\""));
    let worker = generate(&s, Side::Worker).unwrap();
    assert!(worker.contains("crate::guards::metadata(api, f as usize as u64, \"fn_argc\""));
    assert!(worker.contains("`kernelParams` has too few elements"));
    assert!(worker.contains("of `kernelParams` is too short"));
}
