//! Name and type resolution: the declarations of a specification, as
//! expressions and the checks see them.

use std::collections::{HashMap, HashSet};

use crate::ast::*;
use crate::diag::{Diagnostic, Diagnostics};
use crate::parser::suggest;
use crate::types::{ExprType, Scalar, Ty};

/// The declarations of a specification, resolved, as seen by expressions.
pub(crate) struct Env {
    /// Named types (aliases, handles, enums, structs, callbacks).
    pub types: HashMap<String, Ty>,
    /// Declared type names whose resolution failed (errors already reported).
    bad_types: HashSet<String>,
    /// Constants and enum variants.
    pub consts: HashMap<String, i128>,
    /// Declared trackers.
    pub trackers: HashSet<String>,
    /// Declared resources.
    pub resources: HashSet<String>,
    /// Metadata fields per handle type.
    pub metadata: HashMap<String, Vec<(String, ExprType)>>,
}

pub(super) fn dup_error(what: &str, name: &Ident, first: Span) -> Diagnostic {
    Diagnostic::error(name.span, format!("duplicate {what} `{}`", name.name))
        .with_label("declared again here")
        .with_secondary(first, "first declared here")
}

impl Env {
    /// Collects and resolves the declarations, reporting duplicates and
    /// alias cycles. Unknown types are reported later, by [`check`].
    pub(crate) fn build(file: &SpecFile, diags: &mut Diagnostics) -> Env {
        let mut env = Env {
            types: HashMap::new(),
            bad_types: HashSet::new(),
            consts: HashMap::new(),
            trackers: HashSet::new(),
            resources: HashSet::new(),
            metadata: HashMap::new(),
        };
        let mut type_ns: HashMap<String, Span> = HashMap::new();
        let mut value_ns: HashMap<String, Span> = HashMap::new();
        let mut aliases: HashMap<String, &TypeAlias> = HashMap::new();
        let mut error_values: HashMap<String, Span> = HashMap::new();
        let add =
            |ns: &mut HashMap<String, Span>, what: &str, n: &Ident, diags: &mut Diagnostics| {
                if let Some(first) = ns.get(&n.name) {
                    diags.push(dup_error(what, n, *first));
                    false
                } else {
                    ns.insert(n.name.clone(), n.span);
                    true
                }
            };
        for d in &file.decls {
            match d {
                Decl::Type(_)
                | Decl::Handle(_)
                | Decl::Enum(_)
                | Decl::Struct(_)
                | Decl::Callback(_) => {
                    let n = d.name();
                    if Scalar::from_name(&n.name).is_some() {
                        diags.push(
                            Diagnostic::error(n.span, format!("`{}` is a built-in type", n.name))
                                .with_label("cannot be redeclared"),
                        );
                        continue;
                    }
                    if !add(&mut type_ns, "type", n, diags) {
                        continue;
                    }
                    match d {
                        Decl::Type(a) => {
                            aliases.insert(n.name.clone(), a);
                        }
                        Decl::Handle(h) => {
                            env.types
                                .insert(h.name.name.clone(), Ty::Handle(h.name.name.clone()));
                        }
                        Decl::Struct(s) => {
                            env.types
                                .insert(s.name.name.clone(), Ty::Struct(s.name.name.clone()));
                        }
                        Decl::Callback(c) => {
                            env.types
                                .insert(c.name.name.clone(), Ty::Callback(c.name.name.clone()));
                        }
                        Decl::Enum(e) => {
                            for v in &e.variants {
                                if add(&mut value_ns, "constant", &v.name, diags) {
                                    env.consts.insert(v.name.name.clone(), v.value);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Decl::Const(c) => {
                    if add(&mut value_ns, "constant", &c.name, diags) {
                        env.consts.insert(c.name.name.clone(), c.value);
                    }
                }
                Decl::Tracker(t) => {
                    if add(&mut value_ns, "name", t, diags) {
                        env.trackers.insert(t.name.clone());
                    }
                }
                Decl::Resource(r) => {
                    if add(&mut value_ns, "name", r, diags) {
                        env.resources.insert(r.name.clone());
                    }
                }
                Decl::Metadata(_) => {}
                Decl::ErrorValue(e) => {
                    if !crate::ast::ERROR_VALUE_KINDS.contains(&e.kind.name.as_str()) {
                        diags.push(
                            Diagnostic::error(
                                e.kind.span,
                                format!("unknown error value kind `{}`", e.kind.name),
                            )
                            .with_label("not an error value kind")
                            .with_note(format!(
                                "the kinds are: {}",
                                crate::ast::ERROR_VALUE_KINDS.join(", ")
                            )),
                        );
                    } else {
                        add(&mut error_values, "error value", &e.kind, diags);
                    }
                }
            }
        }
        // Aliases may refer to each other in any order; resolve recursively.
        // In declaration order, so that diagnostics are deterministic.
        let names: Vec<String> = file
            .decls
            .iter()
            .filter_map(|d| match d {
                Decl::Type(a) if aliases.contains_key(&a.name.name) => Some(a.name.name.clone()),
                _ => None,
            })
            .collect();
        for n in names {
            let mut stack = Vec::new();
            env.resolve_alias(&n, &aliases, &mut stack, diags);
        }
        // Enums need their representation, which may be an alias.
        for d in &file.decls {
            if let Decl::Enum(e) = d {
                match env.resolve_quiet(&e.repr).and_then(|t| t.scalar()) {
                    Some(s) if s.is_integer() => {
                        env.types.insert(
                            e.name.name.clone(),
                            Ty::Enum {
                                name: e.name.name.clone(),
                                repr: s,
                            },
                        );
                    }
                    _ => {
                        env.bad_types.insert(e.name.name.clone());
                    }
                }
            }
        }
        // Metadata fields.
        let mut seen_meta: HashMap<String, Span> = HashMap::new();
        for d in &file.decls {
            if let Decl::Metadata(m) = d {
                if let Some(first) = seen_meta.get(&m.handle.name) {
                    diags.push(dup_error("metadata declaration for", &m.handle, *first));
                    continue;
                }
                seen_meta.insert(m.handle.name.clone(), m.handle.span);
                let fields = m
                    .fields
                    .iter()
                    .filter_map(|f| {
                        let t = env.resolve_quiet(&f.ty)?.expr_type();
                        let t = if f.array.is_some() {
                            ExprType::List(Box::new(t))
                        } else {
                            t
                        };
                        Some((f.name.name.clone(), t))
                    })
                    .collect();
                env.metadata.insert(m.handle.name.clone(), fields);
            }
        }
        env
    }

    fn resolve_alias(
        &mut self,
        name: &str,
        aliases: &HashMap<String, &TypeAlias>,
        stack: &mut Vec<String>,
        diags: &mut Diagnostics,
    ) -> Option<Ty> {
        if let Some(t) = self.types.get(name) {
            return Some(t.clone());
        }
        if self.bad_types.contains(name) {
            return None;
        }
        let alias = aliases.get(name)?;
        if stack.iter().any(|s| s == name) {
            diags.push(
                Diagnostic::error(
                    alias.name.span,
                    format!("type alias `{name}` refers to itself"),
                )
                .with_note(format!("cycle: {} -> {name}", stack.join(" -> "))),
            );
            self.bad_types.insert(name.to_string());
            return None;
        }
        stack.push(name.to_string());
        let base = &alias.target.base.name;
        let base_ty = if base == "void" {
            Some(Ty::Void)
        } else if let Some(s) = Scalar::from_name(base) {
            Some(Ty::Scalar(s))
        } else if aliases.contains_key(base) {
            self.resolve_alias(base, aliases, stack, diags)
        } else {
            self.types.get(base).cloned()
        };
        stack.pop();
        match base_ty {
            Some(b) => {
                let t = Ty::Alias {
                    name: name.to_string(),
                    target: Box::new(wrap_pointers(b, &alias.target)),
                };
                self.types.insert(name.to_string(), t.clone());
                Some(t)
            }
            None => {
                self.bad_types.insert(name.to_string());
                None
            }
        }
    }

    fn base(&self, name: &str) -> Option<Ty> {
        if name == "void" {
            Some(Ty::Void)
        } else if let Some(s) = Scalar::from_name(name) {
            Some(Ty::Scalar(s))
        } else {
            self.types.get(name).cloned()
        }
    }

    /// Resolves a type without reporting errors.
    pub(crate) fn resolve_quiet(&self, t: &TypeRef) -> Option<Ty> {
        Some(wrap_pointers(self.base(&t.base.name)?, t))
    }

    /// Resolves a written type, stores the result in it, and reports an
    /// unknown type.
    pub(crate) fn resolve(&self, t: &mut TypeRef, diags: &mut Diagnostics) -> Option<Ty> {
        if let Some(ty) = self.resolve_quiet(t) {
            t.resolved = Some(ty.clone());
            return Some(ty);
        }
        if self.bad_types.contains(&t.base.name) {
            return None;
        }
        let mut d = Diagnostic::error(t.base.span, format!("unknown type `{}`", t.base.name))
            .with_label("not declared");
        let mut names: Vec<&str> = self.types.keys().map(String::as_str).collect();
        names.sort_unstable();
        let builtins = [
            "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64", "usize", "isize",
            "bool", "char", "void",
        ];
        if let Some(s) = suggest(&t.base.name, names.iter().chain(builtins.iter())) {
            d = d.with_note(format!("help: did you mean `{s}`?"));
        } else {
            d = d.with_note(format!(
                "help: declare it, e.g. `type {} = u32;` or `handle {};`",
                t.base.name, t.base.name
            ));
        }
        diags.push(d);
        None
    }
}

fn wrap_pointers(base: Ty, t: &TypeRef) -> Ty {
    let mut ty = base;
    let mut pointee_const = t.base_const;
    for &c in &t.pointers {
        ty = Ty::Pointer {
            pointee: Box::new(ty),
            pointee_const,
        };
        pointee_const = c;
    }
    ty
}
