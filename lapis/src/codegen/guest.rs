//! The guest side: one exported `extern "C"` function per API function,
//! with the API's exact signature, that marshals the call into a command,
//! sends it, and (for a synchronous call) waits and unmarshals the outputs.

use std::fmt::Write;

use crate::ast::{Annots, ArgAnnotKind, CallMode, ExprKind, Flag, FnAnnotKind, NameRef};
use crate::types::Ty;
use crate::{Expr, Spec};

use super::model::{self, Arg, Content, Count, FnPlan, Model};
use super::rust::{self, Names, cond, elem_size, expr, to_usize};
use super::{CodegenError, Options, unsupported};

struct GuestNames<'a> {
    plan: &'a FnPlan<'a>,
}

impl Names for GuestNames<'_> {
    fn value(&self, r: &NameRef, name: &str) -> String {
        match r {
            NameRef::Param(i) => {
                let t = self.plan.f.params[*i].ty.ty().strip_alias();
                if t.is_pointer() || t.handle().is_some() {
                    format!("({name} as usize as i128)")
                } else if t.callback().is_some() {
                    format!("({name}.is_some() as i128)")
                } else {
                    format!("({name} as i128)")
                }
            }
            _ => "0i128".into(),
        }
    }
    fn is_null(&self, name: &str) -> String {
        format!("{name}.is_null()")
    }
    fn index(&self, name: &str, idx: &str) -> String {
        format!(
            "(if {name}.is_null() {{ 0i128 }} else {{ (unsafe {{ *{name}.add({}) }}) as i128 }})",
            to_usize(idx)
        )
    }
    fn call(&self, func: &str, args: &[String], _raw: &[&Expr]) -> String {
        match (func, args) {
            ("get_n_bufs", [t, k]) => format!("(__conn.get_n_bufs({t}, ({k}) as u64) as i128)"),
            ("get_buf_size", [t, k, i]) => {
                format!("(__conn.get_buf_size({t}, ({k}) as u64, ({i}) as u64) as i128)")
            }
            _ => "0i128".into(),
        }
    }
    fn metadata(&self, object: &str, field: &str, index: Option<String>) -> String {
        let i = index.map_or("0usize".to_string(), |i| to_usize(&i));
        format!("(__conn.metadata({object} as usize as u64, {field:?}, {i}) as i128)")
    }
}

/// The statements that make the function fail with error value `v` (an
/// `i64` expression): write it to the `error_code` argument, if any, and
/// return it (or NULL, or nothing).
fn fail(plan: &FnPlan, v: &str) -> String {
    let mut s = String::new();
    if let Some(i) = plan.error_code {
        let n = &plan.f.params[i].name.name;
        let _ = write!(
            s,
            "if !{n}.is_null() {{ unsafe {{ *{n} = ({v}) as _ }}; }} "
        );
    }
    let rt = plan.f.ret.ty();
    if !rust::returns_value(rt) {
        s.push_str("return;");
    } else if rt.strip_alias().is_pointer() || rt.strip_alias().handle().is_some() {
        s.push_str("return ::std::ptr::null_mut();");
    } else if rt.strip_alias().callback().is_some() {
        s.push_str("return None;");
    } else {
        let _ = write!(s, "return ({v}) as {};", rust::ty(rt));
    }
    s
}

/// The element count of a buffer, as a `usize` expression. A
/// `must_be_null` branch makes the function fail (with `fail`) when the
/// application passed a pointer there.
fn count(c: &Count, name: &str, n: &dyn Names, key_value: bool, fail: &str) -> String {
    match c {
        Count::Expr(e) => to_usize(&expr(e, n)),
        Count::One => "1usize".into(),
        Count::String => format!(
            "(if {name}.is_null() {{ 0 }} else {{ unsafe {{ ::std::ffi::CStr::from_ptr({name} as *const ::std::ffi::c_char) }}.to_bytes().len() + 1 }})"
        ),
        Count::ZeroTerminated => {
            format!("unsafe {{ ::remoting::guest::zero_terminated_len({name}, {key_value}) }}")
        }
        Count::MustBeNull => format!("{{ if !{name}.is_null() {{ {fail} }} 0usize }}"),
        Count::Cond(c, a, b) => format!(
            "(if {} {{ {} }} else {{ {} }})",
            cond(c, n),
            count(a, name, n, key_value, fail),
            count(b, name, n, key_value, fail)
        ),
    }
}

/// The byte size of one element of a pointer array (`const char**`), from
/// its `element { ... }` annotations, for element pointer `__e`.
fn element_size(a: &Annots, inner: &Ty, n: &dyn Names) -> String {
    for it in &a.items {
        match &it.kind {
            ArgAnnotKind::Flag(Flag::String) => {
                return "unsafe { ::std::ffi::CStr::from_ptr(__e as *const ::std::ffi::c_char) }.to_bytes().len() + 1".into();
            }
            ArgAnnotKind::Buffer(e) => {
                return format!("{} * {}", to_usize(&expr(e, n)), elem_size(inner));
            }
            ArgAnnotKind::If {
                cond: c,
                then,
                otherwise,
            } => {
                return format!(
                    "if {} {{ {} }} else {{ {} }}",
                    cond(c, n),
                    element_size(then, inner, n),
                    element_size(otherwise, inner, n)
                );
            }
            _ => {}
        }
    }
    elem_size(inner)
}

fn runtime_statements(annots: &[crate::ast::FnAnnot], n: &dyn Names, o: &mut String) {
    for a in annots {
        match &a.kind {
            FnAnnotKind::RuntimeCall(e) => {
                if let ExprKind::Call { func, args } = &e.kind {
                    let r: Vec<String> = args.iter().map(|x| expr(x, n)).collect();
                    match func.name.as_str() {
                        "register_buf" if r.len() == 4 => {
                            let _ = writeln!(
                                o,
                                "    __conn.register_buf({}, ({}) as u64, ({}) as u64, ({}) as u64);",
                                r[0], r[1], r[2], r[3]
                            );
                        }
                        "unregister_buf" if r.len() == 3 => {
                            let _ = writeln!(
                                o,
                                "    __conn.unregister_buf({}, ({}) as u64, ({}) as u64);",
                                r[0], r[1], r[2]
                            );
                        }
                        _ => {}
                    }
                }
            }
            FnAnnotKind::If {
                cond: c,
                then,
                otherwise,
            } => {
                let mut t = String::new();
                let mut e = String::new();
                runtime_statements(then, n, &mut t);
                runtime_statements(otherwise, n, &mut e);
                if !t.is_empty() || !e.is_empty() {
                    let _ = writeln!(o, "    if {} {{\n{t}    }} else {{\n{e}    }}", cond(c, n));
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn generate(spec: &Spec, model: &Model, opts: &Options) -> Result<String, CodegenError> {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "/// Value returned by integer-returning functions that cannot be remoted.\npub const UNSUPPORTED_ERROR: i64 = {};\n/// Value returned when the worker cannot be reached.\npub const TRANSPORT_ERROR: i64 = {};\n",
        opts.unsupported_error, opts.transport_error
    );
    callbacks(spec, &mut o);
    for plan in &model.fns {
        function(spec, plan, opts, &mut o)?;
    }
    Ok(o)
}

/// The guest's handler of callback messages: decodes the arguments the
/// worker's trampoline sent and calls the application's function.
fn callbacks(spec: &Spec, o: &mut String) {
    o.push_str("/// Runs an application callback that the worker reported.
#[allow(unused_variables, unreachable_code, clippy::all)]
fn __callbacks(kind: u32, function: usize, user_data: usize, d: &mut ::remoting::wire::Decoder<'_>) -> Result<(), ::remoting::wire::WireError> {
    match kind {
");
    for (k, cb) in model::callbacks(spec).iter().enumerate() {
        let sig = &cb.signature;
        let _ = writeln!(o, "        {k} => {{");
        let mut args = Vec::new();
        for (i, a) in model::callback_args(cb).iter().enumerate() {
            let p = &sig.params[i];
            let t = rust::ty(p.ty.ty());
            let pn = format!("__a{i}");
            match a {
                model::CbArg::UserData => args.push(format!("user_data as {t}")),
                model::CbArg::Handle(_) => {
                    let _ = writeln!(
                        o,
                        "            let {pn}: {t} = ::remoting::guest::objects::object_of(d.u64()?) as {t};"
                    );
                    args.push(pn);
                }
                model::CbArg::Scalar => {
                    let (_, dec) = rust::scalar_wire(p.ty.ty());
                    let _ = writeln!(
                        o,
                        "            let {pn}: {t} = {};",
                        dec.replace("{}", "d.u64()?")
                    );
                    args.push(pn);
                }
                _ => {
                    let _ = writeln!(
                        o,
                        "            let {pn}_v: Option<Vec<u8>> = match d.blob()? {{ ::remoting::wire::Blob::Inline(b) => Some(b.to_vec()), _ => None }};
            let {pn}: {t} = {pn}_v.as_ref().map_or(::std::ptr::null(), |v| v.as_ptr()) as {t};"
                    );
                    args.push(pn);
                }
            }
        }
        let _ = writeln!(
            o,
            "            // SAFETY: `function` is the pointer the application registered
            // for this callback type.
            let __f: {0} = unsafe {{ ::std::mem::transmute::<usize, {0}>(function) }};
            if let Some(__f) = __f {{ unsafe {{ __f({1}) }}; }}
        }}",
            cb.name.name,
            args.join(", ")
        );
    }
    o.push_str(
        "        _ => {}
    }
    Ok(())
}

",
    );
}

fn function(
    spec: &Spec,
    plan: &FnPlan,
    opts: &Options,
    o: &mut String,
) -> Result<(), CodegenError> {
    let f = plan.f;
    let name = &f.name.name;
    let n = GuestNames { plan };
    let params: Vec<String> = f
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name.name, rust::ty(p.ty.ty())))
        .collect();
    let proto = &spec.source[f.proto_span.start..f.proto_span.end];
    let proto = proto.split_whitespace().collect::<Vec<_>>().join(" ");
    let sync = f.mode() == CallMode::Sync;
    let _ = writeln!(
        o,
        "/// `{proto}` — {}remoted {}.\n{}pub unsafe extern \"C\" fn {name}({}){} {{",
        if f.is_internal() {
            "internal to the guest library, "
        } else {
            ""
        },
        if sync {
            "synchronously"
        } else {
            "asynchronously"
        },
        if f.is_internal() {
            ""
        } else {
            "#[unsafe(no_mangle)]\n"
        },
        params.join(", "),
        rust::ret(f.ret.ty())
    );
    if let Some(fp) = f.fast_path() {
        let args: Vec<&str> = f.params.iter().map(|p| p.name.name.as_str()).collect();
        let _ = writeln!(
            o,
            "    // SAFETY: the fast path gets the application's own arguments.\n    if let Some(__r) = unsafe {{ {}::{}({}) }} {{ return __r; }}",
            opts.fast_paths,
            fp.name,
            args.join(", ")
        );
    }
    if let Some(reason) = f.unsupported() {
        let reason = if reason.is_empty() {
            "not remoted"
        } else {
            reason
        };
        let _ = writeln!(
            o,
            "    ::remoting::guest::report_unsupported({name:?}, {reason:?});\n    {}\n}}\n",
            fail(plan, "UNSUPPORTED_ERROR")
        );
        return Ok(());
    }
    // The exported function converts the body's error once into the API's
    // error value; the body is written with `?`.
    let args: Vec<&str> = f.params.iter().map(|p| p.name.name.as_str()).collect();
    let ok_ty = if rust::returns_value(f.ret.ty()) {
        rust::ty(f.ret.ty())
    } else {
        "()".to_string()
    };
    let _ = writeln!(
        o,
        "    // SAFETY: the application's arguments, passed on as they came.\n    match unsafe {{ __{name}({}) }} {{\n        Ok(v) => v,\n        Err(e) => {{ ::remoting::guest::report({name:?}, &e); {} }}\n    }}\n}}\n",
        args.join(", "),
        fail(
            plan,
            "::remoting::guest::error_value(&e, UNSUPPORTED_ERROR, TRANSPORT_ERROR)"
        )
    );
    let _ = writeln!(
        o,
        "/// The body of [`{name}`], which turns its error into the API's.\nunsafe fn __{name}({}) -> Result<{ok_ty}, ::remoting::guest::CallError> {{\n    let __conn = ::remoting::guest::connection(&API, {})?;",
        params.join(", "),
        opts.locate_region
    );
    // Checks that need no worker.
    for (i, a) in plan.args.iter().enumerate() {
        let pn = &f.params[i].name.name;
        match a {
            Arg::MustBeNull => {
                let _ = writeln!(
                    o,
                    "    if !{pn}.is_null() {{ return Err(::remoting::guest::CallError::Unsupported(\"argument `{pn}` must be NULL\".into())); }}"
                );
            }
            // An asynchronous call returns before the worker translates its
            // handles: a NULL handle, which no command takes, fails at once
            // with its type's error, as the driver's call would.
            Arg::Handle { handle, .. }
                if !sync
                    && !spec
                        .handles()
                        .any(|h| h.name.name == *handle && h.pass_values().contains(&0)) =>
            {
                let _ = writeln!(
                    o,
                    "    if ({pn} as usize) == 0 {{ return Err(::remoting::guest::CallError::Api(({}) as i64)); }}",
                    super::worker::invalid_value(spec, handle, opts)
                );
            }
            _ => {}
        }
    }
    for c in &plan.collects {
        let _ = writeln!(
            o,
            "    let __c_{} = __conn.get_bufs({:?}, ({}) as u64);",
            c.name,
            c.tracker,
            expr(c.key, &n)
        );
    }
    // `require(cond, error)`: refused at once, before anything is sent.
    for a in &f.annots {
        if let FnAnnotKind::Require { cond: c, error } = &a.kind {
            let _ = writeln!(
                o,
                "    if !({}) {{ return Err(::remoting::guest::CallError::Api(({}) as i64)); }}",
                cond(c, &n),
                expr(error, &n)
            );
        }
    }
    let _ = writeln!(o, "    let mut __call = __conn.call(func::{name}, {sync});");
    // Arguments, in order.
    for (i, a) in plan.args.iter().enumerate() {
        let p = &f.params[i];
        let pn = &p.name.name;
        let _ = writeln!(o, "    // {pn}");
        match a {
            Arg::Scalar { .. } => {
                let (enc, _) = rust::scalar_wire(p.ty.ty());
                let _ = writeln!(o, "    __call.u64({});", enc.replace("{}", pn));
            }
            Arg::Handle { .. } => {
                let _ = writeln!(o, "    __call.handle({pn});");
            }
            Arg::Callback { user_data, .. } => {
                let ud = user_data.map_or("::std::ptr::null_mut::<c_void>()".to_string(), |u| {
                    f.params[u].name.name.clone()
                });
                let _ = writeln!(
                    o,
                    "    __call.u64(match {pn} {{ Some(__cb) => {{ __conn.set_callback_handler(__callbacks); __conn.register_callback(__cb as usize, {ud} as usize) }} None => 0 }});"
                );
            }
            Arg::Opaque => {
                let _ = writeln!(o, "    __call.u64({pn} as usize as u64);");
            }
            Arg::MustBeNull => {}
            Arg::Deferred { size, pointee } => {
                let _ = writeln!(
                    o,
                    "    __call.u64({pn} as usize as u64);\n    __call.u64(({} * {}) as u64);",
                    to_usize(&expr(size, &n)),
                    elem_size(pointee)
                );
            }
            Arg::Buffer(b) => {
                let kv = f
                    .argument(pn)
                    .is_some_and(|blk| blk.annots.has(Flag::KeyValue));
                let es = elem_size(&b.pointee);
                let must_be_null = format!(
                    "return Err(::remoting::guest::CallError::Unsupported(\"argument `{pn}` must be NULL here\".into()));"
                );
                let _ = writeln!(
                    o,
                    "    let __n_{pn}: usize = {};",
                    count(&b.count, pn, &n, kv, &must_be_null)
                );
                let input = matches!(b.dir, crate::Direction::In | crate::Direction::InOut);
                let output = matches!(b.dir, crate::Direction::Out | crate::Direction::InOut);
                match &b.content {
                    Content::Blobs { elem, inner } => {
                        if output {
                            return Err(unsupported(spec, p.span, "an output array of pointers"));
                        }
                        let _ = writeln!(
                            o,
                            "    let __l_{pn}: Option<Vec<Option<&[u8]>>> = if {pn}.is_null() {{ None }} else {{\n        Some((0..__n_{pn}).map(|index| {{\n            let __e = unsafe {{ *{pn}.add(index) }};\n            if __e.is_null() {{ None }} else {{\n                let __len: usize = {};\n                Some(unsafe {{ ::std::slice::from_raw_parts(__e as *const u8, __len) }})\n            }}\n        }}).collect())\n    }};\n    __call.in_list(__l_{pn});",
                            element_size(elem, inner, &n)
                        );
                    }
                    Content::Handles { allocate: true, .. } if !sync => {
                        if !matches!(b.count, Count::One) {
                            return Err(unsupported(
                                spec,
                                p.span,
                                "several handles created by an asynchronous call",
                            ));
                        }
                        let _ = writeln!(
                            o,
                            "    if {pn}.is_null() {{ __call.u64(0); }} else {{ let __id = __call.new_handle(); unsafe {{ *{pn} = ::remoting::guest::objects::object_of(__id) as _ }}; }}"
                        );
                    }
                    _ => {
                        if input {
                            // Handles inside the data go as their ids.
                            let has_handles = matches!(
                                b.content,
                                Content::Handles { .. } | Content::ElementHandles { .. }
                            ) || b.maybe_handle
                                || !super::worker::struct_handle_fields(spec, &b.pointee)
                                    .is_empty();
                            let put = if has_handles {
                                "in_ptr_handles"
                            } else {
                                "in_ptr"
                            };
                            let _ = writeln!(
                                o,
                                "    unsafe {{ __call.{put}({pn} as *const u8, __n_{pn} * {es}) }};"
                            );
                        }
                        if output {
                            if !sync {
                                return Err(unsupported(
                                    spec,
                                    p.span,
                                    "output data of an asynchronous call",
                                ));
                            }
                            let _ = writeln!(
                                o,
                                "    __call.out_space(!{pn}.is_null(), __n_{pn} * {es});"
                            );
                        }
                    }
                }
            }
        }
    }
    for c in &plan.collects {
        let _ = writeln!(
            o,
            "    // {0} (contextual): buffers filled by earlier asynchronous calls\n    __call.u64(__c_{0}.len() as u64);\n    for &(__p, __s) in &__c_{0} {{ __call.u64(__p); __call.u64(__s); }}",
            c.name
        );
    }
    let _ = writeln!(o, "    let __reply = __call.send()?;");
    // The application's retains and releases, mirrored on its objects.
    let mut mirror = String::new();
    for (i, a) in plan.args.iter().enumerate() {
        if let Arg::Handle {
            retain, release, ..
        } = a
        {
            let pn = &f.params[i].name.name;
            if *retain {
                let _ = writeln!(
                    mirror,
                    "    ::remoting::guest::objects::retain({pn} as usize);"
                );
            }
            if *release {
                let _ = writeln!(
                    mirror,
                    "    ::remoting::guest::objects::release({pn} as usize);"
                );
            }
        }
    }
    if !sync {
        let _ = writeln!(o, "    drop(__reply);\n    __conn.run_callbacks();");
        o.push_str(&mirror);
        runtime_statements(&f.annots, &n, o);
        let rt = f.ret.ty();
        if !rust::returns_value(rt) {
            o.push_str("    Ok(())\n}\n\n");
        } else {
            let v = f.success().map_or("0i128".to_string(), |e| expr(e, &n));
            let _ = writeln!(o, "    Ok(({v}) as {})\n}}\n", rust::ty(rt));
        }
        return Ok(());
    }
    let _ = writeln!(
        o,
        "    let Some(mut __r) = __reply else {{ return Err(::remoting::guest::CallError::Protocol(\"no reply to a synchronous call\".into())); }};"
    );
    for (i, a) in plan.args.iter().enumerate() {
        let pn = &f.params[i].name.name;
        if let Arg::Buffer(b) = a
            && matches!(b.dir, crate::Direction::Out | crate::Direction::InOut)
        {
            let es = elem_size(&b.pointee);
            let _ = writeln!(
                o,
                "    unsafe {{ __r.out_ptr({pn} as *mut u8, __n_{pn} * {es}) }}?;"
            );
            // Handles the call returned in the data become objects.
            let words = format!(
                "    unsafe {{ ::remoting::guest::objects::objects_in_place({pn} as *mut u8, __n_{pn} * {es} / 8) }};"
            );
            if matches!(
                b.content,
                Content::Handles { .. } | Content::ElementHandles { .. }
            ) {
                let _ = writeln!(o, "{words}");
            }
            for (path, _) in &b.casts {
                let c: Vec<String> = path
                    .iter()
                    .map(|(c, taken)| {
                        let c = cond(c, &n);
                        if *taken {
                            format!("({c})")
                        } else {
                            format!("!({c})")
                        }
                    })
                    .collect();
                let c = if c.is_empty() {
                    "true".to_string()
                } else {
                    c.join(" && ")
                };
                let _ = writeln!(o, "    if {c} {{\n    {words}\n    }}");
            }
        }
    }
    for c in &plan.collects {
        let key = expr(c.key, &n);
        let _ = writeln!(
            o,
            "    for &(__p, __s) in &__c_{0} {{\n        unsafe {{ __r.out_ptr(__p as *mut u8, __s as usize) }}?;",
            c.name
        );
        if c.deallocate {
            let _ = writeln!(
                o,
                "        __conn.unregister_buf({:?}, ({key}) as u64, __p);",
                c.tracker
            );
        }
        o.push_str("    }\n");
    }
    let rt = f.ret.ty();
    let has_ret = rust::returns_value(rt);
    if has_ret {
        let decode = if rt.strip_alias().handle().is_some() {
            format!(
                "::remoting::guest::objects::object_of(__v) as {}",
                rust::ty(rt)
            )
        } else if rt.strip_alias().is_pointer() {
            format!("__v as usize as {}", rust::ty(rt))
        } else {
            rust::scalar_wire(rt).1.replace("{}", "__v")
        };
        let _ = writeln!(o, "    let __v = __r.u64()?;\n    let __ret = {decode};");
    }
    let _ = writeln!(o, "    __r.finish()?;");
    let _ = writeln!(o, "    __conn.run_callbacks();");
    o.push_str(&mirror);
    runtime_statements(&f.annots, &n, o);
    if has_ret {
        o.push_str("    Ok(__ret)\n");
    } else {
        o.push_str("    Ok(())\n");
    }
    o.push_str("}\n\n");
    Ok(())
}
