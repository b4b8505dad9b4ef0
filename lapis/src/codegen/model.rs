//! What each argument of each function means for code generation: the
//! annotations of a checked function, reduced to one plan per argument.

use crate::ast::{
    Annots, ArgAnnotKind, ArgTarget, Direction, ExprKind, Flag, FnAnnotKind, Function, Lifetime,
};
use crate::types::Ty;
use crate::{Expr, Spec};

use super::{CodegenError, unsupported};

/// How many elements a buffer has.
#[derive(Debug, Clone)]
pub(crate) enum Count<'a> {
    /// `buffer(expr)`.
    Expr(&'a Expr),
    /// `string`: up to and including the NUL.
    String,
    /// `zero_terminated`: up to and including the zero element.
    ZeroTerminated,
    /// No size given: one element.
    One,
    /// `must_be_null` (in an `if` branch): the pointer must be NULL.
    MustBeNull,
    /// Sizes given in `if (cond) { .. } else { .. }` branches.
    Cond(&'a Expr, Box<Count<'a>>, Box<Count<'a>>),
}

/// What a buffer holds.
#[derive(Debug, Clone)]
pub(crate) enum Content<'a> {
    /// Plain data of the pointee type.
    Plain,
    /// Handles (the pointee is a handle type). `allocate`: the call creates them.
    Handles { handle: String, allocate: bool },
    /// Plain elements of which those matching `cond` are handles (property
    /// lists with `element { if (cond) { type_cast(H); } }`).
    ElementHandles { cond: &'a Expr, handle: String },
    /// Each element is a pointer to its own buffer (`const char**`),
    /// described by the element annotations.
    Blobs { elem: &'a Annots, inner: Ty },
}

/// A pointer argument that carries data.
#[derive(Debug, Clone)]
pub(crate) struct Buffer<'a> {
    pub dir: Direction,
    pub pointee: Ty,
    pub count: Count<'a>,
    /// Conditions under which an output's words are handles of a type
    /// (conditional `type_cast(H*)`, any depth): each a path of
    /// `(condition, branch taken)`.
    pub casts: Vec<(Vec<(&'a Expr, bool)>, String)>,
    pub content: Content<'a>,
    pub maybe_handle: bool,
}

/// The plan for one C parameter.
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    /// A by-value scalar; `value` overrides it on the worker.
    Scalar { value: Option<&'a Expr> },
    /// A by-value handle.
    Handle {
        handle: String,
        retain: bool,
        release: bool,
    },
    /// A function pointer, with the index of its user-data parameter.
    Callback {
        callback: String,
        user_data: Option<usize>,
    },
    /// A pointer passed through untouched (user data).
    Opaque,
    /// A pointer that must be NULL.
    MustBeNull,
    /// Data in and/or out.
    Buffer(Buffer<'a>),
    /// `no_copy; lifetime_manual;`: space the worker keeps until a later
    /// call returns its contents.
    Deferred { size: &'a Expr, pointee: Ty },
}

/// A contextual argument: the Figure-4 pattern that collects deferred
/// buffers registered under a tracker key.
#[derive(Debug, Clone)]
pub(crate) struct Collect<'a> {
    pub name: String,
    pub tracker: String,
    pub key: &'a Expr,
    pub deallocate: bool,
}

/// The plan for a whole function.
#[derive(Debug, Clone)]
pub(crate) struct FnPlan<'a> {
    pub f: &'a Function,
    pub id: u32,
    pub args: Vec<Arg<'a>>,
    pub collects: Vec<Collect<'a>>,
    /// The return value is a handle created by the call.
    pub ret_handle: Option<String>,
    /// Index of the `error_code` parameter.
    pub error_code: Option<usize>,
}

/// Plans of every function, plus the handle kinds.
#[derive(Debug)]
pub(crate) struct Model<'a> {
    pub fns: Vec<FnPlan<'a>>,
    pub handles: Vec<String>,
}

impl<'a> Model<'a> {
    pub(crate) fn build(spec: &'a Spec) -> Result<Model<'a>, CodegenError> {
        let handles = spec.handles().map(|h| h.name.name.clone()).collect();
        let mut fns = Vec::new();
        for (id, f) in spec.functions.iter().enumerate() {
            fns.push(plan_fn(spec, f, id as u32)?);
        }
        Ok(Model { fns, handles })
    }
}

/// Every annotation item, including those inside `if` branches.
pub(crate) fn all_items(a: &Annots) -> Vec<&ArgAnnotKind> {
    let mut out = Vec::new();
    for it in &a.items {
        out.push(&it.kind);
        if let ArgAnnotKind::If {
            then, otherwise, ..
        } = &it.kind
        {
            out.extend(all_items(then));
            out.extend(all_items(otherwise));
        }
    }
    out
}

fn has_anywhere(a: &Annots, flag: Flag) -> bool {
    all_items(a)
        .iter()
        .any(|k| matches!(k, ArgAnnotKind::Flag(f) if *f == flag))
}

fn plan_fn<'a>(spec: &'a Spec, f: &'a Function, id: u32) -> Result<FnPlan<'a>, CodegenError> {
    if f.unsupported().is_some() {
        // Never sent: the guest reports it without reaching the worker.
        return Ok(FnPlan {
            f,
            id,
            args: f.params.iter().map(|_| Arg::Opaque).collect(),
            collects: Vec::new(),
            ret_handle: None,
            error_code: f
                .error_code()
                .and_then(|b| f.params.iter().position(|p| p.name.name == b.name.name)),
        });
    }
    const RUST_KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn",
        "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
        "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
        "where", "while", "async", "await", "dyn", "gen", "box", "yield", "try",
    ];
    for p in &f.params {
        if RUST_KEYWORDS.contains(&p.name.name.as_str()) {
            return Err(unsupported(
                spec,
                p.name.span,
                format!(
                    "a parameter named `{}` (a Rust keyword; rename it)",
                    p.name.name
                ),
            ));
        }
    }
    let mut args = Vec::new();
    // Parameters named as some callback's user data.
    let mut user_data = vec![None; f.params.len()];
    for b in f.arguments() {
        if let (Some(Some(u)), Some(ArgTarget::Param(i))) = (b.annots.callback(), b.target)
            && let Some(j) = f.params.iter().position(|p| p.name.name == u.name)
        {
            user_data[j] = Some(i);
        }
    }
    for (i, p) in f.params.iter().enumerate() {
        let ty = p.ty.ty();
        let block = f.argument(&p.name.name).map(|b| &b.annots);
        static EMPTY: Annots = Annots {
            items: Vec::new(),
            span: crate::Span { start: 0, end: 0 },
        };
        let a = block.unwrap_or(&EMPTY);
        let plan = if let Some(h) = ty.strip_alias().handle() {
            Arg::Handle {
                handle: h.to_string(),
                retain: a.has(Flag::Retain),
                release: a.has(Flag::Deallocate),
            }
        } else if let Some(cb) = ty.strip_alias().callback() {
            let ud = a
                .callback()
                .flatten()
                .and_then(|u| f.params.iter().position(|p| p.name.name == u.name));
            Arg::Callback {
                callback: cb.to_string(),
                user_data: ud,
            }
        } else if !ty.strip_alias().is_pointer() {
            let value = a.items.iter().find_map(|it| match &it.kind {
                ArgAnnotKind::Value(e) => Some(e),
                _ => None,
            });
            Arg::Scalar { value }
        } else if user_data[i].is_some() || a.has(Flag::Opaque) {
            Arg::Opaque
        } else if a.has(Flag::MustBeNull) {
            Arg::MustBeNull
        } else if a.has(Flag::NoCopy) && a.lifetime() == Lifetime::Manual {
            let size = a
                .buffer()
                .ok_or_else(|| unsupported(spec, p.span, "a deferred buffer without a size"))?;
            Arg::Deferred {
                size,
                pointee: ty.strip_alias().pointee().cloned().unwrap_or(Ty::Void),
            }
        } else {
            Arg::Buffer(plan_buffer(spec, p.span, ty, a)?)
        };
        args.push(plan);
    }
    let mut collects = Vec::new();
    for c in f.contextual_args() {
        let ExprKind::Call { func, args: cargs } = &c.value.kind else {
            return Err(unsupported(
                spec,
                c.value.span,
                "a contextual argument other than get_bufs(..)",
            ));
        };
        if func.name != "get_bufs" || cargs.len() != 2 {
            return Err(unsupported(
                spec,
                c.value.span,
                "a contextual argument other than get_bufs(..)",
            ));
        }
        let tracker = match &cargs[0].kind {
            ExprKind::Name { name, .. } => name.name.clone(),
            _ => return Err(unsupported(spec, cargs[0].span, "a computed tracker")),
        };
        let deallocate = f
            .argument(&c.name.name)
            .and_then(|b| b.annots.element())
            .is_some_and(|e| has_anywhere(e, Flag::Deallocate));
        collects.push(Collect {
            name: c.name.name.clone(),
            tracker,
            key: &cargs[1],
            deallocate,
        });
    }
    let ret_handle = f.ret.ty().strip_alias().handle().map(str::to_string);
    let error_code = f
        .error_code()
        .and_then(|b| f.params.iter().position(|p| p.name.name == b.name.name));
    for a in &f.annots {
        if let FnAnnotKind::RuntimeCall(e) = &a.kind
            && let ExprKind::Call { func, .. } = &e.kind
            && !matches!(func.name.as_str(), "register_buf" | "unregister_buf")
        {
            return Err(unsupported(
                spec,
                e.span,
                format!("the runtime statement {}", func.name),
            ));
        }
    }
    Ok(FnPlan {
        f,
        id,
        args,
        collects,
        ret_handle,
        error_code,
    })
}

/// The size written unconditionally in `a`, if any.
fn unconditional_count(a: &Annots) -> Option<Count<'_>> {
    if let Some(e) = a.buffer() {
        Some(Count::Expr(e))
    } else if a.has(Flag::String) {
        Some(Count::String)
    } else if a.has(Flag::ZeroTerminated) {
        Some(Count::ZeroTerminated)
    } else if a.has(Flag::MustBeNull) {
        Some(Count::MustBeNull)
    } else {
        None
    }
}

/// Whether `a` says anything about a size, here or in a branch.
fn sizes_anything(a: &Annots) -> bool {
    unconditional_count(a).is_some()
        || a.conditionals()
            .any(|(_, t, e)| sizes_anything(t) || sizes_anything(e))
}

/// The size of a buffer from its annotations: what is written
/// unconditionally (else `inherited`), refined by the first `if` whose
/// branches say something about the size (a branch that says nothing keeps
/// the size from outside it).
fn count_of<'a>(a: &'a Annots, inherited: Count<'a>) -> Count<'a> {
    let base = unconditional_count(a).unwrap_or(inherited);
    for (cond, then, otherwise) in a.conditionals() {
        if sizes_anything(then) || sizes_anything(otherwise) {
            return Count::Cond(
                cond,
                Box::new(count_of(then, base.clone())),
                Box::new(count_of(otherwise, base)),
            );
        }
    }
    base
}

/// The direction of a buffer: written unconditionally, or the union of
/// the directions its branches give.
fn direction_of(a: &Annots) -> Option<Direction> {
    if let Some(d) = a.direction() {
        return Some(d);
    }
    let mut found: Option<Direction> = None;
    for (_, then, otherwise) in a.conditionals() {
        for d in [direction_of(then), direction_of(otherwise)]
            .into_iter()
            .flatten()
        {
            found = Some(match (found, d) {
                (None, d) => d,
                (Some(x), y) if x == y => x,
                _ => Direction::InOut,
            });
        }
    }
    found
}

fn plan_buffer<'a>(
    spec: &'a Spec,
    span: crate::Span,
    ty: &Ty,
    a: &'a Annots,
) -> Result<Buffer<'a>, CodegenError> {
    let declared = ty.strip_alias().pointee().cloned().unwrap_or(Ty::Void);
    let dir = direction_of(a).unwrap_or(Direction::In);
    let count = count_of(a, Count::One);
    // `buffer(n)` counts elements of the declared pointee; without it, a
    // `void*` cast to `T*` is one `T`.
    let pointee = match (a.buffer(), declared.strip_alias().is_void(), a.type_cast()) {
        (None, true, Some(t)) => t
            .ty()
            .strip_alias()
            .pointee()
            .cloned()
            .unwrap_or(declared.clone()),
        _ => declared.clone(),
    };
    let maybe_handle = a.has(Flag::MaybeHandle);
    let casts: Vec<(Vec<(&Expr, bool)>, String)> = a
        .type_casts()
        .into_iter()
        .filter(|(path, _)| !path.is_empty())
        .filter_map(|(path, t)| {
            let h = t
                .ty()
                .strip_alias()
                .pointee()?
                .strip_alias()
                .handle()?
                .to_string();
            Some((path, h))
        })
        .collect();
    let content = if let Some(h) = pointee.strip_alias().handle() {
        let allocate =
            a.element().is_some_and(|e| has_anywhere(e, Flag::Allocate)) || a.has(Flag::Allocate);
        Content::Handles {
            handle: h.to_string(),
            allocate,
        }
    } else if pointee.strip_alias().is_pointer() {
        let elem = a.element().ok_or_else(|| {
            unsupported(spec, span, "a buffer of pointers without an element block")
        })?;
        let inner = pointee.strip_alias().pointee().cloned().unwrap_or(Ty::Void);
        Content::Blobs { elem, inner }
    } else if let Some(e) = a.element() {
        // Elements that are handles under a condition (property lists).
        let mut found = None;
        for (cond, then, _) in e.conditionals() {
            if let Some(t) = then.type_cast()
                && let Some(h) = t.ty().strip_alias().handle()
            {
                found = Some((cond, h.to_string()));
            }
        }
        match found {
            Some((cond, handle)) => Content::ElementHandles { cond, handle },
            None => Content::Plain,
        }
    } else {
        Content::Plain
    };
    Ok(Buffer {
        dir,
        pointee,
        count,
        casts,
        content,
        maybe_handle,
    })
}

/// The callback declarations, in order: their index is the callback kind.
pub(crate) fn callbacks(spec: &Spec) -> Vec<&crate::ast::CallbackDecl> {
    spec.decls
        .iter()
        .filter_map(|d| match d {
            crate::Decl::Callback(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// The index of a callback's user-data parameter: the one marked `opaque`,
/// else the last pointer.
pub(crate) fn user_data_param(cb: &crate::ast::CallbackDecl) -> Option<usize> {
    let sig = &cb.signature;
    sig.params
        .iter()
        .position(|p| {
            sig.argument(&p.name.name)
                .is_some_and(|b| b.annots.has(Flag::Opaque))
        })
        .or_else(|| {
            sig.params
                .iter()
                .rposition(|p| p.ty.ty().strip_alias().is_pointer())
        })
}

/// How a callback argument travels from the worker to the guest.
pub(crate) enum CbArg<'a> {
    /// The user data (not sent; the guest supplies its own).
    UserData,
    /// A handle, sent as the guest's id.
    Handle(String),
    /// A by-value scalar.
    Scalar,
    /// A NUL-terminated string.
    String,
    /// A buffer of `expr` elements.
    Buffer(&'a Expr, Ty),
    /// Anything else: sent as NULL.
    Null,
}

/// The plan of each parameter of a callback.
pub(crate) fn callback_args(cb: &crate::ast::CallbackDecl) -> Vec<CbArg<'_>> {
    let sig = &cb.signature;
    let ud = user_data_param(cb);
    sig.params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let t = p.ty.ty().strip_alias();
            let a = sig.argument(&p.name.name).map(|b| &b.annots);
            if Some(i) == ud {
                CbArg::UserData
            } else if let Some(h) = t.handle() {
                CbArg::Handle(h.to_string())
            } else if !t.is_pointer() {
                CbArg::Scalar
            } else if a.is_some_and(|a| a.has(Flag::String)) {
                CbArg::String
            } else if let Some(e) = a.and_then(|a| a.buffer()) {
                CbArg::Buffer(e, t.pointee().cloned().unwrap_or(Ty::Void))
            } else {
                CbArg::Null
            }
        })
        .collect()
}
