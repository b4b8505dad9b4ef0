//! `lapis explain`: describes in plain English what the generated code will
//! do for a function and each of its arguments.

use std::fmt::Write;

use crate::Spec;
use crate::ast::*;
use crate::types::{Ty, runtime_fn};

/// Explains `function` of `spec`, or returns `None` if there is no such
/// function.
pub fn explain(spec: &Spec, function: &str) -> Option<String> {
    let f = spec.function(function)?;
    let mut out = String::new();
    let src = |s: Span| snippet(spec, s);
    let _ = writeln!(
        out,
        "{}",
        spec.source[f.proto_span.start..f.proto_span.end].trim()
    );
    if let Some(reason) = f.unsupported() {
        let why = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        let _ = writeln!(
            out,
            "  unsupported{why}. The guest library fails the call with an error and never contacts the worker."
        );
        return Some(out);
    }
    match f.mode() {
        CallMode::Sync => {
            let _ = writeln!(
                out,
                "  synchronous: the guest library sends the call and waits for the worker's reply, \
                 then returns the driver's result."
            );
        }
        CallMode::Async => {
            let ret = match f.success() {
                Some(e) => format!("returns `{}` at once", src(e.span)),
                None => "returns at once".to_string(),
            };
            let _ = writeln!(
                out,
                "  asynchronous: the guest library sends the call and {ret}; a driver error is \
                 reported by a later synchronous call."
            );
        }
    }
    for (res, amount) in f.consumes() {
        let _ = writeln!(
            out,
            "  consumes {} unit(s) of resource `{}` (charged to the guest by the scheduler).",
            src(amount.span),
            res.name
        );
    }
    state_calls(spec, &f.annots, "", &mut out);
    for c in f.contextual_args() {
        let _ = writeln!(
            out,
            "  adds the argument `{}: {}`, computed in the guest as `{}`.",
            c.name.name,
            c.ty,
            src(c.value.span)
        );
    }
    if let Some(r) = f.return_annots() {
        let mut parts = Vec::new();
        if r.has(Flag::Allocate) {
            parts.push(
                "a new handle: the worker adds the object to the guest's handle table and \
                 returns its id"
                    .to_string(),
            );
        }
        if r.has(Flag::ObjRecord) {
            parts.push("the object is recorded".to_string());
        }
        let _ = writeln!(out, "  return value: {}.", parts.join("; "));
    }
    let _ = writeln!(out, "  arguments:");
    let names: Vec<(String, Ty)> = f
        .params
        .iter()
        .map(|p| (p.name.name.clone(), p.ty.ty().clone()))
        .chain(
            f.contextual_args()
                .map(|c| (c.name.name.clone(), c.ty.ty().clone())),
        )
        .collect();
    for (name, ty) in names {
        let text = match f.argument(&name) {
            Some(b) => describe(spec, f, &name, &b.annots, &ty, false),
            None if is_user_data(f, &name) => {
                "user data of a callback: passed back to the guest untouched.".to_string()
            }
            None => by_value(spec, &ty),
        };
        let _ = writeln!(out, "    {name}: {text}");
    }
    Some(out)
}

/// The source text of `span` on one line (runs of whitespace, including
/// line breaks of multi-line expressions, become one space).
fn snippet(spec: &Spec, span: Span) -> String {
    spec.source[span.start..span.end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_user_data(f: &Function, name: &str) -> bool {
    f.annots.iter().any(|a| match &a.kind {
        FnAnnotKind::Argument(b) => b
            .annots
            .callback()
            .flatten()
            .is_some_and(|u| u.name == name),
        _ => false,
    })
}

fn state_calls(spec: &Spec, annots: &[FnAnnot], indent: &str, out: &mut String) {
    let src = |s: Span| snippet(spec, s);
    for a in annots {
        match &a.kind {
            FnAnnotKind::RuntimeCall(e) => {
                if let ExprKind::Call { func, .. } = &e.kind {
                    let doc = runtime_fn(&func.name).map_or("", |r| r.doc);
                    let _ = writeln!(
                        out,
                        "  {indent}state tracking in the guest: `{}` ({doc}).",
                        src(e.span)
                    );
                }
            }
            FnAnnotKind::If {
                cond,
                then,
                otherwise,
            } => {
                let _ = writeln!(out, "  {indent}if `{}`:", src(cond.span));
                state_calls(spec, then, &format!("{indent}  "), out);
                if !otherwise.is_empty() {
                    let _ = writeln!(out, "  {indent}otherwise:");
                    state_calls(spec, otherwise, &format!("{indent}  "), out);
                }
            }
            _ => {}
        }
    }
}

fn by_value(spec: &Spec, ty: &Ty) -> String {
    if let Some(h) = ty.handle() {
        format!(
            "handle `{h}`: the guest's id is translated by the worker into its real object \
             ({}).",
            invalid_handle(spec, h)
        )
    } else {
        format!("passed by value (`{ty}`).")
    }
}

/// What happens when a guest passes a bad id of handle type `h`.
fn invalid_handle(spec: &Spec, h: &str) -> String {
    let decl = spec.handles().find(|d| d.name.name == h);
    match decl.and_then(|d| d.invalid.as_ref()) {
        Some(e) => format!(
            "an unknown, freed or foreign id fails the call with `{}`",
            snippet(spec, e.span)
        ),
        None => "an unknown id fails the call".to_string(),
    }
}

/// The later synchronous function that collects buffers of `tracker`.
fn completer<'a>(spec: &'a Spec, tracker: &str) -> Option<&'a Function> {
    fn uses(e: &Expr, tracker: &str) -> bool {
        matches!(&e.kind, ExprKind::Call { func, args } if func.name == "get_bufs"
            && matches!(args.first(), Some(Expr { kind: ExprKind::Name { name, .. }, .. }) if name.name == tracker))
    }
    spec.functions
        .iter()
        .find(|f| f.contextual_args().any(|c| uses(&c.value, tracker)))
}

fn registration<'a>(annots: &'a [FnAnnot], arg: &str) -> Option<&'a [Expr]> {
    annots.iter().find_map(|a| match &a.kind {
        FnAnnotKind::RuntimeCall(Expr {
            kind: ExprKind::Call { func, args },
            ..
        }) if func.name == "register_buf"
            && matches!(args.get(2), Some(Expr { kind: ExprKind::Name { name, .. }, .. }) if name.name == arg) =>
        {
            Some(args.as_slice())
        }
        FnAnnotKind::If {
            then, otherwise, ..
        } => registration(then, arg).or_else(|| registration(otherwise, arg)),
        _ => None,
    })
}

/// Describes an annotation block for a value of type `ty`. `branch`: the
/// block is an `if` branch, which may give only part of the description
/// (its size, if any, comes from the enclosing block).
fn describe(spec: &Spec, f: &Function, name: &str, a: &Annots, ty: &Ty, branch: bool) -> String {
    let src = |s: Span| snippet(spec, s);
    let ty = a.type_cast().map_or(ty.clone(), |t| t.ty().clone());
    let mut parts: Vec<String> = Vec::new();
    if let Some(t) = a.type_cast() {
        let mut s = format!("treated as `{t}`");
        if let Some(h) = ty.handle() {
            write!(s, ": a handle `{h}` translated by the worker").ok();
        } else if let Some(h) = ty.pointee().and_then(Ty::handle) {
            write!(
                s,
                ": its contents are `{h}` handles, translated between the worker's objects and the guest's ids"
            )
            .ok();
        }
        parts.push(s);
    }
    if let Some(u) = a.callback() {
        let mut s = "function pointer: the worker calls it back in the guest".to_string();
        if let Some(u) = u {
            write!(s, ", passing `{}` back untouched", u.name).ok();
        }
        if a.has(Flag::Nullable) {
            s.push_str("; may be NULL (no callback)");
        }
        return s + ".";
    }
    if a.has(Flag::MustBeNull) {
        return "must be NULL; any other value makes the guest library fail the call with an \
                'unsupported' error."
            .into();
    }
    if a.has(Flag::Opaque) {
        return "pointer value passed through untouched; never dereferenced.".into();
    }
    let Some(pointee) = ty.pointee() else {
        let mut s = if branch && a.type_cast().is_some() {
            format!("{}.", parts.join("; "))
        } else {
            by_value(spec, &ty)
        };
        if let Some(v) = a.value() {
            write!(
                s,
                " The worker passes `{}` to the driver instead of the guest's value.",
                src(v.span)
            )
            .ok();
        }
        if a.has(Flag::Retain) {
            s.push_str(" The call adds one reference to the object.");
        }
        if a.has(Flag::Deallocate) {
            s.push_str(
                " The call drops one reference: when the last one goes, the object is destroyed \
                 and the worker removes it from the guest's handle table.",
            );
        }
        if a.has(Flag::Allocate) {
            s.push_str(" The call creates it: the worker adds it to the guest's handle table.");
        }
        for (c, t, o) in a.conditionals() {
            write!(
                s,
                " If `{}`: {}",
                src(c.span),
                describe(spec, f, name, t, &ty, true)
            )
            .ok();
            if !o.items.is_empty() {
                write!(s, " Otherwise: {}", describe(spec, f, name, o, &ty, true)).ok();
            }
        }
        return s;
    };
    if a.has(Flag::Nullable) {
        parts.push("may be NULL (then NULL is passed on)".into());
    }
    let size = if a.has(Flag::String) {
        "a NUL-terminated string".to_string()
    } else if a.has(Flag::ZeroTerminated) && a.has(Flag::KeyValue) {
        format!("a list of (key, value) pairs of `{pointee}` ended by a zero key")
    } else if a.has(Flag::ZeroTerminated) {
        format!("a list of `{pointee}` ended by a zero element")
    } else if let Some(b) = a.buffer() {
        if pointee.is_void() {
            format!("`{}` bytes", src(b.span))
        } else {
            format!("`{}` element(s) of `{pointee}`", src(b.span))
        }
    } else if a.conditionals().next().is_some() || branch {
        // The size is given inside the `if` branches, or outside this one.
        String::new()
    } else {
        format!("one `{pointee}`")
    };
    if a.has(Flag::NoCopy) {
        parts.push("not copied to the worker".into());
        if !size.is_empty() {
            parts.push(format!("the worker allocates {size}"));
        }
    } else {
        let size = if size.is_empty() && a.direction().is_some() {
            "the data".to_string()
        } else {
            size
        };
        match a.direction() {
            Some(Direction::In) => parts.push(format!(
                "{size}, copied from the guest to the worker before the call"
            )),
            Some(Direction::Out)
                if f.mode() == CallMode::Async
                    && a.element().is_some_and(|e| e.has(Flag::Allocate)) =>
            {
                parts.push(format!(
                    "{size}, written by the guest library at once (the call is async)"
                ))
            }
            Some(Direction::Out) => parts.push(format!(
                "{size}, allocated by the worker and copied back to the guest after the call"
            )),
            Some(Direction::InOut) => parts.push(format!(
                "{size}, copied to the worker before the call and back after it"
            )),
            None if size.is_empty() => {}
            None => parts.push(size),
        }
    }
    match a.lifetime() {
        Lifetime::Call => {}
        Lifetime::Static => parts
            .push("kept by the worker for the life of the guest process (lifetime_static)".into()),
        Lifetime::Manual => {
            let mut s = "kept after the call (lifetime_manual)".to_string();
            if let Some(args) = registration(&f.annots, name) {
                let tracker = src(args[0].span);
                let key = src(args[1].span);
                match completer(spec, &tracker) {
                    Some(c) => write!(
                        s,
                        "; filled when a later `{}` on the same `{key}` completes (it collects the buffers registered in `{tracker}`)",
                        c.name.name
                    )
                    .ok(),
                    None => write!(s, "; registered in `{tracker}` under `{key}`").ok(),
                };
            }
            parts.push(s);
        }
    }
    if a.has(Flag::Deallocate) {
        parts.push("released by the worker afterwards (deallocate)".into());
    }
    if a.has(Flag::ErrorCode) {
        parts.push(
            "receives the error code when the call fails outside the driver (invalid handle, \
             unsupported call, transport failure), if not NULL"
                .into(),
        );
    }
    if a.has(Flag::MaybeHandle) {
        parts.push(
            "if its bytes are exactly one pointer-sized value that is a live handle id of this \
             guest, the worker passes the host object instead"
                .into(),
        );
    }
    if let Some(e) = a.element() {
        parts.push(format!(
            "for each element (the builtin `index` is its position): {}",
            describe_element(spec, f, name, e, pointee)
        ));
    }
    for (c, t, o) in a.conditionals() {
        let mut s = format!(
            "if `{}`: {}",
            src(c.span),
            describe_branch(spec, f, name, t, &ty)
        );
        if !o.items.is_empty() {
            write!(s, "; otherwise: {}", describe_branch(spec, f, name, o, &ty)).ok();
        }
        parts.push(s);
    }
    let mut s = parts.join("; ");
    s.push('.');
    s
}

fn describe_branch(spec: &Spec, f: &Function, name: &str, a: &Annots, ty: &Ty) -> String {
    let d = describe(spec, f, name, a, ty, true);
    d.trim_end_matches('.').to_string()
}

fn describe_element(spec: &Spec, f: &Function, name: &str, a: &Annots, ty: &Ty) -> String {
    let mut parts = Vec::new();
    if ty.handle().is_some() && a.conditionals().next().is_none() {
        let mut s = String::new();
        if a.has(Flag::Allocate) && f.mode() == CallMode::Async {
            s.push_str(
                "a new handle: the guest library chooses its id and writes it at once, and the \
                 worker binds that id to the object the call creates",
            );
        } else if a.has(Flag::Allocate) {
            s.push_str("a new handle, added to the guest's handle table, its id written back");
        } else if a.has(Flag::Deallocate) {
            s.push_str("a handle destroyed by the call");
        } else {
            s.push_str("a handle translated by the worker");
        }
        if a.has(Flag::ObjRecord) {
            s.push_str(" (object recorded)");
        }
        parts.push(s);
        return parts.join("; ");
    }
    let d = describe(spec, f, name, a, ty, false);
    d.trim_end_matches('.').to_string()
}
