//! Parsing: text → [`SpecFile`] (an unchecked AST).
//!
//! The pest grammar (`grammar.pest`) recognises the structure; this module
//! turns the parse tree into the typed AST and interprets annotation
//! keywords, reporting misplaced or unknown annotations as diagnostics.

use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

use crate::ast::*;
use crate::diag::{Diagnostic, Diagnostics};
use crate::types::runtime_fn;

mod grammar {
    #![allow(missing_docs)]
    /// The pest parser generated from `grammar.pest`.
    #[derive(pest_derive::Parser)]
    #[grammar = "grammar.pest"]
    pub(crate) struct LapisParser;
}
use grammar::{LapisParser, Rule};

/// Parses a specification. Returns the AST, or the syntax errors.
///
/// A pest syntax error stops parsing (one diagnostic); errors in the use of
/// annotation keywords are all collected.
pub fn parse(name: &str, text: &str) -> Result<SpecFile, Diagnostics> {
    let mut diags = Diagnostics::new(name, text);
    pest::set_error_detail(true);
    let pairs = match LapisParser::parse(Rule::file, text) {
        Ok(p) => p,
        Err(e) => {
            diags.push(syntax_error(text, &e));
            return Err(diags);
        }
    };
    let mut b = Builder { diags: &mut diags };
    let file = pairs.into_iter().next().expect("file rule");
    let spec = b.file(file);
    if diags.is_empty() {
        Ok(spec)
    } else {
        Err(diags)
    }
}

/// A friendly name for a grammar rule in "expected ..." messages.
fn rule_name(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::ident => "an identifier",
        Rule::int_lit | Rule::signed_int => "an integer",
        Rule::string => "a string",
        Rule::type_ref | Rule::type_name => "a type",
        Rule::expr | Rule::logic_or | Rule::unary | Rule::postfix => "an expression",
        Rule::function => "a declaration or function",
        Rule::param => "a parameter",
        Rule::op_or
        | Rule::op_and
        | Rule::op_eq
        | Rule::op_rel
        | Rule::op_add
        | Rule::op_mul
        | Rule::question => "an operator",
        Rule::EOI => "end of file",
        _ => return None,
    })
}

/// Converts a pest error into a diagnostic with a readable "expected" list.
fn syntax_error(text: &str, e: &pest::error::Error<Rule>) -> Diagnostic {
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<String> = Vec::new();
    if let Some(attempts) = e.parse_attempts() {
        for t in attempts.expected_tokens() {
            let raw = t.to_string();
            // Whitespace and comments may appear anywhere: not worth listing.
            if raw.trim().is_empty() || raw.starts_with("//") || raw.starts_with("/*") {
                continue;
            }
            let s = format!("`{raw}`");
            if !expected.contains(&s) && !s.contains("..") && s != "`BUILTIN_RULE`" {
                expected.push(s);
            }
        }
    }
    if let ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for r in positives {
            if let Some(n) = rule_name(*r) {
                let n = n.to_string();
                if !expected.contains(&n) {
                    expected.push(n);
                }
            }
        }
    }
    // Keep the list short and useful.
    expected.retain(|s| s != "`_`" && s != "`0x`" && s != "`0X`");
    for summary in ["an expression", "a type"] {
        if expected.iter().any(|s| s == summary) {
            expected = vec![summary.to_string()];
        }
    }
    let found = text[pos..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or("");
    let (span, found_text) = if pos >= text.len() {
        (Span::new(pos, pos), "end of file".to_string())
    } else {
        // The first character (whitespace too, which `found` leaves out:
        // a span always ends on a character boundary).
        let len = text[pos..].chars().next().map_or(1, |c| c.len_utf8());
        let tok_len = if !found.is_empty() && found.chars().all(|c| c.is_alphanumeric() || c == '_')
        {
            found.len()
        } else {
            len
        };
        (
            Span::new(pos, pos + tok_len),
            format!("`{}`", &text[pos..pos + tok_len]),
        )
    };
    // A missing `;` is best reported right after the previous token.
    if expected.len() <= 3 && expected.iter().any(|s| s == "`;`") {
        let before = text[..pos].trim_end();
        let at = before.len();
        return Diagnostic::error(
            Span::new(at, at),
            format!("expected `;`, found {found_text}"),
        )
        .with_label("expected `;` after this")
        .with_note("help: every declaration and annotation ends with `;`");
    }
    if text[pos..].starts_with("...") {
        return Diagnostic::error(Span::new(pos, pos + 3), "elided specification `...`")
            .with_label("specs must be complete");
    }
    if pos >= text.len() && expected.iter().any(|s| s == "`}`") {
        let mut d = Diagnostic::error(span, "expected `}`, found end of file")
            .with_label("the file ends here");
        if let Some(open) = unclosed_brace(text) {
            d = d.with_secondary(Span::new(open, open + 1), "this `{` is never closed");
        }
        return d;
    }
    let list = match expected.len() {
        0 => "valid syntax".to_string(),
        1 => expected[0].clone(),
        _ => {
            let (last, rest) = expected.split_last().expect("non-empty");
            format!("{} or {}", rest.join(", "), last)
        }
    };
    let mut d = Diagnostic::error(span, format!("expected {list}, found {found_text}"))
        .with_label("unexpected here");
    if expected.iter().any(|s| s == "`api`") {
        d = d.with_note("help: every specification starts with `api NAME version \"V\";`");
    }
    d
}

/// The byte offset of the innermost `{` left open at the end of `text`
/// (ignoring comments and strings).
fn unclosed_brace(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut stack = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'{' => stack.push(i),
            b'}' => {
                stack.pop();
            }
            _ => {}
        }
        i += 1;
    }
    stack.pop()
}

/// An annotation as parsed, before interpreting it as function-level or
/// argument-level.
enum Raw {
    Elided(Span),
    If {
        cond: Expr,
        then: Vec<Raw>,
        then_span: Span,
        otherwise: Vec<Raw>,
        otherwise_span: Span,
        span: Span,
    },
    Contextual(ContextualArg, Span),
    Unsupported(Option<String>, Span),
    TypeCast(TypeRef, Span),
    Return(Vec<Raw>, Span, Span),
    Generic {
        name: Ident,
        args: Option<(Vec<Expr>, Span)>,
        block: Option<(Vec<Raw>, Span)>,
        span: Span,
    },
}

impl Raw {
    fn span(&self) -> Span {
        match self {
            Raw::Elided(s)
            | Raw::Contextual(_, s)
            | Raw::Unsupported(_, s)
            | Raw::TypeCast(_, s)
            | Raw::Return(_, _, s) => *s,
            Raw::If { span, .. } | Raw::Generic { span, .. } => *span,
        }
    }
}

const FN_KEYWORDS: &[&str] = &[
    "sync",
    "async",
    "success",
    "consumes_rc",
    "require",
    "unsupported",
    "guard",
    "implement",
    "after",
    "fast_path",
    "internal",
    "argument",
    "contextual_argument",
    "return",
];

const ARG_KEYWORDS: &[&str] = &[
    "in",
    "out",
    "inout",
    "buffer",
    "no_copy",
    "lifetime_call",
    "lifetime_manual",
    "lifetime_static",
    "element",
    "type_cast",
    "string",
    "zero_terminated",
    "handle",
    "obj_record",
    "allocate",
    "deallocate",
    "nullable",
    "must_be_null",
    "opaque",
    "callback",
    "error_code",
    "retain",
    "maybe_handle",
    "key_value",
    "value",
];

fn elided_error(span: Span) -> Diagnostic {
    Diagnostic::error(span, "elided specification `...`")
        .with_label("specs must be complete")
        .with_note(
            "the paper elides parts of its figures with `...`; a LAPIS spec must say \
             everything the generated code needs",
        )
        .with_note(
            "help: describe the argument fully, e.g. `in; buffer(n);`, or write \
             `must_be_null;` if only NULL is supported",
        )
}

struct Builder<'d> {
    diags: &'d mut Diagnostics,
}

fn ident(p: Pair<'_, Rule>) -> Ident {
    Ident {
        name: p.as_str().to_string(),
        span: p.as_span().into(),
    }
}

fn parse_int(p: Pair<'_, Rule>) -> Option<u64> {
    let s = p.as_str().trim_end_matches(['u', 'U', 'l', 'L']);
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn unescape(s: &str) -> String {
    let inner = &s[1..s.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Builder<'_> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn file(&mut self, p: Pair<'_, Rule>) -> SpecFile {
        let mut inner = p.into_inner();
        let api = self.api(inner.next().expect("api_decl"));
        let mut decls = Vec::new();
        let mut functions = Vec::new();
        for item in inner {
            match item.as_rule() {
                Rule::function => functions.push(self.function(item)),
                Rule::EOI => {}
                _ => decls.push(self.decl(item)),
            }
        }
        SpecFile {
            api,
            decls,
            functions,
        }
    }

    fn api(&mut self, p: Pair<'_, Rule>) -> ApiHeader {
        let span = p.as_span().into();
        let mut it = p.into_inner().filter(|p| p.as_rule() != Rule::kw_api);
        let name = ident(it.next().expect("api name"));
        let version = it
            .find(|p| p.as_rule() == Rule::string)
            .map(|p| unescape(p.as_str()))
            .unwrap_or_default();
        ApiHeader {
            name,
            version,
            span,
        }
    }

    fn signed_int(&mut self, p: Pair<'_, Rule>) -> i128 {
        let span: Span = p.as_span().into();
        let mut neg = false;
        let mut value = 0i128;
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::minus => neg = true,
                Rule::int_lit => match parse_int(q) {
                    Some(v) => value = v as i128,
                    None => self.err(Diagnostic::error(span, "integer literal too large")),
                },
                _ => {}
            }
        }
        if neg { -value } else { value }
    }

    fn type_ref(&mut self, p: Pair<'_, Rule>) -> TypeRef {
        let span = p.as_span().into();
        let mut base = None;
        let mut base_const = false;
        let mut pointers = Vec::new();
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::base_const => base_const = true,
                Rule::type_name => base = Some(ident(q)),
                Rule::ptr => pointers.push(q.into_inner().next().is_some()),
                _ => {}
            }
        }
        TypeRef {
            base: base.expect("type_name"),
            base_const,
            pointers,
            span,
            resolved: None,
        }
    }

    fn field(&mut self, p: Pair<'_, Rule>) -> Field {
        let mut it = p.into_inner();
        let ty = self.type_ref(it.next().expect("type"));
        let name = ident(it.next().expect("name"));
        let array = it.next().map(|a| a.into_inner().next().and_then(parse_int));
        Field { ty, name, array }
    }

    fn decl(&mut self, p: Pair<'_, Rule>) -> Decl {
        let rule = p.as_rule();
        let span: Span = p.as_span().into();
        // Skip the leading keyword.
        let mut it = p.into_inner().skip(1);
        match rule {
            Rule::type_decl => {
                let name = ident(it.next().expect("name"));
                let target = self.type_ref(it.next().expect("type"));
                Decl::Type(TypeAlias { name, target, span })
            }
            Rule::handle_decl => {
                let name = ident(it.next().expect("name"));
                let mut invalid = None;
                let mut passes = Vec::new();
                for p in it {
                    if p.as_rule() == Rule::handle_passes {
                        passes = p.into_inner().map(|e| self.expr(e)).collect();
                    } else {
                        invalid = Some(self.expr(p));
                    }
                }
                Decl::Handle(HandleDecl {
                    name,
                    invalid,
                    passes,
                    span,
                })
            }
            Rule::const_decl => {
                let name = ident(it.next().expect("name"));
                let ty = self.type_ref(it.next().expect("type"));
                let value = self.signed_int(it.next().expect("value"));
                Decl::Const(ConstDecl {
                    name,
                    ty,
                    value,
                    span,
                })
            }
            Rule::enum_decl => {
                let name = ident(it.next().expect("name"));
                let repr = self.type_ref(it.next().expect("repr"));
                let variants = it
                    .map(|v| {
                        let mut vi = v.into_inner();
                        let name = ident(vi.next().expect("variant"));
                        let value = self.signed_int(vi.next().expect("value"));
                        EnumVariant { name, value }
                    })
                    .collect();
                Decl::Enum(EnumDecl {
                    name,
                    repr,
                    variants,
                    span,
                })
            }
            Rule::struct_decl => {
                let name = ident(it.next().expect("name"));
                let fields = it.map(|f| self.field(f)).collect();
                Decl::Struct(StructDecl { name, fields, span })
            }
            Rule::metadata_decl => {
                let handle = ident(it.next().expect("name"));
                let fields = it.map(|f| self.field(f)).collect();
                Decl::Metadata(MetadataDecl {
                    handle,
                    fields,
                    span,
                })
            }
            Rule::callback_decl => {
                let name = ident(it.next().expect("name"));
                let ret = self.type_ref(it.next().expect("ret"));
                let params = self.params(it.next().expect("params"));
                let block = it.next();
                let proto_end = block.as_ref().map_or(span.end, |b| b.as_span().start());
                let annots = match block {
                    Some(b) => {
                        let (raws, _) = self.block(b);
                        self.fn_annots(raws, false)
                    }
                    None => Vec::new(),
                };
                Decl::Callback(CallbackDecl {
                    signature: Function {
                        ret,
                        name: name.clone(),
                        params,
                        annots,
                        proto_span: Span::new(span.start, proto_end),
                        span,
                    },
                    name,
                })
            }
            Rule::resource_decl => Decl::Resource(ident(it.next().expect("name"))),
            Rule::tracker_decl => Decl::Tracker(ident(it.next().expect("name"))),
            Rule::error_value_decl => Decl::ErrorValue(ErrorValueDecl {
                kind: ident(it.next().expect("kind")),
                value: self.expr(it.next().expect("value")),
                span,
            }),
            r => unreachable!("unexpected declaration rule {r:?}"),
        }
    }

    fn params(&mut self, p: Pair<'_, Rule>) -> Vec<Param> {
        p.into_inner()
            .filter(|q| q.as_rule() == Rule::param)
            .map(|q| {
                let span = q.as_span().into();
                let mut it = q.into_inner();
                let ty = self.type_ref(it.next().expect("type"));
                let name = ident(it.next().expect("name"));
                Param { ty, name, span }
            })
            .collect()
    }

    fn function(&mut self, p: Pair<'_, Rule>) -> Function {
        let span: Span = p.as_span().into();
        let mut it = p.into_inner();
        let ret = self.type_ref(it.next().expect("ret"));
        let name = ident(it.next().expect("name"));
        let params_pair = it.next().expect("params");
        let params = self.params(params_pair);
        let block = it.next();
        let proto_end = match &block {
            Some(b) => b.as_span().start(),
            None => span.end,
        };
        let annots = match block {
            Some(b) => {
                let (raws, _) = self.block(b);
                self.fn_annots(raws, false)
            }
            None => Vec::new(),
        };
        Function {
            ret,
            name,
            params,
            annots,
            proto_span: Span::new(span.start, proto_end),
            span,
        }
    }

    // ------------------------------------------------------------ raw annotations

    fn block(&mut self, p: Pair<'_, Rule>) -> (Vec<Raw>, Span) {
        let span = p.as_span().into();
        (p.into_inner().map(|q| self.raw(q)).collect(), span)
    }

    fn raw(&mut self, p: Pair<'_, Rule>) -> Raw {
        let span: Span = p.as_span().into();
        match p.as_rule() {
            Rule::elided => Raw::Elided(span),
            Rule::if_annot => self.raw_if(p),
            Rule::contextual => {
                let mut it = p.into_inner().skip(1);
                let ty = self.type_ref(it.next().expect("type"));
                let name = ident(it.next().expect("name"));
                let value = self.expr(it.next().expect("value"));
                Raw::Contextual(ContextualArg { ty, name, value }, span)
            }
            Rule::unsupported_item => {
                let reason = p.into_inner().nth(1).map(|s| unescape(s.as_str()));
                Raw::Unsupported(reason, span)
            }
            Rule::type_cast_item => {
                let t = p.into_inner().nth(1).expect("type");
                Raw::TypeCast(self.type_ref(t), span)
            }
            Rule::return_block => {
                let b = p.into_inner().nth(1).expect("block");
                let (raws, bspan) = self.block(b);
                Raw::Return(raws, bspan, span)
            }
            Rule::generic => {
                let mut name = None;
                let mut args = None;
                let mut block = None;
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::ident => name = Some(ident(q)),
                        Rule::call_args => {
                            let aspan = q.as_span().into();
                            args = Some((q.into_inner().map(|e| self.expr(e)).collect(), aspan));
                        }
                        Rule::annot_block => block = Some(self.block(q)),
                        _ => {}
                    }
                }
                Raw::Generic {
                    name: name.expect("name"),
                    args,
                    block,
                    span,
                }
            }
            r => unreachable!("unexpected annotation rule {r:?}"),
        }
    }

    fn raw_if(&mut self, p: Pair<'_, Rule>) -> Raw {
        let span: Span = p.as_span().into();
        let mut it = p
            .into_inner()
            .filter(|q| !matches!(q.as_rule(), Rule::kw_if | Rule::kw_else));
        let cond = self.expr(it.next().expect("cond"));
        let (then, then_span) = self.block(it.next().expect("then"));
        let (otherwise, otherwise_span) = match it.next() {
            None => (Vec::new(), Span::new(span.end, span.end)),
            Some(q) if q.as_rule() == Rule::if_annot => {
                let s = q.as_span().into();
                (vec![self.raw_if(q)], s)
            }
            Some(q) => self.block(q),
        };
        Raw::If {
            cond,
            then,
            then_span,
            otherwise,
            otherwise_span,
            span,
        }
    }

    // ------------------------------------------------------------ function level

    fn fn_annots(&mut self, raws: Vec<Raw>, in_if: bool) -> Vec<FnAnnot> {
        let mut out = Vec::new();
        for r in raws {
            if let Some(a) = self.fn_annot(r, in_if) {
                out.push(a);
            }
        }
        out
    }

    fn fn_annot(&mut self, r: Raw, in_if: bool) -> Option<FnAnnot> {
        let span = r.span();
        let conditional_err = |what: &str| {
            Diagnostic::error(span, format!("`{what}` cannot be conditional"))
                .with_label("inside a function-level `if`")
                .with_note(
                    "only runtime calls and `consumes_rc` may appear inside a function-level \
                     `if`; put conditional argument annotations inside `argument(..) { if ... }`",
                )
        };
        let kind = match r {
            Raw::Elided(s) => {
                self.err(elided_error(s));
                return None;
            }
            Raw::If {
                cond,
                then,
                otherwise,
                ..
            } => FnAnnotKind::If {
                cond,
                then: self.fn_annots(then, true),
                otherwise: self.fn_annots(otherwise, true),
            },
            Raw::Contextual(c, _) => {
                if in_if {
                    self.err(conditional_err("contextual_argument"));
                    return None;
                }
                FnAnnotKind::Contextual(c)
            }
            Raw::Unsupported(reason, _) => {
                if in_if {
                    self.err(conditional_err("unsupported"));
                    return None;
                }
                FnAnnotKind::Unsupported(reason)
            }
            Raw::TypeCast(..) => {
                self.err(misplaced_arg_annot("type_cast", span));
                return None;
            }
            Raw::Return(raws, bspan, _) => {
                if in_if {
                    self.err(conditional_err("return"));
                    return None;
                }
                FnAnnotKind::Return(self.arg_annots(raws, bspan))
            }
            Raw::Generic {
                name,
                args,
                block,
                span,
            } => {
                let kw = name.name.as_str();
                let is_fn_kw = FN_KEYWORDS.contains(&kw);
                if in_if && is_fn_kw && kw != "consumes_rc" {
                    self.err(conditional_err(kw));
                    return None;
                }
                match kw {
                    "sync" | "async" => {
                        self.no_args(&name, &args, &block)?;
                        if kw == "sync" {
                            FnAnnotKind::Sync
                        } else {
                            FnAnnotKind::Async
                        }
                    }
                    "success" => {
                        let mut a = self.exact_args(&name, args, &block, 1, "success(VALUE)")?;
                        FnAnnotKind::Success(a.remove(0))
                    }
                    "consumes_rc" => {
                        let mut a = self.exact_args(
                            &name,
                            args,
                            &block,
                            2,
                            "consumes_rc(RESOURCE, AMOUNT)",
                        )?;
                        let amount = a.pop().expect("2 args");
                        let res = a.pop().expect("2 args");
                        let resource = self.name_arg(res, "a resource name")?;
                        FnAnnotKind::ConsumesRc { resource, amount }
                    }
                    "require" => {
                        let mut a =
                            self.exact_args(&name, args, &block, 2, "require(CONDITION, ERROR)")?;
                        let error = a.pop().expect("2 args");
                        let cond = a.pop().expect("2 args");
                        FnAnnotKind::Require { cond, error }
                    }
                    "guard" => {
                        let mut a = self.exact_args(&name, args, &block, 1, "guard(NAME)")?;
                        let g = self.name_arg(a.remove(0), "the name of a worker-side check")?;
                        FnAnnotKind::Guard(g)
                    }
                    "implement" => {
                        let mut a = self.exact_args(&name, args, &block, 1, "implement(NAME)")?;
                        let g = self.name_arg(a.remove(0), "the name of a worker-side function")?;
                        FnAnnotKind::Implement(g)
                    }
                    "after" => {
                        let mut a = self.exact_args(&name, args, &block, 1, "after(NAME)")?;
                        let g = self.name_arg(a.remove(0), "the name of a worker-side function")?;
                        FnAnnotKind::After(g)
                    }
                    "fast_path" => {
                        let mut a = self.exact_args(&name, args, &block, 1, "fast_path(NAME)")?;
                        let g = self.name_arg(a.remove(0), "the name of a guest-side function")?;
                        FnAnnotKind::FastPath(g)
                    }
                    "internal" => {
                        self.no_args(&name, &args, &block)?;
                        FnAnnotKind::Internal
                    }
                    "argument" => {
                        let Some((bargs, bspan)) = block else {
                            self.err(
                                Diagnostic::error(span, "`argument(..)` needs a `{ ... }` block")
                                    .with_label("expected annotations in braces"),
                            );
                            return None;
                        };
                        let Some((mut a, aspan)) = args else {
                            self.err(
                                Diagnostic::error(name.span, "`argument` needs an argument name")
                                    .with_note("help: write `argument(NAME) { ... }`"),
                            );
                            return None;
                        };
                        if a.len() != 1 {
                            self.err(
                                Diagnostic::error(aspan, "`argument` takes exactly one name")
                                    .with_note(
                                        "help: write one `argument(NAME) { ... }` per argument",
                                    ),
                            );
                            return None;
                        }
                        let target = self.name_arg(a.remove(0), "an argument name")?;
                        FnAnnotKind::Argument(ArgumentBlock {
                            name: target,
                            annots: self.arg_annots(bargs, bspan),
                            target: None,
                        })
                    }
                    _ if ARG_KEYWORDS.contains(&kw) => {
                        self.err(misplaced_arg_annot(kw, name.span));
                        return None;
                    }
                    _ => match (args, block) {
                        (Some((a, aspan)), None) => FnAnnotKind::RuntimeCall(Expr::new(
                            ExprKind::Call {
                                func: name.clone(),
                                args: a,
                            },
                            Span::new(name.span.start, aspan.end),
                        )),
                        _ => {
                            let mut d =
                                Diagnostic::error(name.span, format!("unknown annotation `{kw}`"))
                                    .with_label("not a LAPIS function annotation");
                            if let Some(s) = suggest(kw, FN_KEYWORDS.iter().chain(ARG_KEYWORDS)) {
                                d = d.with_note(format!("help: did you mean `{s}`?"));
                            }
                            d = d.with_note(format!(
                                "function annotations are: {}",
                                FN_KEYWORDS.join(", ")
                            ));
                            self.err(d);
                            return None;
                        }
                    },
                }
            }
        };
        Some(FnAnnot { kind, span })
    }

    // ------------------------------------------------------------ argument level

    fn arg_annots(&mut self, raws: Vec<Raw>, span: Span) -> Annots {
        let mut items = Vec::new();
        for r in raws {
            if let Some(a) = self.arg_annot(r) {
                items.push(a);
            }
        }
        Annots { items, span }
    }

    fn arg_annot(&mut self, r: Raw) -> Option<ArgAnnot> {
        let span = r.span();
        let kind = match r {
            Raw::Elided(s) => {
                self.err(elided_error(s));
                return None;
            }
            Raw::If {
                cond,
                then,
                then_span,
                otherwise,
                otherwise_span,
                ..
            } => ArgAnnotKind::If {
                cond,
                then: self.arg_annots(then, then_span),
                otherwise: self.arg_annots(otherwise, otherwise_span),
            },
            Raw::TypeCast(t, _) => ArgAnnotKind::TypeCast(t),
            Raw::Contextual(..) => {
                self.err(misplaced_fn_annot("contextual_argument", span));
                return None;
            }
            Raw::Unsupported(..) => {
                self.err(misplaced_fn_annot("unsupported", span));
                return None;
            }
            Raw::Return(..) => {
                self.err(misplaced_fn_annot("return", span));
                return None;
            }
            Raw::Generic {
                name,
                args,
                block,
                span,
            } => {
                let kw = name.name.as_str();
                match kw {
                    "in" | "out" | "inout" => {
                        self.no_args(&name, &args, &block)?;
                        ArgAnnotKind::Direction(match kw {
                            "in" => Direction::In,
                            "out" => Direction::Out,
                            _ => Direction::InOut,
                        })
                    }
                    "lifetime_call" | "lifetime_manual" | "lifetime_static" => {
                        self.no_args(&name, &args, &block)?;
                        ArgAnnotKind::Lifetime(match kw {
                            "lifetime_call" => Lifetime::Call,
                            "lifetime_manual" => Lifetime::Manual,
                            _ => Lifetime::Static,
                        })
                    }
                    "buffer" => {
                        let mut a = self.exact_args(&name, args, &block, 1, "buffer(COUNT)")?;
                        ArgAnnotKind::Buffer(a.remove(0))
                    }
                    "value" => {
                        let mut a = self.exact_args(&name, args, &block, 1, "value(EXPR)")?;
                        ArgAnnotKind::Value(a.remove(0))
                    }
                    "element" => {
                        if let Some((_, aspan)) = args {
                            self.err(
                                Diagnostic::error(aspan, "`element` takes no arguments")
                                    .with_note("help: write `element { ... }`; use the builtin `index` for the position"),
                            );
                            return None;
                        }
                        let Some((raws, bspan)) = block else {
                            self.err(Diagnostic::error(span, "`element` needs a `{ ... }` block"));
                            return None;
                        };
                        ArgAnnotKind::Element(self.arg_annots(raws, bspan))
                    }
                    "callback" => {
                        if block.is_some() {
                            self.err(Diagnostic::error(span, "`callback` takes no block").with_note(
                                "help: describe the callback's own arguments on its `callback NAME = ...` declaration",
                            ));
                            return None;
                        }
                        match args {
                            None => ArgAnnotKind::Callback(None),
                            Some((mut a, aspan)) => {
                                if a.len() > 1 {
                                    self.err(Diagnostic::error(
                                        aspan,
                                        "`callback` takes at most one argument (the user data argument)",
                                    ));
                                    return None;
                                }
                                if a.is_empty() {
                                    ArgAnnotKind::Callback(None)
                                } else {
                                    let u = self.name_arg(a.remove(0), "an argument name")?;
                                    ArgAnnotKind::Callback(Some(u))
                                }
                            }
                        }
                    }
                    _ => {
                        if let Some(flag) = Flag::ALL.iter().find(|f| f.keyword() == kw) {
                            self.no_args(&name, &args, &block)?;
                            ArgAnnotKind::Flag(*flag)
                        } else if FN_KEYWORDS.contains(&kw) || runtime_fn(kw).is_some() {
                            self.err(misplaced_fn_annot(kw, name.span));
                            return None;
                        } else {
                            let mut d = Diagnostic::error(
                                name.span,
                                format!("unknown argument annotation `{kw}`"),
                            )
                            .with_label("not a LAPIS argument annotation");
                            if let Some(s) = suggest(kw, ARG_KEYWORDS.iter()) {
                                d = d.with_note(format!("help: did you mean `{s}`?"));
                            }
                            d = d.with_note(format!(
                                "argument annotations are: {}",
                                ARG_KEYWORDS.join(", ")
                            ));
                            self.err(d);
                            return None;
                        }
                    }
                }
            }
        };
        Some(ArgAnnot { kind, span })
    }

    // ------------------------------------------------------------ helpers

    fn no_args(
        &mut self,
        name: &Ident,
        args: &Option<(Vec<Expr>, Span)>,
        block: &Option<(Vec<Raw>, Span)>,
    ) -> Option<()> {
        if let Some((_, s)) = args {
            self.err(
                Diagnostic::error(*s, format!("`{}` takes no arguments", name.name))
                    .with_note(format!("help: write `{};`", name.name)),
            );
            return None;
        }
        if let Some((_, s)) = block {
            self.err(Diagnostic::error(
                *s,
                format!("`{}` takes no `{{ ... }}` block", name.name),
            ));
            return None;
        }
        Some(())
    }

    fn exact_args(
        &mut self,
        name: &Ident,
        args: Option<(Vec<Expr>, Span)>,
        block: &Option<(Vec<Raw>, Span)>,
        n: usize,
        usage: &str,
    ) -> Option<Vec<Expr>> {
        if let Some((_, s)) = block {
            self.err(Diagnostic::error(
                *s,
                format!("`{}` takes no `{{ ... }}` block", name.name),
            ));
            return None;
        }
        match args {
            Some((a, _)) if a.len() == n => Some(a),
            Some((a, s)) => {
                self.err(
                    Diagnostic::error(
                        s,
                        format!(
                            "`{}` takes {n} argument{}, found {}",
                            name.name,
                            if n == 1 { "" } else { "s" },
                            a.len()
                        ),
                    )
                    .with_note(format!("help: write `{usage};`")),
                );
                None
            }
            None => {
                self.err(
                    Diagnostic::error(name.span, format!("`{}` needs arguments", name.name))
                        .with_note(format!("help: write `{usage};`")),
                );
                None
            }
        }
    }

    fn name_arg(&mut self, e: Expr, what: &str) -> Option<Ident> {
        match e.kind {
            ExprKind::Name { name, .. } => Some(name),
            _ => {
                self.err(Diagnostic::error(e.span, format!("expected {what}")));
                None
            }
        }
    }

    // ------------------------------------------------------------ expressions

    fn expr(&mut self, p: Pair<'_, Rule>) -> Expr {
        let span: Span = p.as_span().into();
        match p.as_rule() {
            Rule::expr => {
                let mut it = p.into_inner();
                let first = self.expr(it.next().expect("operand"));
                match it.next() {
                    None => first,
                    Some(_question) => {
                        let a = self.expr(it.next().expect("then"));
                        let b = self.expr(it.next().expect("else"));
                        Expr::new(
                            ExprKind::Conditional(Box::new(first), Box::new(a), Box::new(b)),
                            span,
                        )
                    }
                }
            }
            Rule::logic_or
            | Rule::logic_and
            | Rule::equality
            | Rule::relational
            | Rule::additive
            | Rule::multiplicative => {
                let mut it = p.into_inner();
                let mut lhs = self.expr(it.next().expect("operand"));
                while let Some(op) = it.next() {
                    let op = match op.as_str() {
                        "||" => BinaryOp::Or,
                        "&&" => BinaryOp::And,
                        "==" => BinaryOp::Eq,
                        "!=" => BinaryOp::Ne,
                        "<" => BinaryOp::Lt,
                        "<=" => BinaryOp::Le,
                        ">" => BinaryOp::Gt,
                        ">=" => BinaryOp::Ge,
                        "+" => BinaryOp::Add,
                        "-" => BinaryOp::Sub,
                        "*" => BinaryOp::Mul,
                        "/" => BinaryOp::Div,
                        _ => BinaryOp::Rem,
                    };
                    let rhs = self.expr(it.next().expect("operand"));
                    let s = Span::new(lhs.span.start, rhs.span.end);
                    lhs = Expr::new(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), s);
                }
                lhs
            }
            Rule::unary => {
                let parts: Vec<_> = p.into_inner().collect();
                let (ops, operand) = parts.split_at(parts.len() - 1);
                let mut e = self.expr(operand[0].clone());
                for op in ops.iter().rev() {
                    let o = if op.as_str() == "!" {
                        UnaryOp::Not
                    } else {
                        UnaryOp::Neg
                    };
                    let s = Span::new(op.as_span().start(), e.span.end);
                    e = Expr::new(ExprKind::Unary(o, Box::new(e)), s);
                }
                e
            }
            Rule::postfix => {
                let mut it = p.into_inner();
                let mut e = self.expr(it.next().expect("primary"));
                for idx in it {
                    let end = idx.as_span().end();
                    let i = self.expr(idx.into_inner().next().expect("index"));
                    let s = Span::new(e.span.start, end);
                    e = Expr::new(ExprKind::Index(Box::new(e), Box::new(i)), s);
                }
                e
            }
            Rule::paren => {
                let mut e = self.expr(p.into_inner().next().expect("expr"));
                e.span = span;
                e
            }
            Rule::int_lit => match parse_int(p) {
                Some(v) => Expr::new(ExprKind::Int(v), span),
                None => {
                    self.err(Diagnostic::error(span, "integer literal too large"));
                    Expr::new(ExprKind::Int(0), span)
                }
            },
            Rule::kw_true => Expr::new(ExprKind::Bool(true), span),
            Rule::kw_false => Expr::new(ExprKind::Bool(false), span),
            Rule::kw_null => Expr::new(ExprKind::Null, span),
            Rule::ident => Expr::new(
                ExprKind::Name {
                    name: ident(p),
                    resolved: None,
                },
                span,
            ),
            Rule::sizeof_expr => {
                let t = p.into_inner().nth(1).expect("type");
                Expr::new(ExprKind::SizeOf(self.type_ref(t)), span)
            }
            Rule::metadata_expr => {
                let mut it = p.into_inner().skip(1);
                let object = ident(it.next().expect("object"));
                let field = ident(it.next().expect("field"));
                Expr::new(ExprKind::Metadata { object, field }, span)
            }
            Rule::call_expr => {
                let mut it = p.into_inner();
                let func = ident(it.next().expect("func"));
                let args = it
                    .next()
                    .map(|a| a.into_inner().map(|e| self.expr(e)).collect())
                    .unwrap_or_default();
                Expr::new(ExprKind::Call { func, args }, span)
            }
            r => unreachable!("unexpected expression rule {r:?}"),
        }
    }
}

fn misplaced_arg_annot(kw: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        span,
        format!("`{kw}` is an argument annotation and cannot appear at function level"),
    )
    .with_label("not allowed here")
    .with_note(format!(
        "help: put it inside `argument(NAME) {{ {kw}; ... }}`"
    ))
}

fn misplaced_fn_annot(kw: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        span,
        format!("`{kw}` is a function annotation and cannot appear inside an argument block"),
    )
    .with_label("not allowed here")
    .with_note("help: move it to the function's own `{ ... }` block")
}

/// The closest keyword within edit distance 2, if any.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a lone expression (used by tests and tools).
pub fn parse_expr(text: &str) -> Result<Expr, Diagnostics> {
    let mut diags = Diagnostics::new("<expr>", text);
    pest::set_error_detail(true);
    match LapisParser::parse(Rule::expr_only, text) {
        Ok(mut pairs) => {
            let top = pairs.next().expect("expr_only");
            let e = top.into_inner().next().expect("expr");
            let mut b = Builder { diags: &mut diags };
            let e = b.expr(e);
            if diags.is_empty() { Ok(e) } else { Err(diags) }
        }
        Err(e) => {
            diags.push(syntax_error(text, &e));
            Err(diags)
        }
    }
}
