//! Resolved C types ([`Ty`]), expression types ([`ExprType`]) and the table
//! of runtime functions callable from specifications ([`RUNTIME_FUNCTIONS`]).

use std::fmt;

/// The built-in scalar types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// `u8`
    U8,
    /// `u16`
    U16,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `usize` (C `size_t`)
    Usize,
    /// `isize` (C `ptrdiff_t`)
    Isize,
    /// `bool`
    Bool,
    /// `char` (C `char`, one byte; strings are `const char*`)
    Char,
}

impl Scalar {
    /// Looks a scalar up by its LAPIS name.
    pub fn from_name(name: &str) -> Option<Scalar> {
        Some(match name {
            "u8" => Scalar::U8,
            "u16" => Scalar::U16,
            "u32" => Scalar::U32,
            "u64" => Scalar::U64,
            "i8" => Scalar::I8,
            "i16" => Scalar::I16,
            "i32" => Scalar::I32,
            "i64" => Scalar::I64,
            "f32" => Scalar::F32,
            "f64" => Scalar::F64,
            "usize" => Scalar::Usize,
            "isize" => Scalar::Isize,
            "bool" => Scalar::Bool,
            "char" => Scalar::Char,
            _ => return None,
        })
    }

    /// The LAPIS name (also the Rust type name, except `char` which is `i8`
    /// in C ABI terms).
    pub fn name(self) -> &'static str {
        match self {
            Scalar::U8 => "u8",
            Scalar::U16 => "u16",
            Scalar::U32 => "u32",
            Scalar::U64 => "u64",
            Scalar::I8 => "i8",
            Scalar::I16 => "i16",
            Scalar::I32 => "i32",
            Scalar::I64 => "i64",
            Scalar::F32 => "f32",
            Scalar::F64 => "f64",
            Scalar::Usize => "usize",
            Scalar::Isize => "isize",
            Scalar::Bool => "bool",
            Scalar::Char => "char",
        }
    }

    /// Whether this is an integer type (including `char`).
    pub fn is_integer(self) -> bool {
        !matches!(self, Scalar::F32 | Scalar::F64 | Scalar::Bool)
    }

    /// Whether this is a floating point type.
    pub fn is_float(self) -> bool {
        matches!(self, Scalar::F32 | Scalar::F64)
    }

    /// The inclusive value range of an integer type (usize/isize as 64-bit).
    pub fn int_range(self) -> Option<(i128, i128)> {
        Some(match self {
            Scalar::U8 => (0, u8::MAX as i128),
            Scalar::U16 => (0, u16::MAX as i128),
            Scalar::U32 => (0, u32::MAX as i128),
            Scalar::U64 | Scalar::Usize => (0, u64::MAX as i128),
            Scalar::I8 | Scalar::Char => (i8::MIN as i128, i8::MAX as i128),
            Scalar::I16 => (i16::MIN as i128, i16::MAX as i128),
            Scalar::I32 => (i32::MIN as i128, i32::MAX as i128),
            Scalar::I64 | Scalar::Isize => (i64::MIN as i128, i64::MAX as i128),
            _ => return None,
        })
    }
}

/// A resolved C type.
///
/// Named types keep their name (so generated code can print `cl_uint`
/// rather than `u32`) together with what they resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// `void` (only as a return type or a pointee).
    Void,
    /// A built-in scalar.
    Scalar(Scalar),
    /// A `type NAME = ...;` alias and its target.
    Alias {
        /// The alias name.
        name: String,
        /// What it stands for.
        target: Box<Ty>,
    },
    /// A `handle NAME;` type.
    Handle(String),
    /// An `enum NAME : repr`.
    Enum {
        /// The enum name.
        name: String,
        /// Its underlying integer type.
        repr: Scalar,
    },
    /// A `struct NAME`.
    Struct(String),
    /// A `callback NAME = ...` function pointer type.
    Callback(String),
    /// A pointer.
    Pointer {
        /// The pointed-to type.
        pointee: Box<Ty>,
        /// Whether the pointee is `const`.
        pointee_const: bool,
    },
}

impl Ty {
    /// Removes aliases at the top level (`cl_uint` → `u32`).
    pub fn strip_alias(&self) -> &Ty {
        let mut t = self;
        while let Ty::Alias { target, .. } = t {
            t = target;
        }
        t
    }

    /// The pointee, if this is (an alias of) a pointer.
    pub fn pointee(&self) -> Option<&Ty> {
        match self.strip_alias() {
            Ty::Pointer { pointee, .. } => Some(pointee),
            _ => None,
        }
    }

    /// Whether this is (an alias of) a pointer.
    pub fn is_pointer(&self) -> bool {
        self.pointee().is_some()
    }

    /// Whether this is (an alias of) `void`.
    pub fn is_void(&self) -> bool {
        matches!(self.strip_alias(), Ty::Void)
    }

    /// The handle type name, if this is (an alias of) a handle.
    pub fn handle(&self) -> Option<&str> {
        match self.strip_alias() {
            Ty::Handle(h) => Some(h),
            _ => None,
        }
    }

    /// The callback type name, if this is (an alias of) a callback.
    pub fn callback(&self) -> Option<&str> {
        match self.strip_alias() {
            Ty::Callback(c) => Some(c),
            _ => None,
        }
    }

    /// The scalar this is or resolves to (enums resolve to their repr).
    pub fn scalar(&self) -> Option<Scalar> {
        match self.strip_alias() {
            Ty::Scalar(s) => Some(*s),
            Ty::Enum { repr, .. } => Some(*repr),
            _ => None,
        }
    }

    /// Whether this is an integer (scalar or enum).
    pub fn is_integer(&self) -> bool {
        self.scalar().is_some_and(Scalar::is_integer)
    }

    /// Whether this is a character type (for `string`).
    pub fn is_char(&self) -> bool {
        matches!(self.scalar(), Some(Scalar::Char | Scalar::I8 | Scalar::U8))
    }

    /// The type of a value of this C type inside a LAPIS expression.
    pub fn expr_type(&self) -> ExprType {
        match self.strip_alias() {
            Ty::Void => ExprType::Void,
            Ty::Scalar(Scalar::Bool) => ExprType::Bool,
            Ty::Scalar(s) if s.is_float() => ExprType::Float,
            Ty::Scalar(_) | Ty::Enum { .. } => ExprType::Int,
            Ty::Handle(h) => ExprType::Handle(h.clone()),
            Ty::Struct(s) => ExprType::Struct(s.clone()),
            Ty::Callback(_) => ExprType::Pointer(Some(Box::new(self.clone()))),
            Ty::Pointer { pointee, .. } => ExprType::Pointer(Some(pointee.clone())),
            Ty::Alias { .. } => unreachable!("strip_alias removed aliases"),
        }
    }
}

impl fmt::Display for Ty {
    /// C-like rendering using declared names (`const char*`, `cl_mem`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Void => f.write_str("void"),
            Ty::Scalar(s) => f.write_str(s.name()),
            Ty::Alias { name, .. }
            | Ty::Handle(name)
            | Ty::Enum { name, .. }
            | Ty::Struct(name)
            | Ty::Callback(name) => f.write_str(name),
            Ty::Pointer {
                pointee,
                pointee_const,
            } => {
                if *pointee_const {
                    write!(f, "const {pointee}*")
                } else {
                    write!(f, "{pointee}*")
                }
            }
        }
    }
}

/// The type of a LAPIS expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprType {
    /// Any integer (sizes, counts, enum values, constants).
    Int,
    /// A floating point value (only comparable, never a size).
    Float,
    /// A boolean (conditions).
    Bool,
    /// A pointer; `Some(pointee)` for pointers with a known pointee,
    /// `None` for `NULL`.
    Pointer(Option<Box<Ty>>),
    /// A handle of the named type.
    Handle(String),
    /// A struct value (not usable in expressions other than as a value).
    Struct(String),
    /// A runtime-sized list of values (metadata `[]` fields).
    List(Box<ExprType>),
    /// A list of buffers returned by `get_bufs` (assignable to `void**`).
    BufferList,
    /// A tracker name.
    Tracker,
    /// A resource name.
    Resource,
    /// No value (void runtime functions).
    Void,
}

impl ExprType {
    /// Whether the value may be used where an integer is needed.
    pub fn is_int(&self) -> bool {
        matches!(self, ExprType::Int)
    }
}

impl fmt::Display for ExprType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExprType::Int => f.write_str("integer"),
            ExprType::Float => f.write_str("float"),
            ExprType::Bool => f.write_str("bool"),
            ExprType::Pointer(None) => f.write_str("pointer (NULL)"),
            ExprType::Pointer(Some(p)) => write!(f, "pointer to {p}"),
            ExprType::Handle(h) => write!(f, "handle `{h}`"),
            ExprType::Struct(s) => write!(f, "struct `{s}`"),
            ExprType::List(e) => write!(f, "list of {e}"),
            ExprType::BufferList => f.write_str("buffer list"),
            ExprType::Tracker => f.write_str("tracker"),
            ExprType::Resource => f.write_str("resource"),
            ExprType::Void => f.write_str("void"),
        }
    }
}

/// The kind of value a runtime function parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtParam {
    /// A declared `tracker` name.
    Tracker,
    /// A key: a handle or an integer (e.g. the stream the buffers belong to).
    Key,
    /// A pointer argument (the buffer).
    Pointer,
    /// An integer.
    Int,
}

impl fmt::Display for RtParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RtParam::Tracker => "a tracker",
            RtParam::Key => "a handle or integer key",
            RtParam::Pointer => "a pointer argument",
            RtParam::Int => "an integer",
        })
    }
}

/// A runtime (state-tracking) function callable from specifications.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeFn {
    /// Its name.
    pub name: &'static str,
    /// Its parameters.
    pub params: &'static [RtParam],
    /// Its result (`Void` for statements).
    pub result: RtResult,
    /// One-line description (used by `lapis explain` and the docs).
    pub doc: &'static str,
}

/// The result type of a runtime function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtResult {
    /// No value: usable only as a statement.
    Void,
    /// An integer.
    Int,
    /// A buffer list.
    BufferList,
}

impl RtResult {
    /// As an expression type.
    pub fn expr_type(self) -> ExprType {
        match self {
            RtResult::Void => ExprType::Void,
            RtResult::Int => ExprType::Int,
            RtResult::BufferList => ExprType::BufferList,
        }
    }
}

/// Every runtime function a specification may call.
pub const RUNTIME_FUNCTIONS: &[RuntimeFn] = &[
    RuntimeFn {
        name: "register_buf",
        params: &[
            RtParam::Tracker,
            RtParam::Key,
            RtParam::Pointer,
            RtParam::Int,
        ],
        result: RtResult::Void,
        doc: "remember (buffer, size) under (tracker, key) until it is fetched by get_bufs",
    },
    RuntimeFn {
        name: "unregister_buf",
        params: &[RtParam::Tracker, RtParam::Key, RtParam::Pointer],
        result: RtResult::Void,
        doc: "forget a buffer registered under (tracker, key)",
    },
    RuntimeFn {
        name: "get_bufs",
        params: &[RtParam::Tracker, RtParam::Key],
        result: RtResult::BufferList,
        doc: "the buffers registered under (tracker, key), oldest first",
    },
    RuntimeFn {
        name: "get_n_bufs",
        params: &[RtParam::Tracker, RtParam::Key],
        result: RtResult::Int,
        doc: "the number of buffers registered under (tracker, key)",
    },
    RuntimeFn {
        name: "get_buf_size",
        params: &[RtParam::Tracker, RtParam::Key, RtParam::Int],
        result: RtResult::Int,
        doc: "the size in bytes of the i-th buffer registered under (tracker, key)",
    },
];

/// Looks a runtime function up by name.
pub fn runtime_fn(name: &str) -> Option<&'static RuntimeFn> {
    RUNTIME_FUNCTIONS.iter().find(|f| f.name == name)
}
