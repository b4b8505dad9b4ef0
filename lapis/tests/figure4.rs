//! The paper's Figure 4, completed, checks cleanly and has the expected AST.

use lapis::ast::{ArgTarget, Flag, NameRef};
use lapis::{ArgAnnotKind, CallMode, Direction, ExprKind, ExprType, FnAnnotKind, Lifetime, Ty};

fn spec() -> lapis::Spec {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/specs/figure4.lapis");
    lapis::load(path).unwrap_or_else(|d| panic!("{d}"))
}

#[test]
fn header_and_declarations() {
    let s = spec();
    assert_eq!(s.api.name.name, "cuda");
    assert_eq!(s.api.version, "figure4");
    assert_eq!(s.functions.len(), 4);
    assert_eq!(s.constant("CUDA_SUCCESS"), Some(0));
    let handles: Vec<_> = s.handles().map(|h| h.name.name.as_str()).collect();
    assert_eq!(handles, ["CUstream", "CUfunction", "CUmodule"]);
    let m = s.metadata("CUfunction").expect("metadata");
    assert_eq!(m.fields.len(), 3);
    assert_eq!(m.fields[1].array, Some(None));
}

#[test]
fn figure_line_15_is_the_output_handle() {
    let s = spec();
    let f = s.function("cuModuleGetFunction").unwrap();
    let pp = f.argument("pp").unwrap();
    assert_eq!(s.source[..pp.name.span.start].lines().count(), 15);
    assert_eq!(pp.target, Some(ArgTarget::Param(0)));
    assert_eq!(pp.annots.direction(), Some(Direction::Out));
    let el = pp.annots.element().unwrap();
    assert!(el.has(Flag::ObjRecord) && el.has(Flag::Allocate));
    assert_eq!(
        f.params[0].ty.ty().pointee().and_then(Ty::handle),
        Some("CUfunction")
    );
    assert!(f.argument("name").unwrap().annots.has(Flag::String));
}

#[test]
fn memcpy_dtoh_async_is_deferred() {
    let s = spec();
    let f = s.function("cuMemcpyDtoHAsync").unwrap();
    assert_eq!(f.mode(), CallMode::Async);
    let success = f.success().unwrap();
    assert!(
        matches!(&success.kind, ExprKind::Name { name, resolved: Some(NameRef::Const(0)) } if name.name == "CUDA_SUCCESS")
    );
    let dst = &f.argument("dst").unwrap().annots;
    assert!(dst.has(Flag::NoCopy));
    assert_eq!(dst.lifetime(), Lifetime::Manual);
    assert_eq!(dst.direction(), None);
    assert!(matches!(
        &dst.buffer().unwrap().kind,
        ExprKind::Name {
            resolved: Some(NameRef::Param(2)),
            ..
        }
    ));
    let calls: Vec<_> = f
        .annots
        .iter()
        .filter_map(|a| match &a.kind {
            FnAnnotKind::RuntimeCall(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 1);
    match &calls[0].kind {
        ExprKind::Call { func, args } => {
            assert_eq!(func.name, "register_buf");
            assert_eq!(args.len(), 4);
            assert_eq!(args[0].ty(), &ExprType::Tracker);
            assert_eq!(args[1].ty(), &ExprType::Handle("CUstream".into()));
        }
        k => panic!("unexpected {k:?}"),
    }
    assert_eq!(calls[0].ty(), &ExprType::Void);
}

#[test]
fn launch_kernel_consumes_and_branches_on_metadata() {
    let s = spec();
    let f = s.function("cuLaunchKernel").unwrap();
    assert_eq!(f.mode(), CallMode::Async);
    assert_eq!(f.params.len(), 11);
    let (res, amount) = f.consumes().next().unwrap();
    assert_eq!(res.name, "kernel_invocation");
    assert!(matches!(amount.kind, ExprKind::Int(1)));
    let kp = &f.argument("kernelParams").unwrap().annots;
    assert_eq!(kp.direction(), Some(Direction::In));
    assert!(
        matches!(&kp.buffer().unwrap().kind, ExprKind::Metadata { object, field } if object.name == "f" && field.name == "fn_argc")
    );
    let el = kp.element().unwrap();
    let (cond, then, otherwise) = el.conditionals().next().unwrap();
    assert_eq!(cond.ty(), &ExprType::Bool);
    match &cond.kind {
        ExprKind::Index(base, idx) => {
            assert!(matches!(base.kind, ExprKind::Metadata { .. }));
            assert!(matches!(
                &idx.kind,
                ExprKind::Name {
                    resolved: Some(NameRef::Index),
                    ..
                }
            ));
        }
        k => panic!("unexpected {k:?}"),
    }
    assert_eq!(then.type_cast().unwrap().to_string(), "CUdeviceptr*");
    assert!(matches!(then.buffer().unwrap().kind, ExprKind::Int(1)));
    assert_eq!(
        otherwise.type_cast().unwrap().ty(),
        &Ty::Pointer {
            pointee: Box::new(Ty::Void),
            pointee_const: false
        }
    );
    assert!(f.argument("extra").unwrap().annots.has(Flag::MustBeNull));
}

#[test]
fn stream_synchronize_has_contextual_buffers() {
    let s = spec();
    let f = s.function("cuStreamSynchronize").unwrap();
    assert_eq!(f.mode(), CallMode::Sync);
    let ctx: Vec<_> = f.contextual_args().collect();
    assert_eq!(ctx.len(), 1);
    assert_eq!(ctx[0].name.name, "bufs");
    assert_eq!(ctx[0].ty.to_string(), "void**");
    assert_eq!(ctx[0].value.ty(), &ExprType::BufferList);
    let bufs = f.argument("bufs").unwrap();
    assert_eq!(bufs.target, Some(ArgTarget::Contextual(0)));
    assert_eq!(bufs.annots.direction(), Some(Direction::In));
    let el = bufs.annots.element().unwrap();
    assert_eq!(el.direction(), Some(Direction::Out));
    assert!(el.has(Flag::Deallocate));
    assert!(
        matches!(&el.buffer().unwrap().kind, ExprKind::Call { func, .. } if func.name == "get_buf_size")
    );
    assert!(
        el.items
            .iter()
            .any(|a| matches!(a.kind, ArgAnnotKind::Buffer(_)))
    );
}

#[test]
fn verbatim_line_35_is_rejected() {
    let s = spec();
    let text = s.source.replace(
        "argument(extra) { must_be_null; }",
        "argument(extra) { in; ... }",
    );
    let d = lapis::parse_str("fig4.lapis", &text).unwrap_err();
    let e = d.iter().next().unwrap();
    assert_eq!((e.line(), e.column()), (35, 27));
    assert!(e.message().contains("elided specification"));
}

#[test]
fn explain_describes_deferred_output() {
    let s = spec();
    let text = lapis::explain::explain(&s, "cuMemcpyDtoHAsync").unwrap();
    assert!(
        text.contains("dst: not copied to the worker; the worker allocates `size` bytes"),
        "{text}"
    );
    assert!(text.contains("lifetime_manual"), "{text}");
    assert!(text.contains("cuStreamSynchronize"), "{text}");
    assert!(text.contains("returns `CUDA_SUCCESS` at once"), "{text}");
}

#[test]
fn codegen_follows_figure_5() {
    let s = spec();
    let g = lapis::codegen::generate(&s, lapis::codegen::Side::Guest).unwrap();
    // cuMemcpyDtoHAsync: async, records the buffer, returns success at once
    // (the exported function's body, `__NAME`, makes the call).
    let f = g.split("fn __cuMemcpyDtoHAsync(").nth(1).unwrap();
    let f = &f[..f.find("\n}\n").unwrap()];
    assert!(
        f.contains("__conn.call(func::cuMemcpyDtoHAsync, false)"),
        "{f}"
    );
    assert!(f.contains("__conn.register_buf(\"async_DtoH\""), "{f}");
    assert!(
        !f.contains("__r.out_ptr"),
        "an async call reads no reply: {f}"
    );
    // cuStreamSynchronize: collects the registered buffers, waits, fills them.
    let f = g.split("fn __cuStreamSynchronize(").nth(1).unwrap();
    let f = &f[..f.find("\n}\n").unwrap()];
    assert!(f.contains("__conn.get_bufs(\"async_DtoH\""), "{f}");
    assert!(
        f.contains("__conn.call(func::cuStreamSynchronize, true)"),
        "{f}"
    );
    assert!(f.contains("__r.out_ptr(__p as *mut u8"), "{f}");
    assert!(f.contains("unregister_buf"), "{f}");
    // cuLaunchKernel: element sizes come from the function's metadata.
    assert!(g.contains("__conn.metadata(f as usize as u64, \"fn_arg_size\""));
    let w = lapis::codegen::generate(&s, lapis::codegen::Side::Worker).unwrap();
    assert!(w.contains("cx.consume(\"kernel_invocation\""));
    assert!(w.contains("cx.session.manual"));
}
