//! LAPIS: the API specification language of AvA-style API remoting.
//!
//! A LAPIS file describes a C API (types, handles, functions) and, for each
//! function, how its call is remoted from a guest library to a host worker:
//! synchronous or asynchronous, which pointer arguments are copied in which
//! direction and how big they are, which handles are created or destroyed,
//! which resources a call consumes, and which state the guest library must
//! track. Code generators (see [`codegen`]) read the checked [`Spec`].
//!
//! ```
//! let spec = lapis::parse_str("vec.lapis", r#"
//!     api vecadd version "1.0";
//!     type size_t = usize;
//!     type vec_status = i32;
//!     const VEC_OK: vec_status = 0;
//!     handle vec_t;
//!     vec_status vec_write(vec_t v, const float_t* data, size_t n) {
//!         argument(data) { in; buffer(n); }
//!     }
//!     type float_t = f32;
//! "#).unwrap();
//! let f = spec.function("vec_write").unwrap();
//! assert_eq!(f.argument("data").unwrap().annots.direction(), Some(lapis::ast::Direction::In));
//! ```
//!
//! Errors come back as [`Diagnostics`], which render like compiler errors:
//! `file:line:col`, the offending text underlined, a message and hints.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ast;
mod check;
pub mod codegen;
pub mod diag;
pub mod explain;
mod expr;
pub mod parser;
pub mod types;

use std::path::Path;

pub use ast::{
    Annots, ArgAnnot, ArgAnnotKind, ArgumentBlock, CallMode, Decl, Direction, Expr, ExprKind,
    FnAnnot, FnAnnotKind, Function, Lifetime, Span,
};
pub use diag::{Diagnostic, Diagnostics};
pub use types::{ExprType, Scalar, Ty};

/// A checked specification: every name and type is resolved (the
/// `resolved`/`ty`/`target` slots of the AST are all `Some`).
#[derive(Debug, Clone)]
pub struct Spec {
    /// The file name given to [`load`] or [`parse_str`].
    pub source_name: String,
    /// The source text (for tools that want to quote it).
    pub source: String,
    /// `api NAME version "V";`
    pub api: ast::ApiHeader,
    /// Declarations, in source order.
    pub decls: Vec<Decl>,
    /// Functions, in source order.
    pub functions: Vec<Function>,
}

impl Spec {
    /// The revision of this specification: a 64-bit FNV-1a hash of its text
    /// with comments removed and runs of white space made one space, so
    /// that edits to comments or layout keep the revision while any change
    /// to a declaration, a prototype or an annotation changes it. Generated
    /// code on both sides carries it: a guest and a worker built from
    /// different revisions refuse to talk (function ids are positions in
    /// the specification).
    pub fn revision(&self) -> u64 {
        revision_of(&self.source)
    }

    /// The value of `error_value KIND = EXPR;`, if the specification
    /// declares it (`unsupported` or `transport`).
    pub fn error_value(&self, kind: &str) -> Option<i128> {
        self.decls.iter().find_map(|d| match d {
            Decl::ErrorValue(e) if e.kind.name == kind => e.value.const_value(),
            _ => None,
        })
    }

    /// The function called `name`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name.name == name)
    }

    /// The declaration of `name` (type, handle, constant, ... ; for metadata,
    /// the handle name finds the handle declaration first).
    pub fn decl(&self, name: &str) -> Option<&Decl> {
        self.decls.iter().find(|d| d.name().name == name)
    }

    /// The value of a constant or enum variant.
    pub fn constant(&self, name: &str) -> Option<i128> {
        self.decls.iter().find_map(|d| match d {
            Decl::Const(c) if c.name.name == name => Some(c.value),
            Decl::Enum(e) => e
                .variants
                .iter()
                .find(|v| v.name.name == name)
                .map(|v| v.value),
            _ => None,
        })
    }

    /// The declared handle types.
    pub fn handles(&self) -> impl Iterator<Item = &ast::HandleDecl> {
        self.decls.iter().filter_map(|d| match d {
            Decl::Handle(h) => Some(h),
            _ => None,
        })
    }

    /// The callback (function pointer) type `name`.
    pub fn callback(&self, name: &str) -> Option<&ast::CallbackDecl> {
        self.decls.iter().find_map(|d| match d {
            Decl::Callback(c) if c.name.name == name => Some(c),
            _ => None,
        })
    }

    /// The metadata declaration of handle type `handle`.
    pub fn metadata(&self, handle: &str) -> Option<&ast::MetadataDecl> {
        self.decls.iter().find_map(|d| match d {
            Decl::Metadata(m) if m.handle.name == handle => Some(m),
            _ => None,
        })
    }

    /// The number of functions marked `unsupported`.
    pub fn unsupported_count(&self) -> usize {
        self.functions
            .iter()
            .filter(|f| f.unsupported().is_some())
            .count()
    }
}

/// Parses and checks a specification given as text. `name` is used in
/// diagnostics (usually the file path).
pub fn parse_str(name: &str, text: &str) -> Result<Spec, Diagnostics> {
    let mut file = parser::parse(name, text)?;
    let mut diags = Diagnostics::new(name, text);
    check::check(&mut file, &mut diags);
    if !diags.is_empty() {
        diags.sort();
        return Err(diags);
    }
    Ok(Spec {
        source_name: name.to_string(),
        source: text.to_string(),
        api: file.api,
        decls: file.decls,
        functions: file.functions,
    })
}

/// Reads, parses and checks a specification file.
pub fn load(path: impl AsRef<Path>) -> Result<Spec, Diagnostics> {
    let path = path.as_ref();
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&name, &text),
        Err(e) => {
            let mut d = Diagnostics::new(name.clone(), String::new());
            d.push(Diagnostic::error(
                Span::new(0, 0),
                format!("cannot read `{name}`: {e}"),
            ));
            Err(d)
        }
    }
}

/// See [`Spec::revision`].
fn revision_of(source: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |b: u8| {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(PRIME);
    };
    let bytes = source.as_bytes();
    // `space`: white space or a comment was skipped since the last byte fed
    // (never fed before the first byte).
    let (mut i, mut in_string, mut space, mut started) = (0, false, false, false);
    while i < bytes.len() {
        let b = bytes[i];
        if !in_string && b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            space = true;
            continue;
        }
        if !in_string && b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i += 2;
            space = true;
            continue;
        }
        if !in_string && b.is_ascii_whitespace() {
            space = true;
            i += 1;
            continue;
        }
        if space && started {
            feed(b' ');
        }
        space = false;
        started = true;
        if b == b'"' && (i == 0 || bytes[i - 1] != b'\\') {
            in_string = !in_string;
        }
        feed(b);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod revision_tests {
    use super::revision_of;

    #[test]
    fn comments_and_layout_keep_the_revision_other_edits_change_it() {
        let a = "api t version \"1\";\nint f(int x) { sync; }\n";
        let b = "/* about t */ api t version \"1\"; // t\n\n  int f(int   x)\n{ sync; } // f\n";
        assert_eq!(revision_of(a), revision_of(b));
        for changed in [
            "api t version \"2\";\nint f(int x) { sync; }\n",
            "api t version \"1\";\nint f(int y) { sync; }\n",
            "api t version \"1\";\nint f(int x) { async; }\n",
            "api t version \"1\";\nint g(int x) { sync; }\nint f(int x) { sync; }\n",
        ] {
            assert_ne!(revision_of(a), revision_of(changed), "{changed}");
        }
        // Inside a string, comment markers and spaces are text.
        assert_ne!(
            revision_of("unsupported(\"a // b\");"),
            revision_of("unsupported(\"a \");")
        );
    }
}
