//! The worker side: a function table loaded from the host library at run
//! time, and a dispatcher that validates and decodes each command,
//! translates handles, calls the real function and encodes the reply.

use std::fmt::Write;

use crate::ast::{Annots, ArgAnnotKind, ExprKind, Flag, FnAnnotKind, NameRef};
use crate::types::Ty;
use crate::{Expr, Spec};

use super::model::{Arg, Buffer, Content, Count, FnPlan, Model};
use super::rust::{self, Names, cond, elem_size, expr, to_usize};
use super::{CodegenError, Options};

/// Largest deferred buffer a guest may ask the worker to keep.
const MAX_DEFERRED: &str = "(1usize << 30)";

struct WorkerNames<'a> {
    plan: &'a FnPlan<'a>,
    /// The module of the hand-written worker functions (`metadata`).
    guards: &'a str,
}

impl WorkerNames<'_> {
    fn arg(&self, name: &str) -> Option<(usize, &Arg<'_>)> {
        let i = self
            .plan
            .f
            .params
            .iter()
            .position(|p| p.name.name == name)?;
        Some((i, &self.plan.args[i]))
    }
}

impl Names for WorkerNames<'_> {
    fn value(&self, r: &NameRef, name: &str) -> String {
        match r {
            NameRef::Param(i) => match &self.plan.args[*i] {
                Arg::Scalar { .. } => format!("({name} as i128)"),
                Arg::Handle { .. } => format!("({name}_id as i128)"),
                Arg::Opaque => format!("({name}_raw as i128)"),
                _ => "0i128".into(),
            },
            _ => "0i128".into(),
        }
    }
    fn is_null(&self, name: &str) -> String {
        match self.arg(name) {
            Some((_, Arg::Buffer(b))) => match (&b.content, b.dir) {
                (Content::Blobs { .. }, _) => format!("{name}_list.is_none()"),
                (_, crate::Direction::In) => format!("{name}_in.is_none()"),
                _ => format!("{name}_out.is_null()"),
            },
            Some((_, Arg::Opaque)) => format!("({name}_raw == 0)"),
            Some((_, Arg::MustBeNull)) => "true".into(),
            Some((_, Arg::Callback { .. })) => format!("({name}_raw == 0)"),
            _ => "false".into(),
        }
    }
    fn index(&self, name: &str, idx: &str) -> String {
        match self.arg(name) {
            Some((_, Arg::Buffer(b))) if b.dir != crate::Direction::Out => format!(
                "{name}_in.as_ref().map_or(0i128, |__b| __b.int({}, {}, {}))",
                to_usize(idx),
                elem_size(&b.pointee),
                rust::signed(&b.pointee)
            ),
            _ => "0i128".into(),
        }
    }
    fn call(&self, _func: &str, _args: &[String], _raw: &[&Expr]) -> String {
        "0i128".into()
    }
    /// The worker knows an object's metadata from the host library:
    /// `guards::metadata(api, object, field, index) -> i128` (the object
    /// translated; 0 when unknown).
    fn metadata(&self, object: &str, field: &str, index: Option<String>) -> String {
        let i = index.map_or("0usize".to_string(), |i| to_usize(&i));
        format!(
            "({}::metadata(api, {object} as usize as u64, {field:?}, {i}))",
            self.guards
        )
    }
}

/// Whether an expression depends on guest-side state (runtime calls), so
/// the worker cannot check it. Metadata the worker finds itself.
fn guest_only(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Call { .. } => true,
        ExprKind::Unary(_, a) => guest_only(a),
        ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) => guest_only(a) || guest_only(b),
        ExprKind::Conditional(a, b, c) => guest_only(a) || guest_only(b) || guest_only(c),
        _ => false,
    }
}

fn fn_type(f: &crate::Function) -> String {
    let params: Vec<String> = f.params.iter().map(|p| rust::ty(p.ty.ty())).collect();
    format!(
        "unsafe extern \"C\" fn({}){}",
        params.join(", "),
        rust::ret(f.ret.ty())
    )
}

/// The error value of handle type `handle` (an invalid handle of it).
pub(crate) fn invalid_value(spec: &Spec, handle: &str, opts: &Options) -> String {
    spec.handles()
        .find(|h| h.name.name == handle)
        .and_then(|h| h.invalid_value())
        .map_or(opts.transport_error.to_string(), |v| v.to_string())
}

/// The values of `handle`'s type that pass as themselves, as a `match`
/// pattern of `u64`s (NULL is translated as itself anyway).
pub(crate) fn pass_pattern(spec: &Spec, handle: &str) -> Option<String> {
    let vals: Vec<String> = spec
        .handles()
        .find(|h| h.name.name == handle)?
        .pass_values()
        .into_iter()
        .filter(|&v| v != 0)
        .map(|v| format!("{}u64", v as u64))
        .collect();
    (!vals.is_empty()).then(|| vals.join(" | "))
}

/// The API's function table: `Api`, one optional function pointer per
/// function of the specification, resolved from a library at run time.
pub(crate) fn table(model: &Model) -> String {
    let mut o = String::new();
    o.push_str("/// The host library's functions, resolved at run time (`None`: missing).\n#[allow(non_snake_case)]\n#[derive(Default)]\npub struct Api {\n");
    for p in &model.fns {
        let _ = writeln!(o, "    pub {}: Option<{}>,", p.f.name.name, fn_type(p.f));
    }
    o.push_str("}\n\nimpl Api {\n    /// Resolves every function of the specification in `lib`.\n    pub fn load(lib: &::libloading::Library) -> Api {\n        Api {\n");
    for p in &model.fns {
        let _ = writeln!(
            o,
            "            {0}: unsafe {{ lib.get::<{1}>(b\"{0}\\0\") }}.ok().map(|s| *s),",
            p.f.name.name,
            fn_type(p.f)
        );
    }
    o.push_str("        }\n    }\n\n    /// How many functions the host library provides.\n    pub fn available(&self) -> usize {\n        [");
    let avail: Vec<String> = model
        .fns
        .iter()
        .map(|p| format!("self.{}.is_some()", p.f.name.name))
        .collect();
    o.push_str(&avail.join(", "));
    o.push_str("].iter().filter(|x| **x).count()\n    }\n}\n\n");
    o
}

pub(crate) fn generate(spec: &Spec, model: &Model, opts: &Options) -> Result<String, CodegenError> {
    let mut o = String::new();
    o.push_str(
        "use ::remoting::wire::Decoder;\nuse ::remoting::worker::{CallCtx, DispatchError};\n\n",
    );
    let _ = writeln!(
        o,
        "/// The API's error value for a call that the admission policy refuses.\npub const REFUSED_ERROR: i64 = {};\n",
        spec.error_value("refused")
            .map_or(opts.transport_error, |v| v as i64)
    );
    o.push_str(&table(model));
    o.push_str("/// Executes commands of this API against an [`Api`] table.\npub struct Dispatch {\n    /// The host functions.\n    pub api: Api,\n}\n\n");
    o.push_str("impl ::remoting::worker::Dispatcher for Dispatch {\n    fn dispatch(&self, func: u32, d: &mut Decoder<'_>, cx: &mut CallCtx<'_>) -> Result<(), DispatchError> {\n        match func {\n");
    for p in &model.fns {
        if p.f.unsupported().is_some() {
            continue;
        }
        let _ = writeln!(
            o,
            "            func::{0} => call_{0}(&self.api, d, cx),",
            p.f.name.name
        );
    }
    o.push_str("            _ => Err(DispatchError::UnknownFunction(func)),\n        }\n    }\n\n    fn name(&self, func: u32) -> Option<&'static str> {\n        FUNCTION_NAMES.get(func as usize).copied()\n    }\n\n    #[allow(unused_variables)]\n    fn destroy(&self, kind: u16, host: u64) {\n        match kind {\n");
    // A destructor per handle kind: a function whose only argument is a
    // handle of that kind marked `deallocate`.
    for h in &model.handles {
        if let Some(p) = model.fns.iter().find(|p| {
            p.args.len() == 1
                && matches!(&p.args[0], Arg::Handle { handle, release: true, .. } if handle == h)
                && p.f.unsupported().is_none()
        }) {
            let _ = writeln!(
                o,
                "            kind::{h} => {{ if let Some(f) = self.api.{} {{ unsafe {{ f(host as usize as {h}) }}; }} }}",
                p.f.name.name
            );
        }
    }
    o.push_str("            _ => {}\n        }\n    }\n}\n\n");
    trampolines(spec, &mut o);
    for p in &model.fns {
        if p.f.unsupported().is_none() {
            function(spec, p, opts, &mut o)?;
        }
    }
    Ok(o)
}

struct CbNames;

impl Names for CbNames {
    fn value(&self, r: &NameRef, name: &str) -> String {
        match r {
            NameRef::Param(i) => format!("(__a{i} as i128)"),
            _ => {
                let _ = name;
                "0i128".into()
            }
        }
    }
    fn is_null(&self, _name: &str) -> String {
        "false".into()
    }
    fn index(&self, _name: &str, _idx: &str) -> String {
        "0i128".into()
    }
    fn call(&self, _func: &str, _args: &[String], _raw: &[&Expr]) -> String {
        "0i128".into()
    }
}

/// One `extern "C"` trampoline per callback type: the host library calls it
/// with the worker's [`CallbackTarget`](::remoting::worker::CallbackTarget)
/// as user data; it sends the arguments to the guest.
fn trampolines(spec: &Spec, o: &mut String) {
    for cb in super::model::callbacks(spec) {
        let sig = &cb.signature;
        let params: Vec<String> = sig
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| format!("__a{i}: {}", rust::ty(p.ty.ty())))
            .collect();
        let _ = writeln!(
            o,
            "#[allow(non_snake_case, unused_variables, unused_parens, clippy::all)]
unsafe extern \"C\" fn __tramp_{}({}){} {{",
            cb.name.name,
            params.join(", "),
            rust::ret(sig.ret.ty())
        );
        let args = super::model::callback_args(cb);
        let ud = args
            .iter()
            .position(|a| matches!(a, super::model::CbArg::UserData));
        let ret_default = if !rust::returns_value(sig.ret.ty()) {
            "return;".to_string()
        } else {
            "return unsafe { ::std::mem::zeroed() };".to_string()
        };
        match ud {
            Some(u) => {
                let _ = writeln!(
                    o,
                    "    if __a{u}.is_null() {{ {ret_default} }}\n    // SAFETY: the worker passed a leaked CallbackTarget as this user data.\n    let __t = unsafe {{ &*(__a{u} as *const ::remoting::worker::CallbackTarget) }};\n    let mut __e = __t.message();"
                );
            }
            None => {
                let _ = writeln!(o, "    {ret_default}");
                o.push_str("}\n\n");
                continue;
            }
        }
        for (i, a) in args.iter().enumerate() {
            let p = &sig.params[i];
            match a {
                super::model::CbArg::UserData => {}
                super::model::CbArg::Handle(h) => {
                    let _ = writeln!(
                        o,
                        "    __e.u64(__t.id_of(kind::{h}, __a{i} as usize as u64));"
                    );
                }
                super::model::CbArg::Scalar => {
                    let (enc, _) = rust::scalar_wire(p.ty.ty());
                    let _ = writeln!(o, "    __e.u64({});", enc.replace("{}", &format!("__a{i}")));
                }
                super::model::CbArg::String => {
                    let _ = writeln!(
                        o,
                        "    __e.blob(if __a{i}.is_null() {{ None }} else {{ Some(unsafe {{ ::std::ffi::CStr::from_ptr(__a{i} as *const ::std::ffi::c_char) }}.to_bytes_with_nul()) }});"
                    );
                }
                super::model::CbArg::Buffer(e, t) => {
                    let _ = writeln!(
                        o,
                        "    __e.blob(if __a{i}.is_null() {{ None }} else {{ Some(unsafe {{ ::std::slice::from_raw_parts(__a{i} as *const u8, {} * {}) }}) }});",
                        to_usize(&expr(e, &CbNames)),
                        elem_size(t)
                    );
                }
                super::model::CbArg::Null => {
                    let _ = writeln!(o, "    __e.blob(None);");
                }
            }
        }
        let _ = writeln!(o, "    __t.send(__e);");
        if rust::returns_value(sig.ret.ty()) {
            o.push_str("    unsafe { ::std::mem::zeroed() }\n");
        }
        o.push_str("}\n\n");
    }
}

fn element_check(a: &Annots, inner: &Ty, n: &dyn Names, fname: &str, pn: &str) -> String {
    for it in &a.items {
        match &it.kind {
            ArgAnnotKind::Flag(Flag::String) => {
                return format!(
                    "if !__e.is_c_string() {{ return Err(DispatchError::Protocol(format!(\"{fname}: element {{index}} of `{pn}` is not a NUL-terminated string\"))); }}"
                );
            }
            ArgAnnotKind::Buffer(e) if !guest_only(e) => {
                return format!(
                    "if __e.len() < {} * {} {{ return Err(DispatchError::Protocol(format!(\"{fname}: element {{index}} of `{pn}` is too short\"))); }}",
                    to_usize(&expr(e, n)),
                    elem_size(inner)
                );
            }
            ArgAnnotKind::If {
                cond: c,
                then,
                otherwise,
            } => {
                return format!(
                    "if {} {{ {} }} else {{ {} }}",
                    cond(c, n),
                    element_check(then, inner, n, fname, pn),
                    element_check(otherwise, inner, n, fname, pn)
                );
            }
            _ => {}
        }
    }
    String::new()
}

/// The bytes a buffer must have, as an `Option<usize>` expression (`None`:
/// the pointer must be NULL), or nothing when the worker cannot tell.
fn need(b: &Buffer, n: &dyn Names) -> Option<String> {
    fn render(c: &Count, es: &str, n: &dyn Names) -> Option<String> {
        match c {
            Count::Expr(e) if !guest_only(e) => {
                Some(format!("Some({} * {es})", to_usize(&expr(e, n))))
            }
            Count::One => Some(format!("Some({es})")),
            Count::MustBeNull => Some("None".into()),
            Count::Cond(c, a, b) => Some(format!(
                "(if {} {{ {} }} else {{ {} }})",
                cond(c, n),
                render(a, es, n)?,
                render(b, es, n)?
            )),
            _ => None,
        }
    }
    render(&b.count, &elem_size(&b.pointee), n)
}

fn function(
    spec: &Spec,
    plan: &FnPlan,
    opts: &Options,
    o: &mut String,
) -> Result<(), CodegenError> {
    let f = plan.f;
    let name = &f.name.name;
    let n = WorkerNames {
        plan,
        guards: &opts.guards,
    };
    let _ = writeln!(
        o,
        "fn call_{name}(api: &Api, d: &mut Decoder<'_>, cx: &mut CallCtx<'_>) -> Result<(), DispatchError> {{"
    );
    // 1. Decode, in argument order.
    for (i, a) in plan.args.iter().enumerate() {
        let p = &f.params[i];
        let pn = &p.name.name;
        let t = rust::ty(p.ty.ty());
        match a {
            Arg::Scalar { .. } => {
                let (_, dec) = rust::scalar_wire(p.ty.ty());
                let _ = writeln!(o, "    let {pn}: {t} = {};", dec.replace("{}", "d.u64()?"));
            }
            Arg::Handle { handle, .. } => {
                let passes = pass_pattern(spec, handle);
                let translate = format!(
                    "cx.handle({pn}_id, kind::{handle}, {})?",
                    invalid_value(spec, handle, opts)
                );
                let translate = match passes {
                    Some(pat) => {
                        format!("if matches!({pn}_id, {pat}) {{ {pn}_id }} else {{ {translate} }}")
                    }
                    None => translate,
                };
                let _ = writeln!(
                    o,
                    "    let {pn}_id = d.u64()?;\n    let {pn}: {t} = ({translate}) as usize as {t};"
                );
            }
            Arg::Callback { callback, .. } => {
                let _ = writeln!(
                    o,
                    "    let {pn}_raw = d.u64()?;\n    let {pn}: {t} = if {pn}_raw == 0 {{ None }} else {{ Some(__tramp_{callback}) }};"
                );
            }
            Arg::Opaque => {
                let _ = writeln!(o, "    let {pn}_raw = d.u64()?;");
            }
            Arg::MustBeNull => {
                let _ = writeln!(
                    o,
                    "    let {pn}: {t} = ::std::ptr::null_mut::<u8>() as {t};"
                );
            }
            Arg::Deferred { .. } => {
                let _ = writeln!(
                    o,
                    "    let {pn}_key = d.u64()?;\n    let {pn}_size = d.u64()? as usize;\n    if {pn}_size > {MAX_DEFERRED} {{ return Err(DispatchError::Protocol(format!(\"{name}: deferred buffer of {{}} bytes is too large\", {pn}_size))); }}"
                );
            }
            Arg::Buffer(b) => match (&b.content, b.dir) {
                (Content::Blobs { .. }, _) => {
                    let _ = writeln!(o, "    let {pn}_list = cx.in_list(d)?;");
                }
                (Content::Handles { allocate: true, .. }, _)
                    if f.mode() == crate::CallMode::Async =>
                {
                    let _ = writeln!(
                        o,
                        "    let {pn}_id = d.u64()?;\n    let mut {pn}_host: usize = 0;"
                    );
                }
                (Content::Plain { .. }, crate::Direction::In)
                    if !b.maybe_handle
                        && matches!(b.count, Count::Expr(_) | Count::One)
                        && struct_handle_fields(spec, &b.pointee).is_empty() =>
                {
                    // Data the worker only passes on: used in place.
                    let _ = writeln!(o, "    let mut {pn}_in = cx.in_data(d.blob()?)?;");
                }
                (_, crate::Direction::In) => {
                    let _ = writeln!(o, "    let mut {pn}_in = cx.in_bytes(d.blob()?)?;");
                }
                (_, crate::Direction::Out) => {
                    let _ = writeln!(o, "    let mut {pn}_out = cx.out_space(d)?;");
                }
                (_, crate::Direction::InOut) => {
                    let _ = writeln!(
                        o,
                        "    let mut {pn}_in = cx.in_bytes(d.blob()?)?;\n    let mut {pn}_out = cx.out_space(d)?;"
                    );
                }
            },
        }
    }
    for c in &plan.collects {
        let _ = writeln!(
            o,
            "    let __n_{0} = d.u64()?;\n    if __n_{0} > d.remaining() as u64 {{ return Err(DispatchError::Protocol(\"{name}: truncated buffer list\".into())); }}\n    let mut __c_{0} = Vec::new();\n    for _ in 0..__n_{0} {{ let __k = d.u64()?; let __s = d.u64()?; __c_{0}.push((__k, __s)); }}",
            c.name
        );
    }
    // The whole command is decoded: bytes left over make it malformed, and
    // it is refused before anything runs.
    o.push_str("    d.finish()?;\n");
    // `require(cond, error)`: checked again here, for a guest that skipped
    // the check; nothing has run yet.
    for a in &f.annots {
        if let FnAnnotKind::Require { cond: c, error } = &a.kind {
            let _ = writeln!(
                o,
                "    if !({}) {{ return Err(DispatchError::Api(({}) as i64)); }}",
                rust::cond(c, &n),
                expr(error, &n)
            );
        }
    }
    if f.implement().is_none() {
        let _ = writeln!(
            o,
            "    let __f = api.{name}.ok_or(DispatchError::Unavailable({name:?}))?;"
        );
    }
    // 2. Overrides, validation, translation.
    for (i, a) in plan.args.iter().enumerate() {
        let p = &f.params[i];
        let pn = &p.name.name;
        let t = rust::ty(p.ty.ty());
        match a {
            Arg::Deferred { .. } => {
                let _ = writeln!(
                    o,
                    "    let {pn}: {t} = cx.session.manual.entry({pn}_key).or_insert_with(|| vec![0u8; {pn}_size]).as_mut_ptr() as {t};"
                );
            }
            Arg::Scalar { value: Some(v) } => {
                let _ = writeln!(o, "    let {pn}: {t} = ({}) as {t};", expr(v, &n));
            }
            Arg::Buffer(b) => buffer_prepare(spec, opts, b, pn, &t, name, &n, o),
            Arg::Opaque => {
                // User data of a callback becomes the worker's callback target;
                // any other opaque pointer reaches the driver as the guest's
                // value, untranslated (an address the driver follows needs a
                // guard that checks it).
                let cb = plan.args.iter().enumerate().find_map(|(j, x)| match x {
                    Arg::Callback {
                        callback,
                        user_data: Some(u),
                    } if *u == i => Some((j, callback)),
                    _ => None,
                });
                match cb {
                    Some((j, callback)) => {
                        let kind = super::model::callbacks(spec)
                            .iter()
                            .position(|c| &c.name.name == callback)
                            .unwrap_or(0);
                        // Without a callback the driver never uses the
                        // user data, but it may check it (OpenCL: user data
                        // without a callback is CL_INVALID_VALUE): it gets
                        // the guest's value as it is.
                        let _ = writeln!(
                            o,
                            "    let {pn}: {t} = if {cb}_raw == 0 {{ {pn}_raw as usize as {t} }} else {{ cx.callback_target({cb}_raw, {kind}) as {t} }};",
                            cb = f.params[j].name.name
                        );
                    }
                    None => {
                        let _ = writeln!(o, "    let {pn}: {t} = {pn}_raw as usize as {t};");
                    }
                }
            }
            _ => {}
        }
    }
    // 3. Resources.
    for a in &f.annots {
        if let FnAnnotKind::ConsumesRc { resource, amount } = &a.kind
            && !guest_only(amount)
        {
            let _ = writeln!(
                o,
                "    cx.consume({:?}, {} as u64, REFUSED_ERROR)?;",
                resource.name,
                to_usize(&expr(amount, &n))
            );
        }
    }
    // 4. Hand-written checks, then the call.
    let args: Vec<String> = f.params.iter().map(|p| p.name.name.clone()).collect();
    for g in f.guards() {
        let _ = writeln!(
            o,
            "    // SAFETY: the guard gets the arguments the real function would.\n    unsafe {{ {}::{}(api, cx, {}) }}?;",
            opts.guards,
            g.name,
            args.join(", ")
        );
    }
    match f.implement() {
        Some(imp) => {
            let _ = writeln!(
                o,
                "    // SAFETY: the worker-side implementation gets the arguments the real\n    // function would: each pointer points to worker memory of the size the\n    // specification requires (checked above), or is NULL.\n    let __ret = unsafe {{ {}::{}(api, cx, {}) }}?;",
                opts.guards,
                imp.name,
                args.join(", ")
            );
        }
        None => {
            let _ = writeln!(
                o,
                "    // SAFETY: every pointer argument points to worker memory of the size the\n    // specification requires (checked above), or is NULL.\n    let __ret = unsafe {{ __f({}) }};",
                args.join(", ")
            );
        }
    }
    let rt = f.ret.ty();
    let ok = if rt.strip_alias().handle().is_some() || rt.strip_alias().is_pointer() {
        // A driver that reports an error and still returns an object (which
        // the specification of such APIs says is NULL) may have returned a
        // freed one: it is neither kept nor handed to the guest.
        match f.error_code() {
            Some(e) => format!(
                "!__ret.is_null() && ({0}.is_null() || {{ // SAFETY: `{0}` points to the call's error code, in worker memory.\n (unsafe {{ {0}.read_unaligned() }}) == 0 }})",
                e.name.name
            ),
            None => "!__ret.is_null()".to_string(),
        }
    } else if rt.is_integer() {
        let s = f.success().map_or("0i128".to_string(), |e| expr(e, &n));
        format!("(__ret as i128) == {s}")
    } else {
        "true".into()
    };
    let _ = writeln!(o, "    let __ok: bool = {ok};");
    if let Some(after) = f.after() {
        let _ = writeln!(
            o,
            "    // SAFETY: the hook gets the result of a call that succeeded.\n    let __ret = if __ok {{ unsafe {{ {}::{}(api, cx, __ret) }}? }} else {{ __ret }};\n    let __ok: bool = {ok};",
            opts.guards, after.name,
        );
    }
    // 5. After the call: handle bookkeeping and translation.
    for (i, a) in plan.args.iter().enumerate() {
        let pn = &f.params[i].name.name;
        match a {
            Arg::Handle {
                retain, release, ..
            } => {
                if *retain {
                    let _ = writeln!(o, "    if __ok {{ cx.retain({pn}_id); }}");
                }
                if *release {
                    let _ = writeln!(o, "    if __ok {{ cx.release({pn}_id); }}");
                }
            }
            Arg::Buffer(b) => match (&b.content, b.dir) {
                (
                    Content::Handles {
                        handle,
                        allocate: true,
                    },
                    _,
                ) if f.mode() == crate::CallMode::Async => {
                    let _ = writeln!(
                        o,
                        "    if __ok && {pn}_id != 0 {{ cx.bind({pn}_id, kind::{handle}, {pn}_host as u64)?; }}"
                    );
                }
                (
                    Content::Handles { handle, .. },
                    crate::Direction::Out | crate::Direction::InOut,
                ) => {
                    let _ = writeln!(
                        o,
                        "    if __ok {{ for __i in 0..{pn}_out.len() / 8 {{ if let Some(__h) = {pn}_out.word(__i) {{ {pn}_out.set_word(__i, cx.register(kind::{handle}, __h)); }} }} }}"
                    );
                }
                (Content::Plain, crate::Direction::Out | crate::Direction::InOut) => {
                    for (path, handle) in &b.casts {
                        let c: Vec<String> = path
                            .iter()
                            .map(|(c, taken)| {
                                let c = cond(c, &n);
                                if *taken { c } else { format!("!{c}") }
                            })
                            .collect();
                        let _ = writeln!(
                            o,
                            "    if __ok && {} {{ for __i in 0..{pn}_out.len() / 8 {{ if let Some(__h) = {pn}_out.word(__i) {{ {pn}_out.set_word(__i, cx.register(kind::{handle}, __h)); }} }} }}",
                            c.join(" && ")
                        );
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    // 6. Outputs, in argument order, then the return value. A call that
    // returns a status leaves its outputs untouched when it fails, as the
    // driver does: their buffers go back empty (the guest writes nothing).
    let status = rt.is_integer() && plan.ret_handle.is_none();
    for (i, a) in plan.args.iter().enumerate() {
        let pn = &f.params[i].name.name;
        if let Arg::Buffer(b) = a
            && matches!(b.dir, crate::Direction::Out | crate::Direction::InOut)
            && !matches!(b.content, Content::Blobs { .. })
            && !(matches!(b.content, Content::Handles { allocate: true, .. })
                && f.mode() == crate::CallMode::Async)
        {
            if status {
                let _ = writeln!(
                    o,
                    "    if __ok {{ cx.put_out(&{pn}_out); }} else {{ cx.out.blob(None); }}"
                );
            } else {
                let _ = writeln!(o, "    cx.put_out(&{pn}_out);");
            }
        }
    }
    for c in &plan.collects {
        let get = if c.deallocate {
            "remove(&__k)"
        } else {
            "get(&__k).cloned()"
        };
        let _ = writeln!(
            o,
            "    for &(__k, __s) in &__c_{} {{\n        let __b = cx.session.manual.{get}.ok_or_else(|| DispatchError::Protocol(format!(\"{name}: no deferred buffer {{__k:#x}}\")))?;\n        let __len = (__s as usize).min(__b.len());\n        cx.out.blob(Some(&__b[..__len]));\n    }}",
            c.name
        );
    }
    if let Some(h) = &plan.ret_handle {
        let _ = writeln!(
            o,
            "    let __id = if __ok {{ cx.register(kind::{h}, __ret as usize as u64) }} else {{ 0 }};\n    cx.out.u64(__id);"
        );
    } else if rt.strip_alias().is_pointer() {
        let _ = writeln!(o, "    cx.out.u64(0);");
    } else if rust::returns_value(rt) {
        let (enc, _) = rust::scalar_wire(rt);
        let _ = writeln!(o, "    cx.out.u64({});", enc.replace("{}", "__ret"));
    }
    if f.mode() == crate::CallMode::Async && rt.is_integer() {
        // The guest returned success already: report the driver's error.
        let _ = writeln!(
            o,
            "    if !__ok {{ return Err(DispatchError::Failed(__ret as i64)); }}"
        );
    }
    o.push_str("    Ok(())\n}\n\n");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn buffer_prepare(
    spec: &Spec,
    opts: &Options,
    b: &Buffer,
    pn: &str,
    t: &str,
    fname: &str,
    n: &WorkerNames,
    o: &mut String,
) {
    let es = elem_size(&b.pointee);
    match (&b.content, b.dir) {
        (Content::Blobs { elem, inner }, _) => {
            if let Some(nd) = match b.count {
                Count::Expr(e) if !guest_only(e) => Some(to_usize(&expr(e, n))),
                _ => None,
            } {
                let _ = writeln!(
                    o,
                    "    if let Some(__l) = &{pn}_list && __l.len() < {nd} {{ return Err(DispatchError::Protocol(\"{fname}: `{pn}` has too few elements\".into())); }}"
                );
            }
            let check = element_check(elem, inner, n, fname, pn);
            if !check.is_empty() {
                let _ = writeln!(
                    o,
                    "    if let Some(__l) = &{pn}_list {{ for (index, __e) in __l.iter().enumerate() {{ if let Some(__e) = __e {{ {check} }} }} }}"
                );
            }
            let _ = writeln!(
                o,
                "    let {pn}_ptrs: Option<Vec<*const u8>> = {pn}_list.as_ref().map(|__l| __l.iter().map(|__e| __e.as_ref().map_or(::std::ptr::null(), |__b| __b.as_ptr())).collect());\n    let {pn}: {t} = {pn}_ptrs.as_ref().map_or(::std::ptr::null(), |__v| __v.as_ptr()) as {t};"
            );
        }
        (Content::Handles { allocate: true, .. }, _)
            if n.plan.f.mode() == crate::CallMode::Async =>
        {
            let _ = writeln!(
                o,
                "    let {pn}: {t} = if {pn}_id == 0 {{ ::std::ptr::null_mut::<u8>() as {t} }} else {{ (&mut {pn}_host as *mut usize) as {t} }};"
            );
        }
        (content, dir) => {
            let input = matches!(dir, crate::Direction::In | crate::Direction::InOut);
            let output = matches!(dir, crate::Direction::Out | crate::Direction::InOut);
            if input {
                match b.count {
                    Count::String => {
                        let _ = writeln!(
                            o,
                            "    if let Some(__b) = &{pn}_in && !__b.is_c_string() {{ return Err(DispatchError::Protocol(\"{fname}: `{pn}` is not a NUL-terminated string\".into())); }}"
                        );
                    }
                    Count::ZeroTerminated => {
                        // A (key, value) list ends with a zero key: an odd
                        // number of elements, or the driver, reading the
                        // key after the last value, would read past it.
                        let kv = n
                            .plan
                            .f
                            .argument(pn)
                            .is_some_and(|blk| blk.annots.has(Flag::KeyValue));
                        let odd = if kv {
                            format!(" || (__b.len() / {es}) % 2 == 0")
                        } else {
                            String::new()
                        };
                        let _ = writeln!(
                            o,
                            "    if let Some(__b) = &{pn}_in && (__b.len() % {es} != 0 || __b.len() < {es}{odd} || __b.int(__b.len() / {es} - 1, {es}, false) != 0) {{ return Err(DispatchError::Protocol(\"{fname}: `{pn}` is not zero-terminated\".into())); }}"
                        );
                    }
                    _ => {
                        if let Some(nd) = need(b, n) {
                            let _ = writeln!(
                                o,
                                "    match (&{pn}_in, {nd}) {{\n        (Some(_), None) => return Err(DispatchError::Protocol(\"{fname}: `{pn}` must be NULL here\".into())),\n        (Some(__b), Some(__n)) if __b.len() < __n => return Err(DispatchError::Protocol(format!(\"{fname}: `{pn}` has {{}} bytes, {{__n}} needed\", __b.len()))),\n        _ => {{}}\n    }}"
                            );
                        }
                    }
                }
                match content {
                    Content::Handles { handle, .. } => {
                        let _ = writeln!(
                            o,
                            "    if let Some(__b) = &mut {pn}_in {{ for __i in 0..__b.len() / 8 {{ let __h = cx.handle(__b.word(__i), kind::{handle}, {})?; __b.set_word(__i, __h); }} }}",
                            invalid_value(spec, handle, opts)
                        );
                    }
                    Content::ElementHandles { cond: c, handle } => {
                        let _ = writeln!(
                            o,
                            "    let __idx_{pn}: Vec<usize> = (0..{pn}_in.as_ref().map_or(0, |__b| __b.len() / {es})).filter(|&index| {}).collect();\n    if let Some(__b) = &mut {pn}_in {{ for index in __idx_{pn} {{ let __h = cx.handle(__b.word(index), kind::{handle}, {})?; __b.set_word(index, __h); }} }}",
                            cond(c, n),
                            invalid_value(spec, handle, opts)
                        );
                    }
                    _ => {}
                }
                if b.maybe_handle {
                    let _ = writeln!(
                        o,
                        "    if let Some(__b) = &mut {pn}_in {{ cx.maybe_handle(__b); }}"
                    );
                }
                let fields = struct_handle_fields(spec, &b.pointee);
                if !fields.is_empty() {
                    let st = rust::ty(&b.pointee);
                    let _ = writeln!(
                        o,
                        "    if let Some(__b) = &mut {pn}_in {{\n        let __es = ::std::mem::size_of::<{st}>();\n        for __i in 0..__b.len() / __es {{"
                    );
                    for (field, handle) in fields {
                        let _ = writeln!(
                            o,
                            "            let __o = __i * __es + ::std::mem::offset_of!({st}, {field});\n            let __h = cx.handle(__b.u64_at(__o), kind::{handle}, {})?;\n            __b.set_u64_at(__o, __h);",
                            invalid_value(spec, &handle, opts)
                        );
                    }
                    o.push_str("        }\n    }\n");
                }
            }
            if output {
                if let Some(nd) = need(b, n) {
                    let _ = writeln!(
                        o,
                        "    match ({pn}_out.is_null(), {nd}) {{\n        (false, None) => return Err(DispatchError::Protocol(\"{fname}: `{pn}` must be NULL here\".into())),\n        (false, Some(__n)) if {pn}_out.len() < __n => return Err(DispatchError::Protocol(format!(\"{fname}: room for `{pn}` is {{}} bytes, {{__n}} needed\", {pn}_out.len()))),\n        _ => {{}}\n    }}"
                    );
                }
                if input {
                    let _ = writeln!(
                        o,
                        "    if let (Some(__b), false) = (&{pn}_in, {pn}_out.is_null()) {{ let __n = __b.len().min({pn}_out.len()); unsafe {{ ::std::ptr::copy_nonoverlapping(__b.as_ptr(), {pn}_out.as_mut_ptr(), __n) }}; }}"
                    );
                }
                let _ = writeln!(o, "    let {pn}: {t} = {pn}_out.as_mut_ptr() as {t};");
            } else {
                let _ = writeln!(
                    o,
                    "    let {pn}: {t} = {pn}_in.as_ref().map_or(::std::ptr::null(), |__b| __b.as_ptr()) as {t};"
                );
            }
        }
    }
}

/// The handle-typed fields of a struct pointee: `(field, handle type)`.
pub(super) fn struct_handle_fields(spec: &Spec, t: &Ty) -> Vec<(String, String)> {
    let Ty::Struct(name) = t.strip_alias() else {
        return Vec::new();
    };
    let Some(crate::Decl::Struct(s)) = spec.decl(name) else {
        return Vec::new();
    };
    s.fields
        .iter()
        .filter(|f| f.array.is_none())
        .filter_map(|f| {
            Some((
                f.name.name.clone(),
                f.ty.ty().strip_alias().handle()?.to_string(),
            ))
        })
        .collect()
}
