//! Larger valid specifications check cleanly and resolve as expected.

use lapis::ast::{ArgTarget, Decl, Flag};
use lapis::{CallMode, Direction, Scalar, Ty};

fn load(name: &str) -> lapis::Spec {
    let path = format!("{}/tests/specs/{name}", env!("CARGO_MANIFEST_DIR"));
    lapis::load(&path).unwrap_or_else(|d| panic!("{d}"))
}

#[test]
fn opencl_sample_resolves_types() {
    let s = load("opencl_sample.lapis");
    let flags = match s.decl("cl_mem_flags") {
        Some(Decl::Type(a)) => a.target.ty().clone(),
        d => panic!("{d:?}"),
    };
    // cl_mem_flags = cl_bitfield = cl_ulong = u64
    assert_eq!(flags.scalar(), Some(Scalar::U64));
    assert_eq!(s.constant("CL_INVALID_VALUE"), Some(-30));
    assert_eq!(s.constant("CL_MEM_READ_WRITE"), Some(1));
    let f = s.function("clGetDeviceInfo").unwrap();
    let pv = &f.argument("param_value").unwrap().annots;
    assert!(pv.has(Flag::Nullable));
    assert_eq!(pv.direction(), Some(Direction::Out));
    let cb = s.callback("pfn_context_notify").unwrap();
    assert_eq!(cb.signature.params.len(), 4);
    assert!(
        cb.signature
            .argument("user_data")
            .unwrap()
            .annots
            .has(Flag::Opaque)
    );
}

#[test]
fn opencl_sample_handles_and_callbacks() {
    let s = load("opencl_sample.lapis");
    let f = s.function("clCreateContext").unwrap();
    assert!(f.return_annots().unwrap().has(Flag::Allocate));
    assert_eq!(f.ret.ty(), &Ty::Handle("cl_context".into()));
    let pfn = f.argument("pfn_notify").unwrap();
    assert_eq!(pfn.target, Some(ArgTarget::Param(3)));
    assert_eq!(pfn.annots.callback().flatten().unwrap().name, "user_data");
    assert!(
        s.function("clReleaseMemObject")
            .unwrap()
            .argument("memobj")
            .unwrap()
            .annots
            .has(Flag::Deallocate)
    );
    assert_eq!(s.function("clFinish").unwrap().mode(), CallMode::Sync);
    assert_eq!(
        s.function("clCreateSubDevices").unwrap().unsupported(),
        Some("device partitioning is not remoted")
    );
    assert_eq!(s.unsupported_count(), 1);
}

#[test]
fn vecadd_tutorial_spec_checks() {
    let s = load("vecadd.lapis");
    assert_eq!(s.functions.len(), 6);
    assert_eq!(s.function("vec_add").unwrap().mode(), CallMode::Async);
    let read = s.function("vec_read_async").unwrap();
    assert_eq!(
        read.argument("dst").unwrap().annots.lifetime(),
        lapis::Lifetime::Manual
    );
    let text = lapis::explain::explain(&s, "vec_read_async").unwrap();
    assert!(text.contains("filled when a later `vec_finish`"), "{text}");
}

#[test]
fn comments_and_forward_references() {
    let s = lapis::parse_str(
        "fwd.lapis",
        "api x version \"0\"; /* block\ncomment */ // line\nmy_t f(later_t v);\ntype my_t = later_t;\ntype later_t = u8;\n",
    )
    .unwrap();
    assert_eq!(s.function("f").unwrap().ret.ty().scalar(), Some(Scalar::U8));
}
