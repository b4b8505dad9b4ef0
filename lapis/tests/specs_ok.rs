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

#[test]
fn opencl_handles_new_constructs() {
    use lapis::ast::{ArgAnnotKind, ExprKind};
    let s = load("opencl_handles.lapis");

    // handle NAME = ERROR;
    let mem = s.handles().find(|h| h.name.name == "cl_mem").unwrap();
    assert_eq!(mem.invalid_value(), Some(-38));
    let sampler = s.handles().find(|h| h.name.name == "cl_sampler").unwrap();
    assert!(sampler.invalid.is_none());

    // error_code
    let f = s.function("clCreateBuffer").unwrap();
    assert_eq!(f.error_code().unwrap().name.name, "errcode_ret");
    assert!(s.function("clSetKernelArg").unwrap().error_code().is_none());

    // retain / deallocate
    let retain = &s
        .function("clRetainMemObject")
        .unwrap()
        .arguments()
        .next()
        .unwrap()
        .annots;
    assert!(retain.has(Flag::Retain) && !retain.has(Flag::Deallocate));

    // value(EXPR)
    let read = s.function("clEnqueueReadBuffer").unwrap();
    assert_eq!(read.mode(), CallMode::Sync);
    let v = read
        .argument("blocking_read")
        .unwrap()
        .annots
        .value()
        .unwrap();
    assert_eq!(v.const_value(), Some(1));

    // maybe_handle
    let skarg = s.function("clSetKernelArg").unwrap();
    assert!(
        skarg
            .argument("arg_value")
            .unwrap()
            .annots
            .has(Flag::MaybeHandle)
    );

    // async with a new handle written through `event`
    let write = s.function("clEnqueueWriteBuffer").unwrap();
    assert_eq!(write.mode(), CallMode::Async);
    let ev = &write.argument("event").unwrap().annots;
    assert!(ev.element().unwrap().has(Flag::Allocate));

    // type_cast inside an `if` of an out void* buffer
    let info = &s
        .function("clGetContextInfo")
        .unwrap()
        .argument("param_value")
        .unwrap()
        .annots;
    assert!(info.type_cast().is_none(), "the cast is conditional");
    let casts = info.type_casts();
    assert_eq!(casts.len(), 1);
    let (conds, t) = &casts[0];
    assert_eq!(conds.len(), 1);
    assert!(conds[0].1, "then branch");
    assert_eq!(t.ty().pointee().and_then(Ty::handle), Some("cl_device_id"));
    assert!(
        info.all_items()
            .iter()
            .any(|a| matches!(a.kind, ArgAnnotKind::TypeCast(_)))
    );
    assert!(!info.has(Flag::Handle) && info.has_anywhere(Flag::Nullable));

    // property list: key/value pairs, the value after CL_CONTEXT_PLATFORM is a handle
    let props = &s
        .function("clCreateContext")
        .unwrap()
        .argument("properties")
        .unwrap()
        .annots;
    assert!(props.has(Flag::ZeroTerminated) && props.has(Flag::KeyValue));
    let elem = props.element().unwrap();
    let (cond, then, _) = elem.conditionals().next().unwrap();
    assert!(matches!(
        cond.kind,
        ExprKind::Binary(lapis::ast::BinaryOp::And, _, _)
    ));
    assert_eq!(
        then.type_cast().unwrap().ty().handle(),
        Some("cl_platform_id")
    );

    let text = lapis::explain::explain(&s, "clEnqueueWriteBuffer").unwrap();
    assert!(text.contains("the guest library chooses its id"), "{text}");
    let text = lapis::explain::explain(&s, "clGetContextInfo").unwrap();
    assert!(
        text.contains("its contents are `cl_device_id` handles"),
        "{text}"
    );
    assert!(
        text.contains("fails the call with `CL_INVALID_CONTEXT`"),
        "{text}"
    );
}
