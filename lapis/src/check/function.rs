//! Functions and their annotations: modes, arguments, buffers, handles,
//! lifetimes, and the rules that make them complete enough to generate code.

use std::collections::{HashMap, HashSet};

use crate::ast::*;
use crate::diag::{Diagnostic, Diagnostics};
use crate::expr::{Scope, check_expr, expect_bool, expect_int};
use crate::parser::suggest;
use crate::types::{ExprType, Ty};

use super::Env;
use super::env::dup_error;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Directly in `argument(x) { ... }`.
    Top,
    /// Inside `element { ... }`.
    Element,
}

/// What an annotation list (with its `if` branches) says about a value.
#[derive(Default)]
struct Props {
    dir: Option<Direction>,
    sized: bool,
    no_copy: bool,
    manual: bool,
    covered: bool,
    element: bool,
    out_span: Option<Span>,
    /// Where `retain` is written (on a by-value handle).
    retain: Option<Span>,
    /// Where `deallocate` is written on a by-value handle.
    deallocate: Option<Span>,
}

pub(super) struct FnChecker<'e, 'd> {
    env: &'e Env,
    diags: &'d mut Diagnostics,
    is_callback: bool,
    /// Parameters and contextual arguments, for expressions.
    args: Vec<(String, Ty, NameRef)>,
    /// Arguments named as the user data of a `callback(..)`.
    user_data: HashSet<String>,
    /// The argument whose block is being checked.
    arg_name: String,
    /// Non-zero while checking `if` branches (coverage is judged on the
    /// enclosing block).
    suppress_coverage: u32,
}

impl<'e, 'd> FnChecker<'e, 'd> {
    pub(super) fn new(env: &'e Env, diags: &'d mut Diagnostics, is_callback: bool) -> Self {
        FnChecker {
            env,
            diags,
            is_callback,
            args: Vec::new(),
            user_data: HashSet::new(),
            arg_name: String::new(),
            suppress_coverage: 0,
        }
    }

    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn expr_int(&mut self, e: &mut Expr, in_element: bool, what: &str) {
        let scope = Scope {
            env: self.env,
            args: &self.args,
            in_element,
        };
        expect_int(e, &scope, self.diags, what);
    }

    fn expr_bool(&mut self, e: &mut Expr, in_element: bool, what: &str) {
        let scope = Scope {
            env: self.env,
            args: &self.args,
            in_element,
        };
        expect_bool(e, &scope, self.diags, what);
    }

    fn expr_any(&mut self, e: &mut Expr, in_element: bool) -> Option<ExprType> {
        let scope = Scope {
            env: self.env,
            args: &self.args,
            in_element,
        };
        check_expr(e, &scope, self.diags)
    }

    pub(super) fn function(&mut self, f: &mut Function) {
        let what = if self.is_callback {
            "callback"
        } else {
            "function"
        };
        let ret = self.env.resolve(&mut f.ret, self.diags);
        let mut seen: HashMap<String, Span> = HashMap::new();
        for (i, p) in f.params.iter_mut().enumerate() {
            if let Some(first) = seen.get(&p.name.name) {
                let d = dup_error("parameter", &p.name, *first);
                self.err(d);
            }
            seen.insert(p.name.name.clone(), p.name.span);
            if let Some(t) = self.env.resolve(&mut p.ty, self.diags) {
                if t.is_void() {
                    self.err(Diagnostic::error(
                        p.ty.span,
                        format!("parameter `{}` cannot have type `void`", p.name.name),
                    ));
                } else {
                    self.args.push((p.name.name.clone(), t, NameRef::Param(i)));
                }
            }
        }
        // Contextual arguments are visible everywhere in the function.
        let mut ctx_index = 0;
        for a in &mut f.annots {
            if let FnAnnotKind::Contextual(c) = &mut a.kind {
                if let Some(first) = seen.get(&c.name.name) {
                    let d = dup_error("argument", &c.name, *first);
                    self.err(d);
                }
                seen.insert(c.name.name.clone(), c.name.span);
                if let Some(t) = self.env.resolve(&mut c.ty, self.diags) {
                    self.args
                        .push((c.name.name.clone(), t, NameRef::Contextual(ctx_index)));
                }
                ctx_index += 1;
            }
        }

        let mut mode: Option<(CallMode, Span)> = None;
        let mut success: Option<Span> = None;
        let mut unsupported: Option<Span> = None;
        // `implement`, `fast_path` and `internal`, each with where it was
        // first given, in source order.
        let mut hooks: Vec<(&'static str, Span)> = Vec::new();
        let mut ret_block: Option<Span> = None;
        let mut blocks: HashMap<String, Span> = HashMap::new();
        let mut arg_props: Vec<(String, Props, Span, bool)> = Vec::new();
        let mut error_code: Option<(Span, String)> = None;
        for a in &mut f.annots {
            let span = a.span;
            if self.is_callback && !matches!(a.kind, FnAnnotKind::Argument(_)) {
                self.err(
                    Diagnostic::error(
                        span,
                        "only `argument(..)` blocks are allowed in a callback declaration",
                    )
                    .with_label("not allowed here"),
                );
                continue;
            }
            match &mut a.kind {
                FnAnnotKind::Guard(_) => {}
                FnAnnotKind::Implement(_)
                | FnAnnotKind::After(_)
                | FnAnnotKind::FastPath(_)
                | FnAnnotKind::Internal => {
                    let kw = match a.kind {
                        FnAnnotKind::Implement(_) => "implement",
                        FnAnnotKind::After(_) => "after",
                        FnAnnotKind::FastPath(_) => "fast_path",
                        _ => "internal",
                    };
                    match hooks.iter().find(|(k, _)| *k == kw) {
                        Some(&(_, s0)) => self.err(
                            Diagnostic::error(span, format!("duplicate `{kw}`"))
                                .with_secondary(s0, "first given here"),
                        ),
                        None => hooks.push((kw, span)),
                    }
                }
                FnAnnotKind::Sync | FnAnnotKind::Async => {
                    let m = if matches!(a.kind, FnAnnotKind::Sync) {
                        CallMode::Sync
                    } else {
                        CallMode::Async
                    };
                    match mode {
                        Some((m0, s0)) if m0 != m => self.err(
                            Diagnostic::error(
                                span,
                                format!("function `{}` is both `sync` and `async`", f.name.name),
                            )
                            .with_label("conflicts with the earlier annotation")
                            .with_secondary(s0, "first annotated here"),
                        ),
                        Some((_, s0)) => self.err(
                            Diagnostic::error(span, format!("duplicate `{}`", mode_kw(m)))
                                .with_secondary(s0, "first annotated here"),
                        ),
                        None => mode = Some((m, span)),
                    }
                }
                FnAnnotKind::Success(e) => {
                    if let Some(s0) = success {
                        self.err(
                            Diagnostic::error(span, "duplicate `success`")
                                .with_secondary(s0, "first given here"),
                        );
                        continue;
                    }
                    success = Some(span);
                    let Some(ret) = &ret else { continue };
                    if ret.is_void() {
                        self.err(
                            Diagnostic::error(
                                span,
                                format!("`success` on `{}`, which returns `void`", f.name.name),
                            )
                            .with_label("nothing to return"),
                        );
                        continue;
                    }
                    if let Some(t) = self.expr_any(e, false) {
                        let want = ret.expr_type();
                        let fits = t == want
                            || matches!(
                                (&want, &t),
                                (
                                    ExprType::Pointer(_) | ExprType::Handle(_),
                                    ExprType::Pointer(None)
                                )
                            );
                        if !fits {
                            self.err(
                                Diagnostic::error(
                                    e.span,
                                    format!("`success` value must be {want} (the return type `{ret}`), found {t}"),
                                )
                                .with_label("wrong type"),
                            );
                        }
                    }
                }
                FnAnnotKind::ConsumesRc { resource, amount } => {
                    self.consumes(resource, amount);
                }
                FnAnnotKind::Require { cond, error } => {
                    self.expr_bool(cond, false, "the condition of `require`");
                    if let ExprKind::Call { .. } | ExprKind::Metadata { .. } = cond.kind {
                        self.err(
                            Diagnostic::error(cond.span, "the condition of `require` must depend only on the call's arguments")
                                .with_label("the worker cannot evaluate this"),
                        );
                    }
                    self.expr_int(error, false, "the error of `require`");
                    if error.const_value().is_none() {
                        self.err(
                            Diagnostic::error(
                                error.span,
                                "the error of `require` must be a constant",
                            )
                            .with_label("not a constant expression")
                            .with_note("help: name the API's error code, e.g. `CL_INVALID_VALUE`"),
                        );
                    }
                }
                FnAnnotKind::Unsupported(_) => {
                    if let Some(s0) = unsupported {
                        self.err(
                            Diagnostic::error(span, "duplicate `unsupported`")
                                .with_secondary(s0, "first given here"),
                        );
                    }
                    unsupported = Some(span);
                }
                FnAnnotKind::RuntimeCall(e) => self.runtime_stmt(e),
                FnAnnotKind::Contextual(c) => {
                    let Some(declared) = c.ty.resolved.clone() else {
                        self.expr_any(&mut c.value, false);
                        continue;
                    };
                    if let Some(t) = self.expr_any(&mut c.value, false) {
                        let want = declared.expr_type();
                        let fits = t == want
                            || matches!((&want, &t), (ExprType::Pointer(Some(p)), ExprType::BufferList) if p.is_pointer())
                            || matches!(
                                (&want, &t),
                                (
                                    ExprType::Pointer(_) | ExprType::Handle(_),
                                    ExprType::Pointer(None)
                                )
                            );
                        if !fits {
                            self.err(
                                Diagnostic::error(
                                    c.value.span,
                                    format!(
                                        "contextual argument `{}` has type `{declared}` but its value is {t}",
                                        c.name.name
                                    ),
                                )
                                .with_label("wrong type")
                                .with_secondary(c.ty.span, "declared type"),
                            );
                        }
                    }
                }
                FnAnnotKind::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    self.expr_bool(cond, false, "the condition of `if`");
                    self.fn_if_body(then);
                    self.fn_if_body(otherwise);
                }
                FnAnnotKind::Argument(b) => {
                    let Some((_, ty, r)) = self
                        .args
                        .iter()
                        .find(|(n, _, _)| *n == b.name.name)
                        .cloned()
                    else {
                        if !seen.contains_key(&b.name.name) {
                            let names: Vec<&str> =
                                f.params.iter().map(|p| p.name.name.as_str()).collect();
                            let mut d = Diagnostic::error(
                                b.name.span,
                                format!("unknown argument `{}` in `argument(..)`", b.name.name),
                            )
                            .with_label(format!("`{}` has no such argument", f.name.name));
                            if let Some(s) = suggest(&b.name.name, names.iter()) {
                                d = d.with_note(format!("help: did you mean `{s}`?"));
                            }
                            d = d.with_note(format!(
                                "the arguments of `{}` are: {}",
                                f.name.name,
                                if names.is_empty() {
                                    "(none)".to_string()
                                } else {
                                    names.join(", ")
                                }
                            ));
                            self.err(d);
                        }
                        continue;
                    };
                    if let Some(first) = blocks.get(&b.name.name) {
                        self.err(
                            Diagnostic::error(
                                b.name.span,
                                format!("duplicate `argument({})` block", b.name.name),
                            )
                            .with_label("second block")
                            .with_secondary(*first, "first block here")
                            .with_note("help: merge the annotations into one block"),
                        );
                        continue;
                    }
                    blocks.insert(b.name.name.clone(), b.name.span);
                    b.target = Some(match r {
                        NameRef::Param(i) => ArgTarget::Param(i),
                        NameRef::Contextual(i) => ArgTarget::Contextual(i),
                        _ => unreachable!("arguments resolve to params or contextuals"),
                    });
                    self.arg_name = b.name.name.clone();
                    let props =
                        self.annots(&mut b.annots, &ty, Level::Top, None, b.name.span, false);
                    if let Some(ec) = b
                        .annots
                        .items
                        .iter()
                        .find(|a| matches!(a.kind, ArgAnnotKind::Flag(Flag::ErrorCode)))
                    {
                        match error_code {
                            Some((s0, ref n0)) => self.err(
                                Diagnostic::error(
                                    ec.span,
                                    format!(
                                        "`{}` has two `error_code` arguments, `{n0}` and `{}`",
                                        f.name.name, b.name.name
                                    ),
                                )
                                .with_label("second `error_code`")
                                .with_secondary(s0, "first `error_code`")
                                .with_note("the generated code writes the error to one place"),
                            ),
                            None => error_code = Some((ec.span, b.name.name.clone())),
                        }
                    }
                    let allocated_only = allocated_handles_only(&b.annots, &ty);
                    arg_props.push((b.name.name.clone(), props, b.name.span, allocated_only));
                }
                FnAnnotKind::Return(annots) => {
                    if let Some(s0) = ret_block {
                        self.err(
                            Diagnostic::error(span, "duplicate `return` block")
                                .with_secondary(s0, "first block here"),
                        );
                        continue;
                    }
                    ret_block = Some(span);
                    self.return_block(annots, ret.as_ref(), &f.name.name);
                }
            }
        }

        if let Some(u) = unsupported {
            // A guest-side fast path may make what it can of an unsupported
            // function (the rest is reported unsupported); worker-side hooks
            // never run.
            if let Some((kw, s0)) = hooks.iter().find(|(k, _)| *k != "fast_path") {
                self.err(
                    Diagnostic::error(*s0, format!("`{kw}` on an `unsupported` function"))
                        .with_label("never runs")
                        .with_secondary(u, "the function is unsupported here"),
                );
            }
            return;
        }
        let hook = |kw: &str| hooks.iter().find(|(k, _)| *k == kw).map(|&(_, s)| s);
        if let Some(s0) = hook("internal")
            && hook("implement").is_none()
        {
            self.err(
                Diagnostic::error(
                    s0,
                    format!("internal function `{}` needs `implement(NAME)`", f.name.name),
                )
                .with_label("the host library has no such function")
                .with_note("help: name the worker-side function that carries it out, e.g. `implement(my_function);`"),
            );
        }
        let is_async = matches!(mode, Some((CallMode::Async, _)));
        if is_async && success.is_none() && ret.as_ref().is_some_and(|r| !r.is_void()) {
            self.err(
                Diagnostic::error(
                    f.name.span,
                    format!("async function `{}` needs a `success(VALUE)`", f.name.name),
                )
                .with_label("returns before the worker answers")
                .with_note("help: an async call returns its success value at once, e.g. `success(CUDA_SUCCESS);`"),
            );
        }
        // Every pointer parameter must be described.
        for p in &f.params {
            if blocks.contains_key(&p.name.name) || self.user_data.contains(&p.name.name) {
                continue;
            }
            let Some(t) = &p.ty.resolved else { continue };
            if t.callback().is_some() {
                self.err(
                    Diagnostic::error(
                        p.span,
                        format!(
                            "callback argument `{}` of {what} `{}` has no annotation",
                            p.name.name, f.name.name
                        ),
                    )
                    .with_label("needs `argument(..) { callback(USER_DATA); }`")
                    .with_note(format!(
                        "help: add `argument({}) {{ callback(user_data); }}` (or `must_be_null;`)",
                        p.name.name
                    )),
                );
            } else if t.is_pointer() {
                self.err(
                    Diagnostic::error(
                        p.span,
                        format!(
                            "pointer argument `{}` of {what} `{}` has no annotation",
                            p.name.name, f.name.name
                        ),
                    )
                    .with_label(format!("`{}` is a pointer", p.ty))
                    .with_note(format!(
                        "help: say how it travels, e.g. `argument({}) {{ in; buffer(N); }}`, \
                         `{{ in; string; }}`, `{{ out; }}`, `{{ opaque; }}` or `{{ must_be_null; }}`",
                        p.name.name
                    )),
                );
            }
        }
        // Outputs of async calls must be deferred.
        if is_async {
            for (name, props, name_span, allocated_only) in &arg_props {
                let registered = f.annots.iter().any(|a| registers(a, name));
                let deferred = props.no_copy && props.manual;
                // New handles are fine: the guest picks their ids itself.
                if *allocated_only {
                    continue;
                }
                if let Some(out) = props.out_span.filter(|_| !(deferred && registered)) {
                    self.err(
                        Diagnostic::error(out, format!("output `{name}` of async function `{}`", f.name.name))
                            .with_label("the call returns before the worker writes this")
                            .with_note(
                                "help: defer it: mark the argument `no_copy; lifetime_manual;`, record it with \
                                 `register_buf(TRACKER, KEY, ARG, SIZE);`, and fill it at a later sync call \
                                 through `contextual_argument void** bufs = get_bufs(TRACKER, KEY);` \
                                 with `element { out; deallocate; }` (as cuMemcpyDtoHAsync / cuStreamSynchronize)",
                            ),
                    );
                } else if deferred && !registered {
                    self.err(
                        Diagnostic::error(
                            *name_span,
                            format!("`{name}` is `no_copy; lifetime_manual;` in async `{}` but never registered", f.name.name),
                        )
                        .with_label("nothing will ever fill this buffer")
                        .with_note(format!(
                            "help: add `register_buf(TRACKER, KEY, {name}, SIZE);` so a later sync call can complete it"
                        )),
                    );
                }
            }
        }
    }

    fn consumes(&mut self, resource: &Ident, amount: &mut Expr) {
        if !self.env.resources.contains(&resource.name) {
            let names: Vec<&str> = self.env.resources.iter().map(String::as_str).collect();
            let mut d = Diagnostic::error(
                resource.span,
                format!("unknown resource `{}`", resource.name),
            )
            .with_label("not declared");
            if let Some(s) = suggest(&resource.name, names.iter()) {
                d = d.with_note(format!("help: did you mean `{s}`?"));
            } else {
                d = d.with_note(format!(
                    "help: declare it with `resource {};`",
                    resource.name
                ));
            }
            self.err(d);
        }
        self.expr_int(amount, false, "the amount of `consumes_rc`");
    }

    fn runtime_stmt(&mut self, e: &mut Expr) {
        let t = self.expr_any(e, false);
        if let Some(t) = t.filter(|t| *t != ExprType::Void) {
            let name = match &e.kind {
                ExprKind::Call { func, .. } => func.name.clone(),
                _ => String::new(),
            };
            self.err(
                Diagnostic::error(e.span, format!("the result of `{name}` is unused"))
                    .with_label(format!("returns {t}"))
                    .with_note(
                        "help: use it in an expression, e.g. `buffer(get_n_bufs(..))`, or bind it with \
                         `contextual_argument TYPE NAME = ...;`",
                    ),
            );
        }
    }

    fn fn_if_body(&mut self, items: &mut [FnAnnot]) {
        for a in items {
            match &mut a.kind {
                FnAnnotKind::RuntimeCall(e) => self.runtime_stmt(e),
                FnAnnotKind::ConsumesRc { resource, amount } => self.consumes(resource, amount),
                FnAnnotKind::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    self.expr_bool(cond, false, "the condition of `if`");
                    self.fn_if_body(then);
                    self.fn_if_body(otherwise);
                }
                _ => {}
            }
        }
    }

    fn return_block(&mut self, annots: &mut Annots, ret: Option<&Ty>, fname: &str) {
        for a in &annots.items {
            match a.kind {
                ArgAnnotKind::Flag(Flag::Allocate | Flag::ObjRecord | Flag::Handle) => {
                    if let Some(r) = ret.filter(|r| r.handle().is_none()) {
                        let kw = match a.kind {
                            ArgAnnotKind::Flag(f) => f.keyword(),
                            _ => "",
                        };
                        self.err(
                            Diagnostic::error(
                                a.span,
                                format!("`{kw}` on the return value of `{fname}`, which returns `{r}`, not a handle"),
                            )
                            .with_label("needs a handle"),
                        );
                    }
                }
                _ => self.err(
                    Diagnostic::error(a.span, "only `allocate`, `obj_record` and `handle` are allowed in a `return` block")
                        .with_label("not allowed here"),
                ),
            }
        }
    }

    /// Checks an annotation list for a value of type `ty`.
    fn annots(
        &mut self,
        annots: &mut Annots,
        ty: &Ty,
        level: Level,
        inherited: Option<Direction>,
        anchor: Span,
        in_element: bool,
    ) -> Props {
        let name = self.arg_name.clone();
        let mut props = Props::default();

        // Pass 1: duplicates and conflicts.
        let mut dir: Option<(Direction, Span)> = None;
        let mut once: HashMap<&'static str, Span> = HashMap::new();
        let mut lifetime: Option<(Lifetime, Span)> = None;
        for a in &annots.items {
            let key: Option<&'static str> = match &a.kind {
                ArgAnnotKind::Direction(d) => {
                    if let Some((d0, s0)) = dir {
                        let msg = if d0 != *d && d0 != Direction::InOut && *d != Direction::InOut {
                            self.err(
                                Diagnostic::error(
                                    a.span,
                                    format!("`{name}` is both `in` and `out`"),
                                )
                                .with_label("second direction")
                                .with_secondary(s0, "first direction")
                                .with_note("help: use `inout;` for data copied both ways"),
                            );
                            None
                        } else if d0 == *d {
                            Some(format!("duplicate `{}`", dir_kw(*d)))
                        } else {
                            Some(format!(
                                "conflicting directions `{}` and `{}`",
                                dir_kw(d0),
                                dir_kw(*d)
                            ))
                        };
                        if let Some(m) = msg {
                            self.err(
                                Diagnostic::error(a.span, m).with_secondary(s0, "first direction"),
                            );
                        }
                    } else {
                        dir = Some((*d, a.span));
                    }
                    None
                }
                ArgAnnotKind::Lifetime(l) => {
                    if let Some((l0, s0)) = lifetime {
                        let m = if l0 == *l {
                            format!("duplicate `{}`", lifetime_kw(*l))
                        } else {
                            format!(
                                "conflicting lifetimes `{}` and `{}`",
                                lifetime_kw(l0),
                                lifetime_kw(*l)
                            )
                        };
                        self.err(Diagnostic::error(a.span, m).with_secondary(s0, "first lifetime"));
                    } else {
                        lifetime = Some((*l, a.span));
                    }
                    None
                }
                ArgAnnotKind::Buffer(_) => Some("buffer"),
                ArgAnnotKind::Flag(f) => Some(f.keyword()),
                ArgAnnotKind::Element(_) => Some("element"),
                ArgAnnotKind::TypeCast(_) => Some("type_cast"),
                ArgAnnotKind::Callback(_) => Some("callback"),
                ArgAnnotKind::Value(_) => Some("value"),
                ArgAnnotKind::If { .. } => None,
            };
            if let Some(k) = key {
                if let Some(s0) = once.get(k) {
                    self.err(
                        Diagnostic::error(a.span, format!("duplicate `{k}` on `{name}`"))
                            .with_label("given again")
                            .with_secondary(*s0, "first given here"),
                    );
                } else {
                    once.insert(k, a.span);
                }
            }
        }
        props.dir = dir.map(|(d, _)| d);
        let eff_dir = props.dir.or(inherited);

        // The effective type, after `type_cast`.
        let mut eff = ty.clone();
        for a in &mut annots.items {
            if let ArgAnnotKind::TypeCast(t) = &mut a.kind {
                if let Some(c) = self.env.resolve(t, self.diags) {
                    if !castable(ty, &c) {
                        self.err(
                            Diagnostic::error(t.span, format!("cannot `type_cast` `{name}` from `{ty}` to `{c}`"))
                                .with_label("incompatible type")
                                .with_note("type_cast converts between pointers, or between integer-like values"),
                        );
                    }
                    eff = c;
                }
                break;
            }
        }
        let is_ptr = eff.is_pointer();
        let is_cb = eff.callback().is_some();
        let value_handle = eff.handle().is_some()
            || (level == Level::Top && eff.pointee().and_then(Ty::handle).is_some());
        // Inside an `if` branch (coverage is judged on the enclosing block).
        let in_branch = self.suppress_coverage > 0;
        let zero_terminated = annots.has(Flag::ZeroTerminated);

        // Pass 2: each annotation against the type.
        for a in &mut annots.items {
            let span = a.span;
            match &mut a.kind {
                ArgAnnotKind::Direction(d) => {
                    if matches!(d, Direction::Out | Direction::InOut) {
                        props.out_span.get_or_insert(span);
                        if level == Level::Top && !is_ptr {
                            self.err(
                                Diagnostic::error(
                                    span,
                                    format!(
                                        "`{}` on `{name}`, which is passed by value (`{eff}`)",
                                        dir_kw(*d)
                                    ),
                                )
                                .with_label("not a pointer")
                                .with_note("only data behind a pointer can flow back to the guest"),
                            );
                        }
                    }
                }
                ArgAnnotKind::Buffer(e) => {
                    if !is_ptr {
                        self.err(not_pointer("buffer", &name, &eff, span));
                    }
                    props.sized = true;
                    self.expr_int(e, in_element, "the size in `buffer(..)`");
                }
                ArgAnnotKind::Lifetime(l) => {
                    if !is_ptr {
                        self.err(not_pointer(lifetime_kw(*l), &name, &eff, span));
                    }
                    if *l == Lifetime::Manual {
                        props.manual = true;
                    }
                }
                ArgAnnotKind::Element(inner) => {
                    props.element = true;
                    match eff.pointee().cloned() {
                        Some(p) => {
                            let sub = self.annots(inner, &p, Level::Element, eff_dir, span, true);
                            if props.out_span.is_none() {
                                props.out_span = sub.out_span;
                            }
                        }
                        None => self.err(not_pointer("element", &name, &eff, span)),
                    }
                }
                ArgAnnotKind::TypeCast(_) => {}
                ArgAnnotKind::Value(e) => {
                    if let Some(d) = self.placement("value", level, in_branch, span) {
                        self.err(d);
                        continue;
                    }
                    let want = match eff.scalar() {
                        Some(_) if !is_ptr => eff.expr_type(),
                        _ => {
                            self.err(
                                Diagnostic::error(
                                    span,
                                    format!("`value` on `{name}`, which is not a scalar passed by value (`{eff}`)"),
                                )
                                .with_label("only integers, bools and floats passed by value can be replaced")
                                .with_note("`value(EXPR)` makes the worker pass EXPR to the driver instead of the guest's value"),
                            );
                            self.expr_any(e, false);
                            continue;
                        }
                    };
                    if let Some(t) = self.expr_any(e, false)
                        && t != want
                    {
                        self.err(
                            Diagnostic::error(
                                e.span,
                                format!("`value` for `{name}` must be {want} (the type `{eff}`), found {t}"),
                            )
                            .with_label("wrong type"),
                        );
                    }
                }
                ArgAnnotKind::Callback(u) => {
                    props.covered = true;
                    if !is_cb {
                        self.err(
                            Diagnostic::error(span, format!("`callback` on `{name}`, which is not a callback type (`{eff}`)"))
                                .with_label("not a function pointer")
                                .with_note("help: declare function pointer types with `callback NAME = RET (PARAMS) { ... }`"),
                        );
                    }
                    if let Some(u) = u {
                        match self.args.iter().find(|(n, _, _)| *n == u.name) {
                            Some((_, t, _)) if t.is_pointer() || t.is_integer() => {
                                self.user_data.insert(u.name.clone());
                            }
                            Some((_, t, _)) => {
                                let d = Diagnostic::error(
                                    u.span,
                                    format!(
                                        "user data `{}` must be a pointer, found `{t}`",
                                        u.name
                                    ),
                                );
                                self.err(d);
                            }
                            None => {
                                let d = Diagnostic::error(
                                    u.span,
                                    format!("unknown argument `{}`", u.name),
                                )
                                .with_label("the user data must be an argument of this function");
                                self.err(d);
                            }
                        }
                    }
                }
                ArgAnnotKind::Flag(f) => {
                    let f = *f;
                    match f {
                        Flag::NoCopy | Flag::Opaque | Flag::ZeroTerminated => {
                            if !is_ptr {
                                self.err(not_pointer(f.keyword(), &name, &eff, span));
                            }
                        }
                        Flag::Nullable | Flag::MustBeNull => {
                            if !is_ptr && !is_cb && eff.handle().is_none() {
                                self.err(not_pointer(f.keyword(), &name, &eff, span));
                            }
                        }
                        Flag::String => {
                            if !eff.pointee().is_some_and(Ty::is_char) {
                                self.err(
                                    Diagnostic::error(
                                        span,
                                        format!(
                                            "`string` on `{name}`, which is `{eff}`, not a `char*`"
                                        ),
                                    )
                                    .with_label("not a character pointer"),
                                );
                            }
                        }
                        Flag::Allocate => {
                            if !value_handle {
                                self.err(
                                    Diagnostic::error(span, format!("`allocate` on `{name}`, which is not a handle (`{eff}`)"))
                                        .with_label("only handles are allocated"),
                                );
                            } else if !matches!(eff_dir, Some(Direction::Out | Direction::InOut)) {
                                self.err(
                                    Diagnostic::error(span, format!("`allocate` on `{name}`, which is not an output"))
                                        .with_label("a new handle must be written back to the guest")
                                        .with_note(
                                            "help: a call creates a handle by writing it through an `out` pointer \
                                             (`argument(p) { out; element { obj_record; allocate; } }`) or by \
                                             returning it (`return { allocate; }`)",
                                        ),
                                );
                            }
                        }
                        Flag::Deallocate => {
                            if !value_handle && !is_ptr {
                                self.err(
                                    Diagnostic::error(span, format!("`deallocate` on `{name}`, which is neither a handle nor a buffer (`{eff}`)"))
                                        .with_label("nothing to release"),
                                );
                            }
                        }
                        Flag::ErrorCode => {
                            if let Some(d) = self.placement("error_code", level, in_branch, span) {
                                self.err(d);
                            } else if !(is_ptr && eff.pointee().is_some_and(Ty::is_integer)) {
                                self.err(
                                    Diagnostic::error(span, format!("`error_code` on `{name}`, which is not a pointer to an integer (`{eff}`)"))
                                        .with_label("the error code is written through a pointer to an integer")
                                        .with_note("help: put `error_code` on an argument such as `cl_int* errcode_ret`"),
                                );
                            } else if eff_dir != Some(Direction::Out) {
                                self.err(
                                    Diagnostic::error(span, format!("`error_code` on `{name}`, which is not an `out` argument"))
                                        .with_label("the error code is written back to the guest")
                                        .with_note("help: write `out; nullable; error_code;`"),
                                );
                            }
                        }
                        Flag::Retain => {
                            if let Some(d) = self.placement("retain", level, in_branch, span) {
                                self.err(d);
                            } else if eff.handle().is_none() {
                                self.err(
                                    Diagnostic::error(span, format!("`retain` on `{name}`, which is not a handle passed by value (`{eff}`)"))
                                        .with_label("only handles have references")
                                        .with_note("`retain` means the call adds one reference to the object, as `clRetainMemObject`"),
                                );
                            }
                        }
                        Flag::MaybeHandle => {
                            if let Some(d) = self.placement("maybe_handle", level, in_branch, span)
                            {
                                self.err(d);
                            } else if !eff.pointee().is_some_and(Ty::is_void) {
                                self.err(
                                    Diagnostic::error(span, format!("`maybe_handle` on `{name}`, which is not a `void*` buffer (`{eff}`)"))
                                        .with_label("needs a `void*`")
                                        .with_note("for a typed pointer to handles, give the handle type: the worker translates every element"),
                                );
                            } else if eff_dir != Some(Direction::In) {
                                self.err(
                                    Diagnostic::error(span, format!("`maybe_handle` on `{name}`, which is not an `in` argument"))
                                        .with_label("only data sent to the worker is checked for handles")
                                        .with_note("help: write `in; buffer(SIZE); maybe_handle;`"),
                                );
                            }
                        }
                        Flag::KeyValue => {
                            if !zero_terminated {
                                self.err(
                                    Diagnostic::error(span, format!("`key_value` on `{name}`, which is not `zero_terminated`"))
                                        .with_label("describes how a zero-terminated list ends")
                                        .with_note("help: write `zero_terminated; key_value;` for a list of (key, value) pairs ended by a zero key"),
                                );
                            }
                        }
                        Flag::ObjRecord | Flag::Handle => {
                            if !value_handle && !is_ptr {
                                self.err(
                                    Diagnostic::error(
                                        span,
                                        format!(
                                            "`{}` on `{name}`, which is not a handle (`{eff}`)",
                                            f.keyword()
                                        ),
                                    )
                                    .with_label("not a handle"),
                                );
                            }
                        }
                    }
                    match f {
                        Flag::NoCopy => props.no_copy = true,
                        Flag::String | Flag::ZeroTerminated => props.sized = true,
                        Flag::Retain => props.retain = Some(span),
                        Flag::Deallocate if level == Level::Top && eff.handle().is_some() => {
                            props.deallocate = Some(span);
                        }
                        Flag::Opaque | Flag::MustBeNull => props.covered = true,
                        _ => {}
                    }
                }
                ArgAnnotKind::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    self.expr_bool(cond, in_element, "the condition of `if`");
                    let (ts, os) = (then.span, otherwise.span);
                    for (branch, bspan) in [(then, ts), (otherwise, os)] {
                        // Branches are checked for their own content; their
                        // coverage counts for the enclosing argument.
                        let b = self.annots_branch(branch, &eff, level, eff_dir, bspan, in_element);
                        props.dir = props.dir.or(b.dir);
                        props.sized |= b.sized;
                        props.no_copy |= b.no_copy;
                        props.manual |= b.manual;
                        props.covered |= b.covered;
                        props.element |= b.element;
                        if props.out_span.is_none() {
                            props.out_span = b.out_span;
                        }
                    }
                }
            }
        }

        if let (Some(r), Some(d)) = (props.retain, props.deallocate) {
            let (first, second) = if r.start < d.start { (r, d) } else { (d, r) };
            self.err(
                Diagnostic::error(
                    second,
                    format!("`{name}` is both `retain` and `deallocate`"),
                )
                .with_label("second reference change")
                .with_secondary(first, "first reference change")
                .with_note("a call either adds a reference (`retain`) or drops one (`deallocate`)"),
            );
        }

        // Coverage: is there enough information to move this value?
        self.coverage(&props, &eff, level, anchor, &name);
        props
    }

    /// Whether annotation `kw`, which only applies to a function's own
    /// argument, unconditionally, is misplaced here.
    fn placement(&self, kw: &str, level: Level, in_branch: bool, span: Span) -> Option<Diagnostic> {
        if self.is_callback {
            Some(
                Diagnostic::error(
                    span,
                    format!("`{kw}` is not allowed on a callback argument"),
                )
                .with_label("callback arguments travel from the worker to the guest"),
            )
        } else if level == Level::Element {
            Some(
                Diagnostic::error(
                    span,
                    format!("`{kw}` is not allowed inside `element {{ ... }}`"),
                )
                .with_label("applies to the argument itself")
                .with_note(format!("help: move it to `argument(NAME) {{ {kw}...; }}`")),
            )
        } else if in_branch {
            Some(
                Diagnostic::error(span, format!("`{kw}` cannot be conditional"))
                    .with_label("inside an `if`")
                    .with_note(if kw == "value" {
                        "help: write it unconditionally; a conditional value is `value(COND ? A : B);`"
                    } else {
                        "help: write it unconditionally in the argument block"
                    }),
            )
        } else {
            None
        }
    }

    /// An `if` branch: same checks, but coverage is judged on the whole
    /// enclosing block (a branch may give only part of the description).
    fn annots_branch(
        &mut self,
        annots: &mut Annots,
        ty: &Ty,
        level: Level,
        inherited: Option<Direction>,
        anchor: Span,
        in_element: bool,
    ) -> Props {
        self.suppress_coverage += 1;
        let p = self.annots(annots, ty, level, inherited, anchor, in_element);
        self.suppress_coverage -= 1;
        p
    }

    /// Reports a pointer whose transfer is not fully described.
    fn coverage(&mut self, props: &Props, ty: &Ty, level: Level, anchor: Span, name: &str) {
        if self.suppress_coverage > 0 || props.covered {
            return;
        }
        let Some(pointee) = ty.pointee() else {
            return;
        };
        if ty.callback().is_some() {
            return;
        }
        let place = if level == Level::Top {
            format!("pointer argument `{name}`")
        } else {
            format!("each element of `{name}`")
        };
        if level == Level::Top && props.dir.is_none() && !props.no_copy {
            self.err(
                Diagnostic::error(anchor, format!("{place} has no direction"))
                    .with_label(format!("`{ty}` needs `in`, `out` or `inout`"))
                    .with_note(
                        "help: add `in;` (copied to the worker), `out;` (copied back), `inout;`, \
                         or `opaque;` / `must_be_null;` if it is never dereferenced",
                    ),
            );
            return;
        }
        if pointee.is_void() && !props.sized {
            self.err(
                Diagnostic::error(
                    anchor,
                    format!("{place} points to `void`, so its size must be given"),
                )
                .with_label("size unknown")
                .with_note("help: add `buffer(BYTES);`"),
            );
            return;
        }
        if pointee.is_pointer() && pointee.callback().is_none() && !props.element && !props.no_copy
        {
            self.err(
                Diagnostic::error(
                    anchor,
                    format!("{place} points to pointers, which mean nothing to the worker"),
                )
                .with_label(format!("`{ty}`"))
                .with_note("help: describe what each pointer points to with `element { ... }`"),
            );
        }
    }
}

fn not_pointer(kw: &str, name: &str, ty: &Ty, span: Span) -> Diagnostic {
    Diagnostic::error(
        span,
        format!("`{kw}` on non-pointer argument `{name}` of type `{ty}`"),
    )
    .with_label("needs a pointer")
}

fn castable(from: &Ty, to: &Ty) -> bool {
    let ptrish = |t: &Ty| t.is_pointer() || t.callback().is_some();
    let intish = |t: &Ty| t.is_integer() || t.handle().is_some();
    (ptrish(from) && (ptrish(to) || to.handle().is_some())) || (intish(from) && intish(to))
}

/// Whether an argument's only output is new handles (`out; element {
/// allocate; }` on a pointer to handles): allowed on async functions,
/// because the guest chooses the new ids itself and writes them at once.
fn allocated_handles_only(annots: &Annots, declared: &Ty) -> bool {
    let eff = annots
        .type_cast()
        .and_then(|t| t.resolved.clone())
        .unwrap_or_else(|| declared.clone());
    eff.pointee().and_then(Ty::handle).is_some()
        && annots.direction() == Some(Direction::Out)
        && annots.conditionals().next().is_none()
        && annots
            .element()
            .is_some_and(|e| e.has(Flag::Allocate) && e.conditionals().next().is_none())
}

fn registers(a: &FnAnnot, arg: &str) -> bool {
    match &a.kind {
        FnAnnotKind::RuntimeCall(Expr {
            kind: ExprKind::Call { func, args },
            ..
        }) => {
            func.name == "register_buf"
                && matches!(args.get(2), Some(Expr { kind: ExprKind::Name { name, .. }, .. }) if name.name == arg)
        }
        FnAnnotKind::If {
            then, otherwise, ..
        } => then
            .iter()
            .chain(otherwise.iter())
            .any(|a| registers(a, arg)),
        _ => false,
    }
}

fn mode_kw(m: CallMode) -> &'static str {
    match m {
        CallMode::Sync => "sync",
        CallMode::Async => "async",
    }
}

fn dir_kw(d: Direction) -> &'static str {
    match d {
        Direction::In => "in",
        Direction::Out => "out",
        Direction::InOut => "inout",
    }
}

fn lifetime_kw(l: Lifetime) -> &'static str {
    match l {
        Lifetime::Call => "lifetime_call",
        Lifetime::Manual => "lifetime_manual",
        Lifetime::Static => "lifetime_static",
    }
}
