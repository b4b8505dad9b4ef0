//! The OpenCL specification (`specs/opencl.lapis`) checks cleanly and says
//! what the remoting relies on.

use lapis::ast::{Decl, Flag};
use lapis::{CallMode, Direction, Spec, Ty};

fn spec() -> Spec {
    let path = format!("{}/../specs/opencl.lapis", env!("CARGO_MANIFEST_DIR"));
    lapis::load(&path).unwrap_or_else(|d| panic!("{}", d.render()))
}

fn function<'a>(s: &'a Spec, name: &str) -> &'a lapis::Function {
    s.function(name)
        .unwrap_or_else(|| panic!("`{name}` is not in the spec"))
}

#[test]
fn checks_cleanly_and_is_complete() {
    let s = spec();
    assert_eq!(s.api.name.name, "opencl");
    assert!(
        s.functions.len() >= 100,
        "only {} functions",
        s.functions.len()
    );
    let unsupported: Vec<(&str, &str)> = s
        .functions
        .iter()
        .filter_map(|f| f.unsupported().map(|r| (f.name.name.as_str(), r)))
        .collect();
    println!(
        "specs/opencl.lapis: {} functions, {} unsupported:",
        s.functions.len(),
        unsupported.len()
    );
    for (name, reason) in &unsupported {
        println!("  {name}: {reason}");
        assert!(
            !reason.is_empty(),
            "`{name}` is unsupported without a reason"
        );
    }
    assert_eq!(unsupported.len(), s.unsupported_count());
    // Most of the API is remoted.
    assert!(unsupported.len() * 5 < s.functions.len());
}

#[test]
fn every_handle_names_its_invalid_error() {
    let s = spec();
    let expected = [
        ("cl_platform_id", "CL_INVALID_PLATFORM"),
        ("cl_device_id", "CL_INVALID_DEVICE"),
        ("cl_context", "CL_INVALID_CONTEXT"),
        ("cl_command_queue", "CL_INVALID_COMMAND_QUEUE"),
        ("cl_mem", "CL_INVALID_MEM_OBJECT"),
        ("cl_program", "CL_INVALID_PROGRAM"),
        ("cl_kernel", "CL_INVALID_KERNEL"),
        ("cl_event", "CL_INVALID_EVENT"),
        ("cl_sampler", "CL_INVALID_SAMPLER"),
    ];
    assert_eq!(s.handles().count(), expected.len());
    for (handle, error) in expected {
        let h = s.handles().find(|h| h.name.name == handle).unwrap();
        assert_eq!(h.invalid_value(), s.constant(error), "{handle}");
        assert!(h.invalid_value().unwrap() < 0);
    }
    assert_eq!(s.constant("CL_SUCCESS"), Some(0));
    assert_eq!(s.constant("CL_INVALID_VALUE"), Some(-30));
    assert_eq!(s.constant("CL_MAX_SIZE_RESTRICTION_EXCEEDED"), Some(-72));
    match s.decl("cl_error") {
        Some(Decl::Enum(e)) => assert!(e.variants.len() >= 60),
        d => panic!("{d:?}"),
    }
}

/// The values a guest library returns when it cannot make a call come from
/// the specification, and reach both generated sides.
#[test]
fn error_values_come_from_the_spec() {
    let s = spec();
    assert_eq!(
        s.error_value("unsupported"),
        s.constant("CL_INVALID_OPERATION")
    );
    assert_eq!(
        s.error_value("transport"),
        s.constant("CL_OUT_OF_RESOURCES")
    );
    // Options that say otherwise lose to the specification.
    let opts = lapis::codegen::Options {
        unsupported_error: 1,
        transport_error: 2,
        ..lapis::codegen::Options::default()
    };
    let g = lapis::codegen::generate_with(&s, lapis::codegen::Side::Guest, &opts).unwrap();
    assert!(
        g.contains("pub const UNSUPPORTED_ERROR: i64 = -59;"),
        "guest"
    );
    assert!(g.contains("pub const TRANSPORT_ERROR: i64 = -5;"), "guest");
    let w = lapis::codegen::generate_with(&s, lapis::codegen::Side::Worker, &opts).unwrap();
    // A call the policy refuses (beyond a memory quota) gets what a full
    // device returns: `error_value refused`.
    assert_eq!(
        s.error_value("refused"),
        s.constant("CL_MEM_OBJECT_ALLOCATION_FAILURE")
    );
    assert!(w.contains("pub const REFUSED_ERROR: i64 = -4;"), "worker");
}

#[test]
fn enqueued_writes_are_async_and_reads_sync() {
    let s = spec();
    for name in [
        "clEnqueueWriteBuffer",
        "clEnqueueWriteBufferRect",
        "clEnqueueWriteImage",
        "clEnqueueCopyBuffer",
        "clEnqueueCopyBufferRect",
        "clEnqueueCopyImage",
        "clEnqueueCopyImageToBuffer",
        "clEnqueueCopyBufferToImage",
        "clEnqueueNDRangeKernel",
        "clEnqueueTask",
        "clEnqueueMarkerWithWaitList",
        "clEnqueueBarrierWithWaitList",
        "clEnqueueMarker",
        "clEnqueueBarrier",
        "clEnqueueWaitForEvents",
        "clFlush",
    ] {
        let f = function(&s, name);
        assert_eq!(f.mode(), CallMode::Async, "{name}");
        assert_eq!(
            f.success().and_then(|e| e.const_value()),
            Some(0),
            "{name} returns CL_SUCCESS at once"
        );
        // The new event's id is chosen by the guest.
        if let Some(ev) = f.argument("event") {
            assert_eq!(ev.annots.direction(), Some(Direction::Out), "{name}");
            assert!(ev.annots.element().unwrap().has(Flag::Allocate), "{name}");
        }
    }
    // Fills and migrations wait for the driver's checks of their
    // arguments (piglit's enqueue tests expect its errors at once).
    for name in [
        "clEnqueueReadBuffer",
        "clEnqueueReadBufferRect",
        "clEnqueueReadImage",
        "clFinish",
        "clWaitForEvents",
        "clEnqueueFillBuffer",
        "clEnqueueFillImage",
        "clEnqueueMigrateMemObjects",
    ] {
        assert_eq!(function(&s, name).mode(), CallMode::Sync, "{name}");
    }
    // Reads block on the worker; so do writes, whose data the worker frees
    // when the call returns.
    for (name, flag) in [
        ("clEnqueueReadBuffer", "blocking_read"),
        ("clEnqueueReadBufferRect", "blocking_read"),
        ("clEnqueueReadImage", "blocking_read"),
        ("clEnqueueWriteBuffer", "blocking_write"),
        ("clEnqueueWriteBufferRect", "blocking_write"),
        ("clEnqueueWriteImage", "blocking_write"),
    ] {
        let v = function(&s, name).argument(flag).unwrap().annots.value();
        assert_eq!(
            v.and_then(|e| e.const_value()),
            s.constant("CL_TRUE"),
            "{name}"
        );
    }
    let read = function(&s, "clEnqueueReadBuffer");
    assert_eq!(
        read.argument("ptr").unwrap().annots.direction(),
        Some(Direction::Out)
    );
    let launch = function(&s, "clEnqueueNDRangeKernel");
    let (res, amount) = launch.consumes().next().unwrap();
    assert_eq!(
        (res.name.as_str(), amount.const_value()),
        ("kernel_invocation", Some(1))
    );
}

#[test]
fn handles_are_created_retained_and_released() {
    let s = spec();
    for (create, retain, release) in [
        ("clCreateContext", "clRetainContext", "clReleaseContext"),
        (
            "clCreateCommandQueue",
            "clRetainCommandQueue",
            "clReleaseCommandQueue",
        ),
        ("clCreateBuffer", "clRetainMemObject", "clReleaseMemObject"),
        ("clCreateSampler", "clRetainSampler", "clReleaseSampler"),
        (
            "clCreateProgramWithSource",
            "clRetainProgram",
            "clReleaseProgram",
        ),
        ("clCreateKernel", "clRetainKernel", "clReleaseKernel"),
        ("clCreateUserEvent", "clRetainEvent", "clReleaseEvent"),
    ] {
        let c = function(&s, create);
        assert!(c.return_annots().unwrap().has(Flag::Allocate), "{create}");
        assert_eq!(c.error_code().unwrap().name.name, "errcode_ret", "{create}");
        let r = function(&s, retain);
        assert!(
            r.arguments().next().unwrap().annots.has(Flag::Retain),
            "{retain}"
        );
        let d = function(&s, release);
        assert!(
            d.arguments().next().unwrap().annots.has(Flag::Deallocate),
            "{release}"
        );
    }
    // Every function returning a handle reports errors through errcode_ret.
    for f in s.functions.iter().filter(|f| f.unsupported().is_none()) {
        if f.ret.ty().handle().is_some() {
            assert!(f.error_code().is_some(), "{}", f.name.name);
        }
    }
    let kernels = function(&s, "clCreateKernelsInProgram");
    let k = &kernels.argument("kernels").unwrap().annots;
    assert!(k.element().unwrap().has(Flag::Allocate));
}

#[test]
fn handles_inside_info_results_are_translated() {
    let s = spec();
    let cases = [
        ("clGetDeviceInfo", "CL_DEVICE_PLATFORM", "cl_platform_id"),
        ("clGetDeviceInfo", "CL_DEVICE_PARENT_DEVICE", "cl_device_id"),
        ("clGetContextInfo", "CL_CONTEXT_DEVICES", "cl_device_id"),
        ("clGetCommandQueueInfo", "CL_QUEUE_CONTEXT", "cl_context"),
        ("clGetCommandQueueInfo", "CL_QUEUE_DEVICE", "cl_device_id"),
        (
            "clGetCommandQueueInfo",
            "CL_QUEUE_DEVICE_DEFAULT",
            "cl_command_queue",
        ),
        ("clGetMemObjectInfo", "CL_MEM_CONTEXT", "cl_context"),
        (
            "clGetMemObjectInfo",
            "CL_MEM_ASSOCIATED_MEMOBJECT",
            "cl_mem",
        ),
        ("clGetImageInfo", "CL_IMAGE_BUFFER", "cl_mem"),
        ("clGetSamplerInfo", "CL_SAMPLER_CONTEXT", "cl_context"),
        ("clGetProgramInfo", "CL_PROGRAM_CONTEXT", "cl_context"),
        ("clGetProgramInfo", "CL_PROGRAM_DEVICES", "cl_device_id"),
        ("clGetKernelInfo", "CL_KERNEL_CONTEXT", "cl_context"),
        ("clGetKernelInfo", "CL_KERNEL_PROGRAM", "cl_program"),
        (
            "clGetEventInfo",
            "CL_EVENT_COMMAND_QUEUE",
            "cl_command_queue",
        ),
        ("clGetEventInfo", "CL_EVENT_CONTEXT", "cl_context"),
    ];
    for (func, selector, handle) in cases {
        let pv = &function(&s, func).argument("param_value").unwrap().annots;
        // Sized in bytes (the declared void*), cast when the selector matches.
        assert!(pv.buffer().is_some(), "{func}");
        assert!(pv.type_cast().is_none(), "{func}: the cast is conditional");
        let value = s.constant(selector).unwrap();
        let found = pv.type_casts().into_iter().any(|(conds, t)| {
            let (cond, then) = *conds.last().unwrap();
            then && t.ty().pointee().and_then(Ty::handle) == Some(handle) && selects(cond, value)
        });
        assert!(found, "{func}: {selector} → {handle}*");
    }
}

/// Whether `cond` is `param_name == K` where K's value is `value`.
fn selects(cond: &lapis::Expr, value: i128) -> bool {
    match &cond.kind {
        lapis::ExprKind::Binary(lapis::ast::BinaryOp::Eq, a, b) => {
            matches!(&a.kind, lapis::ExprKind::Name { name, .. } if name.name == "param_name")
                && b.const_value() == Some(value)
        }
        _ => false,
    }
}

#[test]
fn property_lists_and_kernel_arguments() {
    let s = spec();
    for func in ["clCreateContext", "clCreateContextFromType"] {
        let p = &function(&s, func).argument("properties").unwrap().annots;
        assert!(
            p.has(Flag::ZeroTerminated) && p.has(Flag::KeyValue),
            "{func}"
        );
        let (_, then, _) = p.element().unwrap().conditionals().next().unwrap();
        assert_eq!(
            then.type_cast().unwrap().ty().handle(),
            Some("cl_platform_id")
        );
    }
    for (func, arg) in [
        ("clCreateCommandQueueWithProperties", "properties"),
        ("clCreateSamplerWithProperties", "sampler_properties"),
        ("clCreateBufferWithProperties", "properties"),
    ] {
        let p = &function(&s, func).argument(arg).unwrap().annots;
        assert!(
            p.has(Flag::ZeroTerminated) && p.has(Flag::KeyValue),
            "{func}"
        );
    }
    let arg = &function(&s, "clSetKernelArg")
        .argument("arg_value")
        .unwrap()
        .annots;
    assert!(arg.has(Flag::MaybeHandle) && arg.has(Flag::Nullable));
    let binaries = &function(&s, "clCreateProgramWithBinary")
        .argument("binaries")
        .unwrap()
        .annots;
    assert!(binaries.element().unwrap().buffer().is_some());
    // Extension lookups answer NULL without an error.
    for name in [
        "clGetExtensionFunctionAddressForPlatform",
        "clGetExtensionFunctionAddress",
    ] {
        let f = function(&s, name);
        assert!(f.unsupported().is_none(), "{name}");
        assert!(matches!(
            f.success().map(|e| &e.kind),
            Some(lapis::ExprKind::Null)
        ));
    }
}
