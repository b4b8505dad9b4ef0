//! The expression type checker.
//!
//! Expressions appear in `buffer(..)`, `success(..)`, `consumes_rc(..)`,
//! `if (..)`, `contextual_argument` values and runtime calls. Checking
//! resolves every name ([`NameRef`]) and records every sub-expression's
//! [`ExprType`] in the AST.

use crate::ast::{BinaryOp, Expr, ExprKind, NameRef, UnaryOp};
use crate::check::Env;
use crate::diag::{Diagnostic, Diagnostics};
use crate::parser::suggest;
use crate::types::{ExprType, RUNTIME_FUNCTIONS, RtParam, Ty, runtime_fn};

/// The names visible to an expression.
pub(crate) struct Scope<'a> {
    /// Declarations of the whole spec.
    pub env: &'a Env,
    /// Parameters and contextual arguments of the enclosing function.
    pub args: &'a [(String, Ty, NameRef)],
    /// Whether the expression is inside `element { ... }` (enables `index`).
    pub in_element: bool,
}

impl Scope<'_> {
    fn arg(&self, name: &str) -> Option<&(String, Ty, NameRef)> {
        self.args.iter().find(|(n, _, _)| n == name)
    }
}

fn type_err(diags: &mut Diagnostics, e: &Expr, msg: String, label: &str) -> Option<ExprType> {
    diags.push(Diagnostic::error(e.span, msg).with_label(label.to_string()));
    None
}

/// Checks that `e` is an integer (sizes, counts, amounts).
pub(crate) fn expect_int(e: &mut Expr, scope: &Scope<'_>, diags: &mut Diagnostics, what: &str) {
    let Some(t) = check_expr(e, scope, diags) else {
        return;
    };
    if !t.is_int() {
        let mut d = Diagnostic::error(e.span, format!("{what} must be an integer, found {t}"))
            .with_label(format!("this is {}", article(&t)));
        if t == ExprType::Bool {
            d = d.with_note("help: use `cond ? a : b` to turn a condition into a number");
        }
        diags.push(d);
    }
}

/// Checks that `e` is a boolean (conditions).
pub(crate) fn expect_bool(e: &mut Expr, scope: &Scope<'_>, diags: &mut Diagnostics, what: &str) {
    let Some(t) = check_expr(e, scope, diags) else {
        return;
    };
    if t != ExprType::Bool {
        let mut d = Diagnostic::error(e.span, format!("{what} must be a bool, found {t}"))
            .with_label(format!("this is {}", article(&t)));
        if matches!(
            t,
            ExprType::Int | ExprType::Pointer(_) | ExprType::Handle(_)
        ) {
            d = d.with_note("help: compare explicitly, e.g. `x != 0` or `p != NULL`");
        }
        diags.push(d);
    }
}

fn article(t: &ExprType) -> String {
    match t {
        ExprType::Int => "an integer".into(),
        ExprType::Handle(_) => format!("a {t}"),
        ExprType::Void => "void".into(),
        _ => format!("a {t}"),
    }
}

/// Type-checks an expression, resolving names and storing types in the AST.
/// Returns `None` when an error was reported (so callers do not cascade).
pub(crate) fn check_expr(
    e: &mut Expr,
    scope: &Scope<'_>,
    diags: &mut Diagnostics,
) -> Option<ExprType> {
    let ty = infer(e, scope, diags)?;
    e.ty = Some(ty.clone());
    Some(ty)
}

fn infer(e: &mut Expr, scope: &Scope<'_>, diags: &mut Diagnostics) -> Option<ExprType> {
    let span = e.span;
    match &mut e.kind {
        ExprKind::Int(_) => Some(ExprType::Int),
        ExprKind::Bool(_) => Some(ExprType::Bool),
        ExprKind::Null => Some(ExprType::Pointer(None)),
        ExprKind::Name { name, resolved } => {
            let n = name.name.as_str();
            let (r, t) = if n == "index" && scope.in_element {
                (NameRef::Index, ExprType::Int)
            } else if let Some((_, ty, r)) = scope.arg(n) {
                (r.clone(), ty.expr_type())
            } else if n == "index" {
                diags.push(
                    Diagnostic::error(span, "`index` used outside `element { ... }`")
                        .with_label("not inside an element block")
                        .with_note(
                            "`index` is the position of the current element and exists only \
                             inside `element { ... }`",
                        ),
                );
                return None;
            } else if let Some(v) = scope.env.consts.get(n) {
                (NameRef::Const(*v), ExprType::Int)
            } else if scope.env.trackers.contains(n) {
                (NameRef::Tracker, ExprType::Tracker)
            } else if scope.env.resources.contains(n) {
                (NameRef::Resource, ExprType::Resource)
            } else {
                let mut d = Diagnostic::error(span, format!("unknown name `{n}`"))
                    .with_label("not an argument, constant, tracker or resource");
                let names: Vec<&str> = scope
                    .args
                    .iter()
                    .map(|(a, _, _)| a.as_str())
                    .chain(scope.env.consts.keys().map(String::as_str))
                    .chain(scope.env.trackers.iter().map(String::as_str))
                    .collect();
                if let Some(s) = suggest(n, names.iter()) {
                    d = d.with_note(format!("help: did you mean `{s}`?"));
                }
                diags.push(d);
                return None;
            };
            *resolved = Some(r);
            Some(t)
        }
        ExprKind::SizeOf(t) => {
            let ty = scope.env.resolve(t, diags)?;
            if ty.is_void() {
                diags.push(Diagnostic::error(t.span, "`sizeof(void)` is not a size"));
                return None;
            }
            Some(ExprType::Int)
        }
        ExprKind::Unary(op, inner) => {
            let t = check_expr(inner, scope, diags)?;
            match (op, &t) {
                (UnaryOp::Not, ExprType::Bool) => Some(ExprType::Bool),
                (UnaryOp::Neg, ExprType::Int | ExprType::Float) => Some(t),
                (UnaryOp::Not, _) => type_err(
                    diags,
                    inner,
                    format!("`!` needs a bool operand, found {t}"),
                    "not a bool",
                ),
                (UnaryOp::Neg, _) => type_err(
                    diags,
                    inner,
                    format!("`-` needs a number, found {t}"),
                    "not a number",
                ),
            }
        }
        ExprKind::Binary(op, a, b) => {
            let op = *op;
            let ta = check_expr(a, scope, diags);
            let tb = check_expr(b, scope, diags);
            let (ta, tb) = (ta?, tb?);
            binary(op, a, &ta, b, &tb, diags)
        }
        ExprKind::Conditional(c, a, b) => {
            expect_bool(c, scope, diags, "the condition of `?:`");
            let ta = check_expr(a, scope, diags);
            let tb = check_expr(b, scope, diags);
            let (ta, tb) = (ta?, tb?);
            match (&ta, &tb) {
                _ if ta == tb => Some(ta),
                (ExprType::Pointer(_), ExprType::Pointer(None)) => Some(ta),
                (ExprType::Pointer(None), ExprType::Pointer(_)) => Some(tb),
                _ => type_err(
                    diags,
                    b,
                    format!("the branches of `?:` have different types: {ta} and {tb}"),
                    "this branch",
                ),
            }
        }
        ExprKind::Call { func, args } => {
            let Some(rf) = runtime_fn(&func.name) else {
                let names: Vec<&str> = RUNTIME_FUNCTIONS.iter().map(|f| f.name).collect();
                let mut d = Diagnostic::error(
                    func.span,
                    format!("unknown runtime function `{}`", func.name),
                )
                .with_label("not a LAPIS runtime function");
                if let Some(s) = suggest(&func.name, names.iter()) {
                    d = d.with_note(format!("help: did you mean `{s}`?"));
                }
                d = d.with_note(format!("runtime functions are: {}", names.join(", ")));
                diags.push(d);
                for a in args.iter_mut() {
                    check_expr(a, scope, diags);
                }
                return None;
            };
            if args.len() != rf.params.len() {
                diags.push(
                    Diagnostic::error(
                        span,
                        format!(
                            "`{}` takes {} arguments, found {}",
                            rf.name,
                            rf.params.len(),
                            args.len()
                        ),
                    )
                    .with_label("wrong number of arguments")
                    .with_note(format!(
                        "`{}({})`: {}",
                        rf.name,
                        rf.params
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        rf.doc
                    )),
                );
                return None;
            }
            let mut ok = true;
            for (a, p) in args.iter_mut().zip(rf.params) {
                let Some(t) = check_expr(a, scope, diags) else {
                    ok = false;
                    continue;
                };
                let fits = match p {
                    RtParam::Tracker => t == ExprType::Tracker,
                    RtParam::Key => matches!(t, ExprType::Handle(_) | ExprType::Int),
                    RtParam::Pointer => matches!(t, ExprType::Pointer(Some(_))),
                    RtParam::Int => t == ExprType::Int,
                };
                if !fits {
                    ok = false;
                    let mut d = Diagnostic::error(
                        a.span,
                        format!("argument of `{}` must be {p}, found {t}", rf.name),
                    )
                    .with_label("wrong kind of argument");
                    if *p == RtParam::Tracker {
                        d = d.with_note("help: declare it with `tracker NAME;`");
                    }
                    diags.push(d);
                }
            }
            ok.then(|| rf.result.expr_type())
        }
        ExprKind::Metadata { object, field } => {
            let Some((_, ty, _)) = scope.arg(&object.name) else {
                diags.push(
                    Diagnostic::error(object.span, format!("unknown argument `{}`", object.name))
                        .with_label("`metadata(..)` takes a handle argument"),
                );
                return None;
            };
            let Some(h) = ty.handle() else {
                diags.push(
                    Diagnostic::error(
                        object.span,
                        format!(
                            "`metadata({})`: `{}` is not a handle",
                            object.name, object.name
                        ),
                    )
                    .with_label(format!("this has type `{ty}`")),
                );
                return None;
            };
            let Some(fields) = scope.env.metadata.get(h) else {
                diags.push(
                    Diagnostic::error(
                        object.span,
                        format!("handle type `{h}` has no metadata declaration"),
                    )
                    .with_note(format!(
                        "help: declare its fields with `metadata {h} {{ TYPE field; }}`"
                    )),
                );
                return None;
            };
            match fields.iter().find(|(n, _)| *n == field.name) {
                Some((_, t)) => Some(t.clone()),
                None => {
                    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                    let mut d = Diagnostic::error(
                        field.span,
                        format!("unknown metadata field `{}` of `{h}`", field.name),
                    )
                    .with_label("no such field");
                    if let Some(s) = suggest(&field.name, names.iter()) {
                        d = d.with_note(format!("help: did you mean `{s}`?"));
                    }
                    d = d.with_note(format!("`{h}` metadata fields: {}", names.join(", ")));
                    diags.push(d);
                    None
                }
            }
        }
        ExprKind::Index(base, idx) => {
            let tb = check_expr(base, scope, diags);
            expect_int(idx, scope, diags, "an index");
            match tb? {
                ExprType::List(elem) => Some(*elem),
                ExprType::Pointer(Some(p)) if !p.is_void() => Some(p.expr_type()),
                t => type_err(
                    diags,
                    base,
                    format!("cannot index {t}"),
                    "only pointers to typed data and metadata lists can be indexed",
                ),
            }
        }
    }
}

fn binary(
    op: BinaryOp,
    a: &Expr,
    ta: &ExprType,
    b: &Expr,
    tb: &ExprType,
    diags: &mut Diagnostics,
) -> Option<ExprType> {
    use BinaryOp::*;
    let sym = op.symbol();
    let numeric = |t: &ExprType| matches!(t, ExprType::Int | ExprType::Float);
    match op {
        Add | Sub | Mul | Div | Rem | Lt | Le | Gt | Ge => {
            // Report the first operand that is not a number.
            for (e, t) in [(a, ta), (b, tb)] {
                if !numeric(t) {
                    let what = match t {
                        ExprType::Handle(_) => format!("{t} used in arithmetic"),
                        ExprType::Pointer(_) => "pointer arithmetic is not supported".into(),
                        _ => format!("`{sym}` needs numbers, found {t}"),
                    };
                    let mut d = Diagnostic::error(e.span, what)
                        .with_label(format!("this is {}", article(t)));
                    if matches!(t, ExprType::Handle(_)) {
                        d = d.with_note(
                            "handles are opaque: the worker translates them, their values mean \
                             nothing to the guest",
                        );
                    }
                    diags.push(d);
                    return None;
                }
            }
            if ta != tb {
                return type_err(
                    diags,
                    b,
                    format!("`{sym}` mixes {ta} and {tb}"),
                    "different type from the left operand",
                );
            }
            Some(if matches!(op, Lt | Le | Gt | Ge) {
                ExprType::Bool
            } else {
                ta.clone()
            })
        }
        Eq | Ne => {
            let ok = match (ta, tb) {
                (ExprType::Pointer(_), ExprType::Pointer(_)) => true,
                (ExprType::Handle(_), ExprType::Pointer(None))
                | (ExprType::Pointer(None), ExprType::Handle(_)) => true,
                (ExprType::Handle(x), ExprType::Handle(y)) => x == y,
                (ExprType::Int | ExprType::Float | ExprType::Bool, _) => ta == tb,
                _ => false,
            };
            if ok {
                Some(ExprType::Bool)
            } else {
                type_err(
                    diags,
                    b,
                    format!("cannot compare {ta} with {tb}"),
                    "incompatible operand",
                )
            }
        }
        And | Or => {
            for (e, t) in [(a, ta), (b, tb)] {
                if *t != ExprType::Bool {
                    return type_err(
                        diags,
                        e,
                        format!("`{sym}` needs bool operands, found {t}"),
                        "not a bool",
                    );
                }
            }
            Some(ExprType::Bool)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{parse, parse_expr};

    const DECLS: &str = r#"api t version "1";
        type size_t = usize;
        type cl_int = i32;
        handle CUfunction;
        handle CUstream;
        const OK: cl_int = 0;
        enum E : i32 { A = 1, B = -2 }
        tracker bufs;
        resource kernels;
        metadata CUfunction { usize fn_argc; bool fn_arg_is_handle[]; usize fn_arg_size[]; }
        struct S { u32 a; }
    "#;

    /// Type-checks `text` with arguments `n: size_t`, `f: CUfunction`,
    /// `s: CUstream`, `p: const size_t*`, `v: void*`, `flag: bool`.
    fn ty_of(text: &str, in_element: bool) -> Result<ExprType, String> {
        let file = parse("t.lapis", DECLS).expect("decls parse");
        let mut d = Diagnostics::new("t.lapis", DECLS);
        let env = Env::build(&file, &mut d);
        assert!(d.is_empty(), "{d}");
        let size_t = Ty::Alias {
            name: "size_t".into(),
            target: Box::new(Ty::Scalar(crate::types::Scalar::Usize)),
        };
        let ptr = |t: Ty| Ty::Pointer {
            pointee: Box::new(t),
            pointee_const: true,
        };
        let args = vec![
            ("n".into(), size_t.clone(), NameRef::Param(0)),
            (
                "f".into(),
                Ty::Handle("CUfunction".into()),
                NameRef::Param(1),
            ),
            ("s".into(), Ty::Handle("CUstream".into()), NameRef::Param(2)),
            ("p".into(), ptr(size_t), NameRef::Param(3)),
            ("v".into(), ptr(Ty::Void), NameRef::Param(4)),
            (
                "flag".into(),
                Ty::Scalar(crate::types::Scalar::Bool),
                NameRef::Param(5),
            ),
        ];
        let scope = Scope {
            env: &env,
            args: &args,
            in_element,
        };
        let mut e = parse_expr(text).map_err(|d| d.render())?;
        let mut diags = Diagnostics::new("<expr>", text);
        match check_expr(&mut e, &scope, &mut diags) {
            Some(t) if diags.is_empty() => Ok(t),
            _ => Err(diags
                .iter()
                .map(|d| d.message().to_string())
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }

    fn ok(text: &str) -> ExprType {
        ty_of(text, true).unwrap_or_else(|e| panic!("`{text}` failed: {e}"))
    }

    fn err(text: &str, in_element: bool) -> String {
        match ty_of(text, in_element) {
            Ok(t) => panic!("`{text}` unexpectedly typed as {t}"),
            Err(e) => e,
        }
    }

    #[test]
    fn literals_and_names() {
        assert_eq!(ok("42"), ExprType::Int);
        assert_eq!(ok("0x1Fu"), ExprType::Int);
        assert_eq!(ok("10UL"), ExprType::Int);
        assert_eq!(ok("true"), ExprType::Bool);
        assert_eq!(ok("NULL"), ExprType::Pointer(None));
        assert_eq!(ok("n"), ExprType::Int);
        assert_eq!(ok("OK"), ExprType::Int);
        assert_eq!(ok("B"), ExprType::Int);
        assert_eq!(ok("f"), ExprType::Handle("CUfunction".into()));
        assert_eq!(ok("bufs"), ExprType::Tracker);
        assert_eq!(ok("index"), ExprType::Int);
    }

    #[test]
    fn arithmetic_and_precedence() {
        assert_eq!(ok("n * sizeof(size_t) + 4 % 3 - -1"), ExprType::Int);
        assert_eq!(ok("(n + 1) / 2"), ExprType::Int);
        assert_eq!(ok("n > 0 && !flag || n == OK"), ExprType::Bool);
        assert_eq!(ok("p == NULL ? 0 : p[index]"), ExprType::Int);
        assert_eq!(ok("s != NULL"), ExprType::Bool);
    }

    #[test]
    fn parse_tree_shape() {
        let e = parse_expr("1 + 2 * 3").unwrap();
        match e.kind {
            ExprKind::Binary(BinaryOp::Add, _, r) => {
                assert!(matches!(r.kind, ExprKind::Binary(BinaryOp::Mul, _, _)))
            }
            k => panic!("unexpected {k:?}"),
        }
        let e = parse_expr("a ? b : c ? d : e").unwrap();
        match e.kind {
            ExprKind::Conditional(_, _, r) => {
                assert!(matches!(r.kind, ExprKind::Conditional(..)))
            }
            k => panic!("unexpected {k:?}"),
        }
    }

    #[test]
    fn metadata_and_runtime_calls() {
        assert_eq!(ok("metadata(f)->fn_argc"), ExprType::Int);
        assert_eq!(ok("metadata(f)->fn_arg_is_handle[index]"), ExprType::Bool);
        assert_eq!(ok("metadata(f)->fn_arg_size[index] * 2"), ExprType::Int);
        assert_eq!(ok("get_n_bufs(bufs, s)"), ExprType::Int);
        assert_eq!(ok("get_buf_size(bufs, s, index)"), ExprType::Int);
        assert_eq!(ok("get_bufs(bufs, s)"), ExprType::BufferList);
        assert_eq!(ok("register_buf(bufs, s, v, n)"), ExprType::Void);
    }

    #[test]
    fn type_errors() {
        assert!(err("f + 1", true).contains("handle `CUfunction` used in arithmetic"));
        assert!(err("v + 1", true).contains("pointer arithmetic"));
        assert!(err("flag * 2", true).contains("`*` needs numbers, found bool"));
        assert!(err("n && flag", true).contains("`&&` needs bool operands, found integer"));
        assert!(err("!n", true).contains("`!` needs a bool operand"));
        assert!(err("f == s", true).contains("cannot compare"));
        assert!(err("flag ? 1 : NULL", true).contains("different types"));
        assert!(err("n ? 1 : 2", true).contains("must be a bool"));
        assert!(err("v[0]", true).contains("cannot index"));
    }

    #[test]
    fn name_errors() {
        assert!(err("index", false).contains("`index` used outside `element"));
        assert!(err("nn + 1", true).contains("unknown name `nn`"));
        assert!(err("metadata(f)->fn_argcount", true).contains("unknown metadata field"));
        assert!(err("metadata(s)->fn_argc", true).contains("no metadata declaration"));
        assert!(err("metadata(n)->fn_argc", true).contains("is not a handle"));
        assert!(err("sizeof(nosuch)", true).contains("unknown type `nosuch`"));
    }

    #[test]
    fn runtime_call_errors() {
        assert!(err("get_nbufs(bufs, s)", true).contains("unknown runtime function `get_nbufs`"));
        assert!(err("get_n_bufs(bufs)", true).contains("takes 2 arguments, found 1"));
        assert!(err("get_n_bufs(s, s)", true).contains("must be a tracker"));
        assert!(err("register_buf(bufs, s, n, n)", true).contains("must be a pointer argument"));
        assert!(err("get_n_bufs(bufs, flag)", true).contains("handle or integer key"));
    }
}
