//! Rust renderings shared by both sides: type declarations, type names,
//! and expressions.

use std::fmt::Write;

use crate::ast::{BinaryOp, Decl, ExprKind, NameRef, UnaryOp};
use crate::types::{Scalar, Ty};
use crate::{Expr, Spec};

use super::model::Model;

/// The Rust name of a scalar.
pub(crate) fn scalar(s: Scalar) -> &'static str {
    match s {
        Scalar::Bool => "bool",
        Scalar::Char => "::std::ffi::c_char",
        other => other.name(),
    }
}

/// The Rust type for a LAPIS type (`void` as a pointee is `c_void`).
pub(crate) fn ty(t: &Ty) -> String {
    match t {
        Ty::Void => "::std::ffi::c_void".into(),
        Ty::Scalar(s) => scalar(*s).into(),
        Ty::Alias { name, .. } => name.clone(),
        Ty::Handle(n) | Ty::Struct(n) | Ty::Callback(n) => n.clone(),
        Ty::Enum { name, .. } => name.clone(),
        Ty::Pointer {
            pointee,
            pointee_const,
        } => format!(
            "{} {}",
            if *pointee_const { "*const" } else { "*mut" },
            ty(pointee)
        ),
    }
}

/// Whether a function returning `t` returns a value (not `void`).
pub(crate) fn returns_value(t: &Ty) -> bool {
    !t.is_void() || t.is_pointer()
}

/// The return type suffix of a function (` -> T`, or nothing for void).
pub(crate) fn ret(t: &Ty) -> String {
    if !returns_value(t) {
        String::new()
    } else {
        format!(" -> {}", ty(t))
    }
}

/// The size in bytes of one element of `t` (1 for `void`).
pub(crate) fn elem_size(t: &Ty) -> String {
    if t.strip_alias().is_void() {
        "1usize".into()
    } else {
        format!("::std::mem::size_of::<{}>()", ty(t))
    }
}

/// Whether `t` is a signed integer (for reading array elements).
pub(crate) fn signed(t: &Ty) -> bool {
    match t.strip_alias() {
        Ty::Scalar(s) => matches!(
            s,
            Scalar::I8 | Scalar::I16 | Scalar::I32 | Scalar::I64 | Scalar::Isize | Scalar::Char
        ),
        Ty::Enum { repr, .. } => signed(&Ty::Scalar(*repr)),
        _ => false,
    }
}

/// How a by-value scalar travels as a `u64`: (encode, decode) templates
/// with `{}` for the value / decoder expression.
pub(crate) fn scalar_wire(t: &Ty) -> (String, String) {
    let name = ty(t);
    match t.strip_alias() {
        Ty::Scalar(Scalar::F32) => (
            "({}).to_bits() as u64".into(),
            format!("f32::from_bits({{}} as u32) as {name}"),
        ),
        Ty::Scalar(Scalar::F64) => (
            "({}).to_bits()".into(),
            format!("f64::from_bits({{}}) as {name}"),
        ),
        Ty::Scalar(Scalar::Bool) => ("({}) as u64".into(), "({} != 0)".into()),
        _ => ("({}) as u64".into(), format!("({{}} as {name})")),
    }
}

/// Type declarations, constants, handle kinds and function ids.
pub(crate) fn declarations(spec: &Spec, model: &Model) -> String {
    let mut o = String::new();
    o.push_str("#[allow(unused_imports)]\nuse ::std::ffi::c_void;\n\n");
    for d in &spec.decls {
        match d {
            Decl::Type(t) => {
                let _ = writeln!(o, "pub type {} = {};", t.name.name, ty(t.target.ty()));
            }
            Decl::Handle(h) => {
                let _ = writeln!(
                    o,
                    "/// Handle type `{0}` (an opaque pointer; a guest id on the guest side).\npub type {0} = *mut c_void;",
                    h.name.name
                );
            }
            Decl::Const(c) => {
                let _ = writeln!(
                    o,
                    "pub const {}: {} = {};",
                    c.name.name,
                    ty(c.ty.ty()),
                    c.value
                );
            }
            Decl::Enum(e) => {
                let _ = writeln!(o, "pub type {} = {};", e.name.name, ty(e.repr.ty()));
                for v in &e.variants {
                    let _ = writeln!(
                        o,
                        "pub const {}: {} = {};",
                        v.name.name, e.name.name, v.value
                    );
                }
            }
            Decl::Struct(s) => {
                let _ = writeln!(
                    o,
                    "#[repr(C)]\n#[derive(Debug, Clone, Copy)]\npub struct {} {{",
                    s.name.name
                );
                for f in &s.fields {
                    let t = ty(f.ty.ty());
                    match f.array {
                        Some(Some(n)) => {
                            let _ = writeln!(o, "    pub {}: [{}; {}],", f.name.name, t, n);
                        }
                        _ => {
                            let _ = writeln!(o, "    pub {}: {},", f.name.name, t);
                        }
                    }
                }
                o.push_str("}\n");
            }
            Decl::Callback(c) => {
                let sig = &c.signature;
                let params: Vec<String> = sig.params.iter().map(|p| ty(p.ty.ty())).collect();
                let _ = writeln!(
                    o,
                    "pub type {} = Option<unsafe extern \"C\" fn({}){}>;",
                    c.name.name,
                    params.join(", "),
                    ret(sig.ret.ty())
                );
            }
            Decl::Metadata(_) | Decl::Resource(_) | Decl::Tracker(_) | Decl::ErrorValue(_) => {}
        }
    }
    o.push_str("\n/// Handle kinds, in declaration order.\n#[allow(dead_code)]\npub mod kind {\n");
    for (i, h) in model.handles.iter().enumerate() {
        let _ = writeln!(o, "    pub const {h}: u16 = {i};");
    }
    o.push_str(
        "}\n\n/// Function ids, in specification order.\n#[allow(dead_code)]\npub mod func {\n",
    );
    for p in &model.fns {
        let _ = writeln!(o, "    pub const {}: u32 = {};", p.f.name.name, p.id);
    }
    o.push_str("}\n\n/// Function names by id.\n#[allow(dead_code)]\npub const FUNCTION_NAMES: &[&str] = &[\n");
    for p in &model.fns {
        let _ = writeln!(o, "    \"{}\",", p.f.name.name);
    }
    o.push_str("];\n\n");
    o
}

/// How names are rendered in an expression.
pub(crate) trait Names {
    /// An integer (or bool) parameter / contextual argument as `i128`.
    fn value(&self, r: &NameRef, name: &str) -> String;
    /// Whether pointer parameter `name` is NULL.
    fn is_null(&self, name: &str) -> String;
    /// Element `idx` (an `i128` expression) of pointer parameter `name`.
    fn index(&self, name: &str, idx: &str) -> String;
    /// A runtime function call (`get_n_bufs(..)`), as `i128`.
    fn call(&self, func: &str, args: &[String], raw: &[&Expr]) -> String;
    /// `metadata(object)->field` or `metadata(object)->field[index]`.
    fn metadata(&self, _object: &str, _field: &str, _index: Option<String>) -> String {
        "0i128".into()
    }
}

/// Renders an integer/bool expression; integers come out as `i128`,
/// conditions as `bool`.
pub(crate) fn expr(e: &Expr, n: &dyn Names) -> String {
    match &e.kind {
        ExprKind::Int(v) => format!("{v}i128"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Null => "0i128".into(),
        ExprKind::Name { name, resolved } => match resolved {
            Some(NameRef::Const(v)) => format!("({v}i128)"),
            Some(NameRef::Index) => "(index as i128)".into(),
            Some(NameRef::Tracker | NameRef::Resource) => format!("{:?}", name.name),
            Some(r) => n.value(r, &name.name),
            None => "0i128".into(),
        },
        ExprKind::SizeOf(t) => format!("(::std::mem::size_of::<{}>() as i128)", ty(t.ty())),
        ExprKind::Unary(UnaryOp::Not, a) => format!("(!{})", cond(a, n)),
        ExprKind::Unary(UnaryOp::Neg, a) => format!("(-{})", expr(a, n)),
        ExprKind::Binary(op, a, b) => {
            // Pointer comparisons with NULL.
            fn null_side<'e>(x: &'e Expr, y: &Expr) -> Option<&'e Expr> {
                matches!(y.kind, ExprKind::Null).then_some(x)
            }
            if matches!(op, BinaryOp::Eq | BinaryOp::Ne)
                && let Some(p) = null_side(a, b).or_else(|| null_side(b, a))
                && let ExprKind::Name { name, .. } = &p.kind
            {
                let t = n.is_null(&name.name);
                return if *op == BinaryOp::Eq {
                    t
                } else {
                    format!("(!{t})")
                };
            }
            match op {
                BinaryOp::And | BinaryOp::Or => {
                    format!("({} {} {})", cond(a, n), op.symbol(), cond(b, n))
                }
                BinaryOp::Div | BinaryOp::Rem => format!(
                    "({}.checked_{}({}).unwrap_or(0))",
                    expr(a, n),
                    if *op == BinaryOp::Div { "div" } else { "rem" },
                    expr(b, n)
                ),
                BinaryOp::Mul => format!("({}.saturating_mul({}))", expr(a, n), expr(b, n)),
                BinaryOp::Add => format!("({}.saturating_add({}))", expr(a, n), expr(b, n)),
                BinaryOp::Sub => format!("({}.saturating_sub({}))", expr(a, n), expr(b, n)),
                _ => format!("({} {} {})", expr(a, n), op.symbol(), expr(b, n)),
            }
        }
        ExprKind::Conditional(c, a, b) => {
            format!(
                "(if {} {{ {} }} else {{ {} }})",
                cond(c, n),
                expr(a, n),
                expr(b, n)
            )
        }
        ExprKind::Call { func, args } => {
            let rendered: Vec<String> = args.iter().map(|a| expr(a, n)).collect();
            let raw: Vec<&Expr> = args.iter().collect();
            n.call(&func.name, &rendered, &raw)
        }
        ExprKind::Metadata { object, field } => n.metadata(&object.name, &field.name, None),
        ExprKind::Index(a, i) => match &a.kind {
            ExprKind::Name { name, .. } => n.index(&name.name, &expr(i, n)),
            ExprKind::Metadata { object, field } => {
                n.metadata(&object.name, &field.name, Some(expr(i, n)))
            }
            _ => "0i128".into(),
        },
    }
}

/// Whether `e` renders as a Rust `bool` (a comparison, a logical operator,
/// a literal, or a conditional whose branches are).
fn renders_bool(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Bool(_) | ExprKind::Unary(UnaryOp::Not, _) => true,
        ExprKind::Binary(
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::And
            | BinaryOp::Or,
            _,
            _,
        ) => true,
        ExprKind::Conditional(_, a, b) => renders_bool(a) && renders_bool(b),
        _ => false,
    }
}

/// Renders a condition as `bool`.
pub(crate) fn cond(e: &Expr, n: &dyn Names) -> String {
    let s = expr(e, n);
    if renders_bool(e) {
        s
    } else {
        format!("({s} != 0)")
    }
}

/// An `i128` expression clamped into a `usize` (negative → 0).
pub(crate) fn to_usize(e: &str) -> String {
    format!("usize::try_from({e}).unwrap_or(0)")
}
