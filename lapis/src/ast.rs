//! The typed abstract syntax tree of a LAPIS specification.
//!
//! A specification is a header ([`ApiHeader`]), a list of declarations
//! ([`Decl`]: types, handles, constants, enums, structs, callbacks, metadata,
//! resources, trackers) and a list of [`Function`]s. Each function is a C
//! prototype plus an ordered list of function-level annotations
//! ([`FnAnnot`]); each `argument(name) { ... }` block is an
//! [`ArgumentBlock`] holding argument-level annotations ([`Annots`] of
//! [`ArgAnnot`]).
//!
//! Every node a diagnostic may point at carries a [`Span`] (a byte range into
//! the source text). Nodes whose meaning depends on name resolution
//! (type references, names in expressions, argument blocks) have a
//! `resolved` slot that is `None` after parsing and always `Some` in a
//! [`crate::Spec`] returned by [`crate::load`] or [`crate::parse_str`];
//! code generators can therefore use the `expect`-style accessors
//! ([`TypeRef::ty`], [`Expr::ty`], ...).

use std::fmt;

use crate::types::{ExprType, Ty};

/// A byte range `start..end` into the source text of the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// Creates a span from a byte range.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(s: pest::Span<'_>) -> Span {
        Span::new(s.start(), s.end())
    }
}

/// An identifier with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The identifier text.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// `api NAME version "V";`, the first line of every specification.
#[derive(Debug, Clone)]
pub struct ApiHeader {
    /// The API name, e.g. `opencl` or `cuda`.
    pub name: Ident,
    /// The version string, without quotes.
    pub version: String,
    /// The whole header.
    pub span: Span,
}

/// A whole specification as parsed.
#[derive(Debug, Clone)]
pub struct SpecFile {
    /// The `api` header.
    pub api: ApiHeader,
    /// Declarations, in source order.
    pub decls: Vec<Decl>,
    /// Functions, in source order.
    pub functions: Vec<Function>,
}

/// A written C type: `const char*`, `void**`, `cl_mem`, `size_t`.
#[derive(Debug, Clone)]
pub struct TypeRef {
    /// The base type name (`void`, a scalar such as `u32`, or a declared name).
    pub base: Ident,
    /// Whether the base type is `const` (`const char*` or `char const*`).
    pub base_const: bool,
    /// One entry per `*`, outermost last; `true` when that pointer is itself
    /// `const` (`char* const`).
    pub pointers: Vec<bool>,
    /// The whole type text.
    pub span: Span,
    /// The resolved type; always `Some` in a checked [`crate::Spec`].
    pub resolved: Option<Ty>,
}

impl TypeRef {
    /// The resolved type. Panics if called on an unchecked AST.
    pub fn ty(&self) -> &Ty {
        self.resolved
            .as_ref()
            .expect("TypeRef::ty called on an unchecked specification")
    }

    /// Whether at least one `*` was written.
    pub fn is_pointer(&self) -> bool {
        !self.pointers.is_empty()
    }
}

impl fmt::Display for TypeRef {
    /// Renders the type as C text, e.g. `const char*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.base_const {
            f.write_str("const ")?;
        }
        f.write_str(&self.base.name)?;
        for &c in &self.pointers {
            f.write_str(if c { "* const" } else { "*" })?;
        }
        Ok(())
    }
}

/// A top-level declaration.
#[derive(Debug, Clone)]
pub enum Decl {
    /// `type NAME = TYPE;`, a C type alias (`type size_t = usize;`).
    Type(TypeAlias),
    /// `handle NAME;` or `handle NAME = ERROR;`, an opaque pointer-sized
    /// object translated by the worker into per-guest ids.
    Handle(HandleDecl),
    /// `const NAME: TYPE = VALUE;`
    Const(ConstDecl),
    /// `enum NAME : TYPE { A = 1, B = -2 }`
    Enum(EnumDecl),
    /// `struct NAME { TYPE field; ... }`
    Struct(StructDecl),
    /// `callback NAME = RET (PARAMS) { annotations }`, a function pointer
    /// type called by the worker back into the guest.
    Callback(CallbackDecl),
    /// `metadata HANDLE { TYPE field; TYPE list[]; }`, per-object metadata
    /// kept by the runtime and read with `metadata(x)->field`.
    Metadata(MetadataDecl),
    /// `resource NAME;`, a schedulable resource used by `consumes_rc`.
    Resource(Ident),
    /// `tracker NAME;`, a named set of registered buffers used by the
    /// state-tracking runtime calls (`register_buf`, `get_bufs`, ...).
    Tracker(Ident),
    /// `error_value KIND = EXPR;`, the API's error value that the generated
    /// code returns when a call cannot be made: `unsupported` (a function or
    /// an argument that is not remoted), `transport` (the worker cannot be
    /// reached or refuses the guest) or `refused` (the scheduling policy
    /// refuses the call, e.g. beyond a memory quota; `transport` if not
    /// declared).
    ErrorValue(ErrorValueDecl),
}

/// The kinds of `error_value` a specification declares.
pub const ERROR_VALUE_KINDS: &[&str] = &["unsupported", "transport", "refused"];

/// `error_value KIND = EXPR;`
#[derive(Debug, Clone)]
pub struct ErrorValueDecl {
    /// `unsupported` or `transport`.
    pub kind: Ident,
    /// The value: an integer constant expression.
    pub value: Expr,
    /// The whole declaration.
    pub span: Span,
}

impl Decl {
    /// The declared name.
    pub fn name(&self) -> &Ident {
        match self {
            Decl::Type(d) => &d.name,
            Decl::Handle(d) => &d.name,
            Decl::Const(d) => &d.name,
            Decl::Enum(d) => &d.name,
            Decl::Struct(d) => &d.name,
            Decl::Callback(d) => &d.name,
            Decl::Metadata(d) => &d.handle,
            Decl::Resource(n) | Decl::Tracker(n) => n,
            Decl::ErrorValue(e) => &e.kind,
        }
    }
}

/// `type NAME = TYPE;`
#[derive(Debug, Clone)]
pub struct TypeAlias {
    /// The alias name.
    pub name: Ident,
    /// The aliased type.
    pub target: TypeRef,
    /// The whole declaration.
    pub span: Span,
}

/// `handle NAME;` or `handle NAME = ERROR;`
#[derive(Debug, Clone)]
pub struct HandleDecl {
    /// The handle type name.
    pub name: Ident,
    /// The error value the worker returns when a guest passes an id of this
    /// type that is unknown, already freed, or belongs to another guest
    /// (`handle cl_mem = CL_INVALID_MEM_OBJECT;`). Checked to be an integer
    /// constant expression; see [`HandleDecl::invalid_value`].
    pub invalid: Option<Expr>,
    /// Values that are not ids but pass to the host library as themselves
    /// (`passes(0, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD)`: CUDA's NULL and
    /// special streams). Each is an integer constant expression.
    pub passes: Vec<Expr>,
    /// The whole declaration.
    pub span: Span,
}

impl HandleDecl {
    /// The values passed as themselves (constant ones; see [`HandleDecl::passes`]).
    pub fn pass_values(&self) -> Vec<i128> {
        self.passes.iter().filter_map(Expr::const_value).collect()
    }

    /// The value of the invalid-handle error, if declared.
    pub fn invalid_value(&self) -> Option<i128> {
        self.invalid.as_ref().and_then(Expr::const_value)
    }
}

/// `const NAME: TYPE = VALUE;`
#[derive(Debug, Clone)]
pub struct ConstDecl {
    /// The constant name.
    pub name: Ident,
    /// Its type (must be an integer type).
    pub ty: TypeRef,
    /// Its value.
    pub value: i128,
    /// The whole declaration.
    pub span: Span,
}

/// `enum NAME : TYPE { VARIANT = VALUE, ... }`. Each variant is also a constant.
#[derive(Debug, Clone)]
pub struct EnumDecl {
    /// The enum type name.
    pub name: Ident,
    /// The underlying integer type.
    pub repr: TypeRef,
    /// The variants.
    pub variants: Vec<EnumVariant>,
    /// The whole declaration.
    pub span: Span,
}

/// One `NAME = VALUE` of an enum.
#[derive(Debug, Clone)]
pub struct EnumVariant {
    /// The variant (constant) name.
    pub name: Ident,
    /// Its value.
    pub value: i128,
}

/// `struct NAME { fields }`
#[derive(Debug, Clone)]
pub struct StructDecl {
    /// The struct name.
    pub name: Ident,
    /// Its fields, in order.
    pub fields: Vec<Field>,
    /// The whole declaration.
    pub span: Span,
}

/// A struct or metadata field: `TYPE NAME;`, `TYPE NAME[N];` or `TYPE NAME[];`.
#[derive(Debug, Clone)]
pub struct Field {
    /// The field type (element type for arrays).
    pub ty: TypeRef,
    /// The field name.
    pub name: Ident,
    /// `None`: not an array; `Some(None)`: `[]` (a runtime-sized list, only in
    /// metadata); `Some(Some(n))`: `[n]`.
    pub array: Option<Option<u64>>,
}

/// `callback NAME = RET (PARAMS) { argument blocks }`
#[derive(Debug, Clone)]
pub struct CallbackDecl {
    /// The function pointer type name.
    pub name: Ident,
    /// The signature; its annotations describe how the callback's own
    /// arguments travel from the worker back to the guest.
    pub signature: Function,
}

/// `metadata HANDLE { fields }`
#[derive(Debug, Clone)]
pub struct MetadataDecl {
    /// The handle type the metadata is attached to.
    pub handle: Ident,
    /// The metadata fields.
    pub fields: Vec<Field>,
    /// The whole declaration.
    pub span: Span,
}

/// A C parameter `TYPE NAME`.
#[derive(Debug, Clone)]
pub struct Param {
    /// The parameter type.
    pub ty: TypeRef,
    /// The parameter name.
    pub name: Ident,
    /// The whole parameter.
    pub span: Span,
}

/// An API function: a C prototype followed by an annotation block.
#[derive(Debug, Clone)]
pub struct Function {
    /// The return type.
    pub ret: TypeRef,
    /// The function name.
    pub name: Ident,
    /// The C parameters, in order.
    pub params: Vec<Param>,
    /// Function-level annotations, in source order.
    pub annots: Vec<FnAnnot>,
    /// The prototype (return type to closing parenthesis).
    pub proto_span: Span,
    /// The whole function including its annotation block.
    pub span: Span,
}

/// Whether a call waits for the worker (`sync`, the default) or returns at
/// once (`async`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallMode {
    /// The guest waits for the worker's reply.
    Sync,
    /// The guest returns the `success` value at once; errors are reported
    /// at a later synchronous call.
    Async,
}

impl Function {
    /// `Async` if the function is annotated `async`, else `Sync`.
    pub fn mode(&self) -> CallMode {
        if self
            .annots
            .iter()
            .any(|a| matches!(a.kind, FnAnnotKind::Async))
        {
            CallMode::Async
        } else {
            CallMode::Sync
        }
    }

    /// The `success(expr)` value, if any.
    pub fn success(&self) -> Option<&Expr> {
        self.annots.iter().find_map(|a| match &a.kind {
            FnAnnotKind::Success(e) => Some(e),
            _ => None,
        })
    }

    /// `Some(reason)` if the function is `unsupported` (reason may be empty).
    pub fn unsupported(&self) -> Option<&str> {
        self.annots.iter().find_map(|a| match &a.kind {
            FnAnnotKind::Unsupported(r) => Some(r.as_deref().unwrap_or("")),
            _ => None,
        })
    }

    /// The `consumes_rc(resource, amount)` annotations at top level.
    pub fn consumes(&self) -> impl Iterator<Item = (&Ident, &Expr)> {
        self.annots.iter().filter_map(|a| match &a.kind {
            FnAnnotKind::ConsumesRc { resource, amount } => Some((resource, amount)),
            _ => None,
        })
    }

    /// The `contextual_argument` declarations, in order.
    pub fn contextual_args(&self) -> impl Iterator<Item = &ContextualArg> {
        self.annots.iter().filter_map(|a| match &a.kind {
            FnAnnotKind::Contextual(c) => Some(c),
            _ => None,
        })
    }

    /// The `argument(name) { ... }` block for `name` (a parameter or a
    /// contextual argument), if written.
    pub fn argument(&self, name: &str) -> Option<&ArgumentBlock> {
        self.annots.iter().find_map(|a| match &a.kind {
            FnAnnotKind::Argument(b) if b.name.name == name => Some(b),
            _ => None,
        })
    }

    /// The `return { ... }` block, if written.
    pub fn return_annots(&self) -> Option<&Annots> {
        self.annots.iter().find_map(|a| match &a.kind {
            FnAnnotKind::Return(b) => Some(b),
            _ => None,
        })
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name.name == name)
    }

    /// The `guard(NAME)` checks, in source order.
    pub fn guards(&self) -> impl Iterator<Item = &Ident> {
        self.annots.iter().filter_map(|a| match &a.kind {
            FnAnnotKind::Guard(g) => Some(g),
            _ => None,
        })
    }

    /// The `implement(NAME)` function the worker runs instead of the real
    /// one, if any.
    pub fn implement(&self) -> Option<&Ident> {
        self.annots.iter().find_map(|a| match &a.kind {
            FnAnnotKind::Implement(g) => Some(g),
            _ => None,
        })
    }

    /// The `after(NAME)` function the worker runs on a successful call's
    /// result, if any.
    pub fn after(&self) -> Option<&Ident> {
        self.annots.iter().find_map(|a| match &a.kind {
            FnAnnotKind::After(g) => Some(g),
            _ => None,
        })
    }

    /// The `fast_path(NAME)` function the guest tries first, if any.
    pub fn fast_path(&self) -> Option<&Ident> {
        self.annots.iter().find_map(|a| match &a.kind {
            FnAnnotKind::FastPath(g) => Some(g),
            _ => None,
        })
    }

    /// Whether the function is `internal`: part of the protocol between the
    /// two sides, not exported by the guest library and not in the host
    /// library.
    pub fn is_internal(&self) -> bool {
        self.annots
            .iter()
            .any(|a| matches!(a.kind, FnAnnotKind::Internal))
    }

    /// The `argument(..)` blocks, in source order.
    pub fn arguments(&self) -> impl Iterator<Item = &ArgumentBlock> {
        self.annots.iter().filter_map(|a| match &a.kind {
            FnAnnotKind::Argument(b) => Some(b),
            _ => None,
        })
    }

    /// The argument marked `error_code` (at most one per function): where
    /// the generated code writes the error of a call that fails before or
    /// outside the driver (invalid handle, unsupported, transport failure).
    pub fn error_code(&self) -> Option<&ArgumentBlock> {
        self.arguments().find(|b| b.annots.has(Flag::ErrorCode))
    }
}

/// A function-level annotation with its span.
#[derive(Debug, Clone)]
pub struct FnAnnot {
    /// What it is.
    pub kind: FnAnnotKind,
    /// The annotation text.
    pub span: Span,
}

/// Function-level annotations.
#[derive(Debug, Clone)]
pub enum FnAnnotKind {
    /// `sync;` (the default).
    Sync,
    /// `async;`
    Async,
    /// `success(expr);` the value an async call returns at once.
    Success(Expr),
    /// `consumes_rc(resource, amount);`
    ConsumesRc {
        /// A declared `resource`.
        resource: Ident,
        /// An integer expression.
        amount: Expr,
    },
    /// `require(cond, error);`: the call is valid only when `cond` (over
    /// the call's arguments) holds; otherwise it fails with the API's error
    /// value `error` at once, in the guest library (before anything is
    /// sent, so an asynchronous call reports it too) and in the worker (for
    /// a guest that skips the check).
    Require {
        /// A boolean expression of the arguments.
        cond: Expr,
        /// An integer constant expression.
        error: Expr,
    },
    /// `unsupported;` or `unsupported("reason");`: the guest library
    /// returns an error (and logs the reason) without contacting the worker.
    Unsupported(Option<String>),
    /// A state-tracking runtime call statement, e.g.
    /// `register_buf(async_DtoH, stream, dst, size);`. Always an
    /// [`ExprKind::Call`] of a void runtime function.
    RuntimeCall(Expr),
    /// `contextual_argument TYPE NAME = expr;`
    Contextual(ContextualArg),
    /// `if (cond) { ... } else { ... }` around runtime calls and
    /// `consumes_rc`.
    If {
        /// A boolean condition.
        cond: Expr,
        /// Annotations applied when `cond` holds.
        then: Vec<FnAnnot>,
        /// Annotations applied otherwise (empty when no `else`).
        otherwise: Vec<FnAnnot>,
    },
    /// `argument(name) { ... }`
    Argument(ArgumentBlock),
    /// `return { allocate; obj_record; }` annotations on the return value.
    Return(Annots),
    /// `guard(NAME);` a hand-written worker-side check, run on the decoded
    /// arguments before the real function, for rules a spec cannot state
    /// (e.g. that a kernel argument's bytes name a live buffer).
    Guard(Ident),
    /// `implement(NAME);` the worker runs a hand-written function with the
    /// call's decoded arguments instead of the host library's function.
    Implement(Ident),
    /// `after(NAME);` when the call succeeded, the worker runs a
    /// hand-written function with its result, and the guest gets what that
    /// returns (e.g. accounting of what the call allocated,
    /// which may undo the call and return an error).
    After(Ident),
    /// `fast_path(NAME);` the guest library first runs a hand-written
    /// function with the application's arguments; when it returns a value,
    /// that is the call's result and nothing else is sent.
    FastPath(Ident),
    /// `internal;` a function of the protocol itself: the guest library
    /// does not export it (its own code calls it) and the host library
    /// does not have it, so it needs `implement(NAME)`.
    Internal,
}

/// `contextual_argument TYPE NAME = expr;`: an argument the application
/// never passes, computed by the generated guest code and sent like a
/// parameter.
#[derive(Debug, Clone)]
pub struct ContextualArg {
    /// Its type.
    pub ty: TypeRef,
    /// Its name (usable in expressions and in `argument(NAME)`).
    pub name: Ident,
    /// Its value, computed in the guest.
    pub value: Expr,
}

/// What an `argument(name)` refers to, once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgTarget {
    /// The n-th C parameter.
    Param(usize),
    /// The n-th `contextual_argument` of the function.
    Contextual(usize),
}

/// `argument(name) { annotations }`
#[derive(Debug, Clone)]
pub struct ArgumentBlock {
    /// The argument name as written.
    pub name: Ident,
    /// The annotations.
    pub annots: Annots,
    /// What the name refers to; always `Some` in a checked spec.
    pub target: Option<ArgTarget>,
}

/// A `{ ... }` list of argument-level annotations (the body of an
/// `argument`, `element`, `return` or `if` branch), with accessors for the
/// unconditional annotations.
#[derive(Debug, Clone, Default)]
pub struct Annots {
    /// The annotations in source order.
    pub items: Vec<ArgAnnot>,
    /// The braces and their content.
    pub span: Span,
}

/// Data direction of a pointer argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Copied guest → worker before the call.
    In,
    /// Copied worker → guest after the call.
    Out,
    /// Both.
    InOut,
}

/// How long the worker keeps a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Freed when the call returns (the default).
    Call,
    /// Kept until explicitly released (`deallocate`), e.g. the target of an
    /// asynchronous copy that completes later.
    Manual,
    /// Kept for the life of the guest process.
    Static,
}

/// Simple (argument-free) argument annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `no_copy;` the data is not transferred (only space is allocated).
    NoCopy,
    /// `string;` a NUL-terminated string (size computed with strlen + 1).
    String,
    /// `zero_terminated;` a list ended by a zero element (included).
    ZeroTerminated,
    /// `handle;` the value is a handle translated by the worker.
    Handle,
    /// `obj_record;` the object is recorded (for replay/migration).
    ObjRecord,
    /// `allocate;` the call creates the handle (on an out element or the
    /// return value); the worker adds it to the guest's handle table.
    Allocate,
    /// `deallocate;` the call drops one reference to the handle (the object
    /// is destroyed, and its id leaves the guest's handle table, when the
    /// last reference goes: `clReleaseMemObject`), or releases a buffer
    /// kept with `lifetime_manual`.
    Deallocate,
    /// `nullable;` the pointer may be NULL; NULL is passed through.
    Nullable,
    /// `must_be_null;` only NULL is supported; any other value makes the
    /// guest library fail the call with a clear error.
    MustBeNull,
    /// `opaque;` a pointer value passed through untouched and never
    /// dereferenced (e.g. callback user data).
    Opaque,
    /// `error_code;` on an `out` pointer to an integer (e.g. `errcode_ret`
    /// of `clCreateBuffer`): where the generated code writes the error of a
    /// call that fails outside the driver (invalid handle, unsupported
    /// function, transport failure), for functions whose return value is
    /// not an error code. At most one per function; never conditional.
    ErrorCode,
    /// `retain;` on a handle passed by value: the call adds one reference to
    /// the object (`clRetainMemObject`). `deallocate` drops one.
    Retain,
    /// `maybe_handle;` on an `in` `void*` buffer: if its bytes are exactly
    /// one pointer-sized value that is a live handle id of this guest, the
    /// worker passes the host object instead (`clSetKernelArg`'s
    /// `arg_value`).
    MaybeHandle,
    /// `key_value;` with `zero_terminated`: the list is (key, value) pairs
    /// ended by a zero key, so only even positions are tested for the
    /// terminator (a value may be zero). OpenCL property lists.
    KeyValue,
}

impl Flag {
    /// The keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Flag::NoCopy => "no_copy",
            Flag::String => "string",
            Flag::ZeroTerminated => "zero_terminated",
            Flag::Handle => "handle",
            Flag::ObjRecord => "obj_record",
            Flag::Allocate => "allocate",
            Flag::Deallocate => "deallocate",
            Flag::Nullable => "nullable",
            Flag::MustBeNull => "must_be_null",
            Flag::Opaque => "opaque",
            Flag::ErrorCode => "error_code",
            Flag::Retain => "retain",
            Flag::MaybeHandle => "maybe_handle",
            Flag::KeyValue => "key_value",
        }
    }

    /// All flags, for keyword lookup.
    pub const ALL: [Flag; 14] = [
        Flag::NoCopy,
        Flag::String,
        Flag::ZeroTerminated,
        Flag::Handle,
        Flag::ObjRecord,
        Flag::Allocate,
        Flag::Deallocate,
        Flag::Nullable,
        Flag::MustBeNull,
        Flag::Opaque,
        Flag::ErrorCode,
        Flag::Retain,
        Flag::MaybeHandle,
        Flag::KeyValue,
    ];
}

/// An argument-level annotation with its span.
#[derive(Debug, Clone)]
pub struct ArgAnnot {
    /// What it is.
    pub kind: ArgAnnotKind,
    /// The annotation text.
    pub span: Span,
}

/// Argument-level annotations.
#[derive(Debug, Clone)]
pub enum ArgAnnotKind {
    /// `in;` `out;` `inout;`
    Direction(Direction),
    /// `buffer(count);` the pointer points to `count` elements of the
    /// pointee type (bytes for `void*`).
    Buffer(Expr),
    /// `lifetime_call;` `lifetime_manual;` `lifetime_static;`
    Lifetime(Lifetime),
    /// A simple flag such as `no_copy;` or `allocate;`.
    Flag(Flag),
    /// `element { ... }` annotations for each element of the buffer; the
    /// builtin `index` is the element's position.
    Element(Annots),
    /// `type_cast(TYPE);` treat the value (or element) as `TYPE`.
    TypeCast(TypeRef),
    /// `value(expr);` on a scalar argument passed by value: the worker
    /// passes `expr` (evaluated with the call's arguments) to the driver
    /// instead of the guest's value, e.g. `value(CL_TRUE);` to force a
    /// blocking read. Never conditional (use `c ? a : b`).
    Value(Expr),
    /// `callback(user_data);` or `callback;` on a function pointer argument:
    /// the worker calls it back into the guest, passing `user_data` (an
    /// argument of the same function) through untouched.
    Callback(Option<Ident>),
    /// `if (cond) { ... } else { ... }`
    If {
        /// A boolean condition.
        cond: Expr,
        /// Annotations when it holds.
        then: Annots,
        /// Annotations otherwise (empty when no `else`).
        otherwise: Annots,
    },
}

impl Annots {
    /// The unconditional direction, if written.
    pub fn direction(&self) -> Option<Direction> {
        self.items.iter().find_map(|a| match a.kind {
            ArgAnnotKind::Direction(d) => Some(d),
            _ => None,
        })
    }

    /// The unconditional `buffer(..)` size, if written.
    pub fn buffer(&self) -> Option<&Expr> {
        self.items.iter().find_map(|a| match &a.kind {
            ArgAnnotKind::Buffer(e) => Some(e),
            _ => None,
        })
    }

    /// The unconditional lifetime (defaults to [`Lifetime::Call`]).
    pub fn lifetime(&self) -> Lifetime {
        self.items
            .iter()
            .find_map(|a| match a.kind {
                ArgAnnotKind::Lifetime(l) => Some(l),
                _ => None,
            })
            .unwrap_or(Lifetime::Call)
    }

    /// Whether the flag is written unconditionally.
    pub fn has(&self, flag: Flag) -> bool {
        self.items
            .iter()
            .any(|a| matches!(a.kind, ArgAnnotKind::Flag(f) if f == flag))
    }

    /// The `element { ... }` block, if any.
    pub fn element(&self) -> Option<&Annots> {
        self.items.iter().find_map(|a| match &a.kind {
            ArgAnnotKind::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The `type_cast(T)` target, if any.
    pub fn type_cast(&self) -> Option<&TypeRef> {
        self.items.iter().find_map(|a| match &a.kind {
            ArgAnnotKind::TypeCast(t) => Some(t),
            _ => None,
        })
    }

    /// `Some(user_data)` if the argument is a `callback`.
    pub fn callback(&self) -> Option<Option<&Ident>> {
        self.items.iter().find_map(|a| match &a.kind {
            ArgAnnotKind::Callback(u) => Some(u.as_ref()),
            _ => None,
        })
    }

    /// The `value(expr)` replacement of a by-value argument, if any.
    pub fn value(&self) -> Option<&Expr> {
        self.items.iter().find_map(|a| match &a.kind {
            ArgAnnotKind::Value(e) => Some(e),
            _ => None,
        })
    }

    /// Every annotation of this block, including those inside `if`
    /// branches (recursively), in source order; an `if` is yielded before
    /// its branches' items. The content of `element { ... }` is not
    /// included (it describes the elements, not this value): call
    /// `all_items` on [`Annots::element`] for that.
    pub fn all_items(&self) -> Vec<&ArgAnnot> {
        fn walk<'a>(a: &'a Annots, out: &mut Vec<&'a ArgAnnot>) {
            for item in &a.items {
                out.push(item);
                if let ArgAnnotKind::If {
                    then, otherwise, ..
                } = &item.kind
                {
                    walk(then, out);
                    walk(otherwise, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// Whether the flag is written in this block or in any of its `if`
    /// branches.
    pub fn has_anywhere(&self, flag: Flag) -> bool {
        self.all_items()
            .iter()
            .any(|a| matches!(a.kind, ArgAnnotKind::Flag(f) if f == flag))
    }

    /// Every `type_cast(T)` of this block and its `if` branches, with the
    /// conditions that lead to it (outermost first; a condition is `(cond,
    /// true)` for a `then` branch and `(cond, false)` for an `else`).
    pub fn type_casts(&self) -> Vec<(Vec<(&Expr, bool)>, &TypeRef)> {
        fn walk<'a>(
            a: &'a Annots,
            path: &mut Vec<(&'a Expr, bool)>,
            out: &mut Vec<(Vec<(&'a Expr, bool)>, &'a TypeRef)>,
        ) {
            for item in &a.items {
                match &item.kind {
                    ArgAnnotKind::TypeCast(t) => out.push((path.clone(), t)),
                    ArgAnnotKind::If {
                        cond,
                        then,
                        otherwise,
                    } => {
                        path.push((cond, true));
                        walk(then, path, out);
                        path.pop();
                        path.push((cond, false));
                        walk(otherwise, path, out);
                        path.pop();
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// The `if` annotations: `(cond, then, otherwise)`.
    pub fn conditionals(&self) -> impl Iterator<Item = (&Expr, &Annots, &Annots)> {
        self.items.iter().filter_map(|a| match &a.kind {
            ArgAnnotKind::If {
                cond,
                then,
                otherwise,
            } => Some((cond, then, otherwise)),
            _ => None,
        })
    }
}

/// An expression with its span and (after checking) its type.
#[derive(Debug, Clone)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// The expression text.
    pub span: Span,
    /// Its type; always `Some` in a checked spec.
    pub ty: Option<ExprType>,
}

impl Expr {
    /// Creates an unchecked expression.
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr {
            kind,
            span,
            ty: None,
        }
    }

    /// The checked type. Panics on an unchecked AST.
    pub fn ty(&self) -> &ExprType {
        self.ty
            .as_ref()
            .expect("Expr::ty called on an unchecked specification")
    }

    /// The value of an integer constant expression: literals, constants and
    /// enum variants (once resolved), unary `-`, `+ - * / %` and `c ? a : b`
    /// over such values (with constant comparisons and `&& || !` as
    /// conditions). `None` if the expression depends on arguments, the
    /// runtime or `sizeof`, or on overflow or division by zero.
    pub fn const_value(&self) -> Option<i128> {
        match &self.kind {
            ExprKind::Int(v) => Some(i128::from(*v)),
            ExprKind::Bool(b) => Some(i128::from(*b)),
            ExprKind::Name {
                resolved: Some(NameRef::Const(v)),
                ..
            } => Some(*v),
            ExprKind::Unary(UnaryOp::Neg, e) => e.const_value()?.checked_neg(),
            ExprKind::Unary(UnaryOp::Not, e) => Some(i128::from(e.const_value()? == 0)),
            ExprKind::Binary(op, a, b) => {
                let (a, b) = (a.const_value()?, b.const_value()?);
                match op {
                    BinaryOp::Add => a.checked_add(b),
                    BinaryOp::Sub => a.checked_sub(b),
                    BinaryOp::Mul => a.checked_mul(b),
                    BinaryOp::Div => a.checked_div(b),
                    BinaryOp::Rem => a.checked_rem(b),
                    BinaryOp::Eq => Some(i128::from(a == b)),
                    BinaryOp::Ne => Some(i128::from(a != b)),
                    BinaryOp::Lt => Some(i128::from(a < b)),
                    BinaryOp::Le => Some(i128::from(a <= b)),
                    BinaryOp::Gt => Some(i128::from(a > b)),
                    BinaryOp::Ge => Some(i128::from(a >= b)),
                    BinaryOp::And => Some(i128::from(a != 0 && b != 0)),
                    BinaryOp::Or => Some(i128::from(a != 0 || b != 0)),
                }
            }
            ExprKind::Conditional(c, a, b) => {
                if c.const_value()? != 0 {
                    a.const_value()
                } else {
                    b.const_value()
                }
            }
            _ => None,
        }
    }
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!` (bool)
    Not,
    /// `-` (integer)
    Neg,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&&`
    And,
    /// `||`
    Or,
}

impl BinaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
        }
    }
}

/// What a name in an expression refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameRef {
    /// The n-th C parameter of the enclosing function.
    Param(usize),
    /// The n-th contextual argument of the enclosing function.
    Contextual(usize),
    /// A `const` or enum variant, with its value.
    Const(i128),
    /// The `index` builtin (inside `element`).
    Index,
    /// A declared `tracker`.
    Tracker,
    /// A declared `resource`.
    Resource,
}

/// Expressions.
#[derive(Debug, Clone)]
pub enum ExprKind {
    /// An integer literal (C suffixes `u`/`l` are accepted and dropped).
    Int(u64),
    /// `true` or `false`.
    Bool(bool),
    /// `NULL`
    Null,
    /// A name: argument, constant, `index`, tracker or resource.
    Name {
        /// The name.
        name: Ident,
        /// What it refers to; always `Some` in a checked spec.
        resolved: Option<NameRef>,
    },
    /// `sizeof(TYPE)`
    SizeOf(TypeRef),
    /// `!e`, `-e`
    Unary(UnaryOp, Box<Expr>),
    /// `a OP b`
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `c ? a : b`
    Conditional(Box<Expr>, Box<Expr>, Box<Expr>),
    /// A runtime function call such as `get_n_bufs(async_DtoH, stream)`.
    Call {
        /// The runtime function.
        func: Ident,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// `metadata(object)->field`
    Metadata {
        /// A handle-typed argument.
        object: Ident,
        /// A field of the handle type's `metadata` declaration.
        field: Ident,
    },
    /// `a[i]` (on a pointer argument or a metadata list).
    Index(Box<Expr>, Box<Expr>),
}
