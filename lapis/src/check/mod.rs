//! Semantic checks: name resolution, type resolution, and the rules that
//! make a specification complete and consistent enough to generate code
//! from. All errors are collected; checking never stops at the first one.

//!
//! [`env`] resolves the declarations (names, types, constants); this
//! module checks each declaration; [`function`] checks functions and their
//! annotations.

mod env;
mod function;

use std::collections::HashMap;

use crate::ast::*;
use crate::diag::{Diagnostic, Diagnostics};
use crate::expr::{Scope, check_expr};
use crate::types::{Scalar, Ty};

pub(crate) use env::Env;
use env::dup_error;
use function::FnChecker;

/// Checks a parsed file, resolving names and types in place. All problems
/// are added to `diags`.
pub(crate) fn check(file: &mut SpecFile, diags: &mut Diagnostics) {
    let env = Env::build(file, diags);
    for d in &mut file.decls {
        check_decl(d, &env, diags);
    }
    let mut seen: HashMap<String, Span> = HashMap::new();
    for f in &mut file.functions {
        if let Some(first) = seen.get(&f.name.name) {
            diags.push(
                Diagnostic::error(f.name.span, format!("duplicate function `{}`", f.name.name))
                    .with_label("defined again here")
                    .with_secondary(*first, "first defined here"),
            );
        } else {
            seen.insert(f.name.name.clone(), f.name.span);
        }
        FnChecker::new(&env, diags, false).function(f);
    }
}

fn check_decl(d: &mut Decl, env: &Env, diags: &mut Diagnostics) {
    match d {
        Decl::Type(a) => {
            env.resolve(&mut a.target, diags);
        }
        Decl::Const(c) => {
            if let Some(t) = env.resolve(&mut c.ty, diags) {
                check_int_value(&c.name, c.value, &t, c.ty.span, diags);
            }
        }
        Decl::Enum(e) => {
            if let Some(t) = env.resolve(&mut e.repr, diags) {
                if !t.is_integer() {
                    diags.push(
                        Diagnostic::error(
                            e.repr.span,
                            format!(
                                "enum `{}` must have an integer underlying type, found `{t}`",
                                e.name.name
                            ),
                        )
                        .with_label("not an integer type"),
                    );
                } else {
                    for v in &e.variants {
                        check_int_value(&v.name, v.value, &t, e.repr.span, diags);
                    }
                }
            }
        }
        Decl::Struct(s) => {
            let mut seen: HashMap<String, Span> = HashMap::new();
            for f in &mut s.fields {
                if let Some(first) = seen.get(&f.name.name) {
                    diags.push(dup_error("field", &f.name, *first));
                }
                seen.insert(f.name.name.clone(), f.name.span);
                let t = env.resolve(&mut f.ty, diags);
                if t.is_some_and(|t| t.is_void()) {
                    diags.push(Diagnostic::error(
                        f.ty.span,
                        format!("field `{}` cannot have type `void`", f.name.name),
                    ));
                }
            }
        }
        Decl::Metadata(m) => {
            if env.types.get(&m.handle.name).and_then(Ty::handle).is_none() {
                diags.push(
                    Diagnostic::error(
                        m.handle.span,
                        format!(
                            "metadata declared for `{}`, which is not a handle type",
                            m.handle.name
                        ),
                    )
                    .with_note(
                        "help: metadata is attached to objects declared with `handle NAME;`",
                    ),
                );
            }
            for f in &mut m.fields {
                let t = env.resolve(&mut f.ty, diags);
                if let Some(t) = t.filter(|t| t.scalar().is_none()) {
                    diags.push(Diagnostic::error(
                        f.ty.span,
                        format!(
                            "metadata field `{}` must have a scalar type, found `{t}`",
                            f.name.name
                        ),
                    ));
                }
            }
        }
        Decl::Callback(c) => {
            FnChecker::new(env, diags, true).function(&mut c.signature);
        }
        Decl::Handle(h) => {
            if let Some(e) = &mut h.invalid {
                check_invalid_handle_error(&h.name, e, env, diags);
            }
            let what = format!("a value of `{}` passed as itself", h.name.name);
            let example = format!("handle {} = ERROR passes(0);", h.name.name);
            for e in &mut h.passes {
                check_const_int(&what, &example, e, env, diags);
            }
        }
        Decl::Resource(_) | Decl::Tracker(_) => {}
        Decl::ErrorValue(v) => {
            let what = format!("error value `{}`", v.kind.name);
            check_const_int(
                &what,
                "error_value transport = CL_OUT_OF_RESOURCES;",
                &mut v.value,
                env,
                diags,
            );
        }
    }
}

/// `handle NAME = EXPR;`: `EXPR` must be an integer constant expression.
fn check_invalid_handle_error(name: &Ident, e: &mut Expr, env: &Env, diags: &mut Diagnostics) {
    let what = format!("the invalid-handle error of `{}`", name.name);
    let example = format!("handle {} = CL_INVALID_MEM_OBJECT;", name.name);
    check_const_int(&what, &example, e, env, diags);
}

/// `EXPR` (which gives `what`) must be an integer constant expression;
/// `example` shows a good one.
fn check_const_int(what: &str, example: &str, e: &mut Expr, env: &Env, diags: &mut Diagnostics) {
    let scope = Scope {
        env,
        args: &[],
        in_element: false,
    };
    let Some(t) = check_expr(e, &scope, diags) else {
        return;
    };
    if !t.is_int() {
        diags.push(
            Diagnostic::error(e.span, format!("{what} must be an integer, found {t}"))
                .with_label("not an integer")
                .with_note(format!(
                    "help: name the driver's error code, e.g. `{example}`"
                )),
        );
    } else if e.const_value().is_none() {
        diags.push(
            Diagnostic::error(e.span, format!("{what} must be a constant"))
                .with_label("not a constant expression")
                .with_note(
                    "only literals, constants, enum variants and arithmetic on them are constant",
                ),
        );
    }
}

fn check_int_value(name: &Ident, value: i128, t: &Ty, ty_span: Span, diags: &mut Diagnostics) {
    match t.scalar().and_then(Scalar::int_range) {
        None => diags.push(
            Diagnostic::error(
                ty_span,
                format!(
                    "constant `{}` must have an integer type, found `{t}`",
                    name.name
                ),
            )
            .with_label("not an integer type"),
        ),
        Some((lo, hi)) if value < lo || value > hi => diags.push(
            Diagnostic::error(
                name.span,
                format!("value {value} of `{}` does not fit in `{t}`", name.name),
            )
            .with_label(format!("`{t}` holds {lo}..={hi}")),
        ),
        Some(_) => {}
    }
}
