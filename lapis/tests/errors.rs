//! Malformed specifications: each must fail with the expected message at the
//! exact line and column.

use lapis::Diagnostics;

/// Declarations shared by the cases below; bodies start on line 13.
const PRELUDE: &str = r#"api t version "1";
type size_t = usize;
type cl_int = i32;
const CL_SUCCESS: cl_int = 0;
handle cl_mem;
handle cl_context;
handle CUstream;
handle CUfunction;
metadata CUfunction { usize fn_argc; usize fn_arg_size[]; }
tracker pending;
resource kernels;
callback pfn_notify = void (const char* errinfo, void* user_data) { argument(errinfo) { in; string; } argument(user_data) { opaque; } }
"#;

fn prelude_lines() -> usize {
    PRELUDE.lines().count()
}

fn diags_of(text: &str) -> Diagnostics {
    match lapis::parse_str("bad.lapis", text) {
        Ok(_) => panic!("spec unexpectedly checked cleanly:\n{text}"),
        Err(d) => d,
    }
}

/// Asserts that `text` fails with a diagnostic containing `msg` at
/// `line:col` (1-based, in the whole text).
fn expect_at(text: &str, line: usize, col: usize, msg: &str) {
    let d = diags_of(text);
    let found = d
        .iter()
        .any(|x| x.message().contains(msg) && x.line() == line && x.column() == col);
    assert!(
        found,
        "expected `{msg}` at {line}:{col}; got:\n{}",
        d.iter()
            .map(|x| format!("{}:{}: {}", x.line(), x.column(), x.message()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The rendering names the file, line and column.
    assert!(
        d.render().contains(&format!("bad.lapis:{line}:{col}")),
        "{}",
        d.render()
    );
}

/// Like [`expect_at`] for a body appended to [`PRELUDE`]; `line` is
/// counted from the first line of the body.
fn expect(body: &str, line: usize, col: usize, msg: &str) {
    let text = format!("{PRELUDE}{body}");
    expect_at(&text, prelude_lines() + line, col, msg);
}

macro_rules! bad {
    ($name:ident, $body:expr, $line:expr, $col:expr, $msg:expr) => {
        #[test]
        fn $name() {
            expect($body, $line, $col, $msg);
        }
    };
}

#[test]
fn prelude_is_valid() {
    let text = format!("{PRELUDE}cl_int ok(cl_mem m);\n");
    lapis::parse_str("ok.lapis", &text).unwrap();
}

// ------------------------------------------------------------------ syntax

bad!(
    missing_semicolon,
    "cl_int f(cl_mem m) {\n    sync\n}\n",
    2,
    9,
    "expected `;`"
);
bad!(
    missing_semicolon_in_declaration,
    "type cl_uint = u32\nhandle cl_event;\n",
    1,
    19,
    "expected `;`"
);
bad!(
    unbalanced_brace,
    "cl_int f(cl_mem m) {\n    argument(m) { deallocate; \n}\n",
    4,
    1,
    "found end of file"
);
bad!(
    elided_annotation,
    "cl_int f(void** extra) {\n    argument(extra) { in; ... }\n}\n",
    2,
    27,
    "elided specification `...`"
);
bad!(
    bad_token,
    "cl_int f(cl_mem m) { sync; @ }\n",
    1,
    28,
    "found `@`"
);
bad!(
    missing_parameter_name,
    "cl_int f(cl_mem) { sync; }\n",
    1,
    16,
    "expected"
);
bad!(
    unknown_argument_annotation,
    "cl_int f(size_t* p) {\n    argument(p) { inn; buffer(1); }\n}\n",
    2,
    19,
    "unknown argument annotation `inn`"
);
bad!(
    argument_annotation_at_function_level,
    "cl_int f(size_t* p) {\n    buffer(4);\n}\n",
    2,
    5,
    "`buffer` is an argument annotation"
);
bad!(
    function_annotation_in_argument,
    "cl_int f(size_t* p) {\n    argument(p) { in; async; }\n}\n",
    2,
    23,
    "`async` is a function annotation"
);
bad!(
    buffer_without_size,
    "cl_int f(size_t* p) {\n    argument(p) { in; buffer; }\n}\n",
    2,
    23,
    "`buffer` needs arguments"
);
bad!(
    conditional_async,
    "cl_int f(size_t n) {\n    if (n > 0) { async; }\n}\n",
    2,
    18,
    "`async` cannot be conditional"
);

#[test]
fn missing_api_header() {
    expect_at("handle cl_mem;\n", 1, 1, "expected `api`");
}

// ------------------------------------------------------------------ names

bad!(
    unknown_argument_name,
    "cl_int f(size_t* sizes) {\n    argument(size) { in; buffer(1); }\n}\n",
    2,
    14,
    "unknown argument `size` in `argument(..)`"
);
bad!(
    buffer_size_undeclared,
    "cl_int f(void* p, size_t n) {\n    argument(p) { in; buffer(count); }\n}\n",
    2,
    30,
    "unknown name `count`"
);
bad!(
    index_outside_element,
    "cl_int f(void* p, size_t n) {\n    argument(p) { in; buffer(index); }\n}\n",
    2,
    30,
    "`index` used outside `element"
);
bad!(
    unknown_param_type,
    "cl_int f(cl_buffer b);\n",
    1,
    10,
    "unknown type `cl_buffer`"
);
bad!(
    type_cast_unknown_type,
    "cl_int f(void** p, size_t n) {\n    argument(p) { in; buffer(n); element { type_cast(cl_thing*); buffer(1); } }\n}\n",
    2,
    54,
    "unknown type `cl_thing`"
);
bad!(
    unknown_runtime_function,
    "cl_int f(void* p, CUstream s, size_t n) {\n    argument(p) { in; buffer(n); }\n    remember_buf(pending, s, p, n);\n}\n",
    3,
    5,
    "unknown runtime function `remember_buf`"
);
bad!(
    runtime_function_arity,
    "cl_int f(void* p, CUstream s, size_t n) {\n    argument(p) { in; buffer(n); }\n    register_buf(pending, s, p);\n}\n",
    3,
    5,
    "`register_buf` takes 4 arguments, found 3"
);
bad!(
    runtime_function_result_unused,
    "cl_int f(CUstream s) {\n    get_n_bufs(pending, s);\n}\n",
    2,
    5,
    "the result of `get_n_bufs` is unused"
);
bad!(
    unknown_resource,
    "cl_int f(CUstream s) {\n    consumes_rc(kernel, 1);\n}\n",
    2,
    17,
    "unknown resource `kernel`"
);
bad!(
    unknown_metadata_field,
    "cl_int f(CUfunction k, void* p) {\n    argument(p) { in; buffer(metadata(k)->fn_argcount); }\n}\n",
    2,
    43,
    "unknown metadata field `fn_argcount` of `CUfunction`"
);

// ------------------------------------------------------------------ duplicates

bad!(
    duplicate_function,
    "cl_int f(cl_mem m);\ncl_int f(cl_mem m);\n",
    2,
    8,
    "duplicate function `f`"
);
bad!(
    duplicate_type,
    "handle cl_event;\ntype cl_event = u64;\n",
    2,
    6,
    "duplicate type `cl_event`"
);
bad!(
    duplicate_argument_block,
    "cl_int f(size_t* p) {\n    argument(p) { in; }\n    argument(p) { buffer(1); }\n}\n",
    3,
    14,
    "duplicate `argument(p)` block"
);
bad!(
    sync_and_async,
    "cl_int f(cl_mem m) {\n    sync; success(CL_SUCCESS);\n    async;\n}\n",
    3,
    5,
    "is both `sync` and `async`"
);
bad!(
    in_and_out,
    "cl_int f(size_t* p) {\n    argument(p) { in; out; buffer(1); }\n}\n",
    2,
    23,
    "`p` is both `in` and `out`"
);
bad!(
    conflicting_lifetimes,
    "cl_int f(void* p, size_t n) {\n    argument(p) { in; buffer(n); lifetime_call; lifetime_static; }\n}\n",
    2,
    49,
    "conflicting lifetimes"
);

// ------------------------------------------------------------------ types of arguments

bad!(
    buffer_on_non_pointer,
    "cl_int f(size_t n) {\n    argument(n) { in; buffer(4); }\n}\n",
    2,
    23,
    "`buffer` on non-pointer argument `n`"
);
bad!(
    element_on_non_pointer,
    "cl_int f(cl_mem m) {\n    argument(m) { element { allocate; } }\n}\n",
    2,
    19,
    "`element` on non-pointer argument `m`"
);
bad!(
    string_on_non_char_pointer,
    "cl_int f(size_t* p) {\n    argument(p) { in; string; }\n}\n",
    2,
    23,
    "`string` on `p`"
);
bad!(
    pointer_without_annotation,
    "cl_int f(cl_mem m, const size_t* origin);\n",
    1,
    20,
    "pointer argument `origin` of function `f` has no annotation"
);
bad!(
    pointer_without_direction,
    "cl_int f(size_t* p) {\n    argument(p) { buffer(1); }\n}\n",
    2,
    14,
    "pointer argument `p` has no direction"
);
bad!(
    void_pointer_without_size,
    "cl_int f(void* p) {\n    argument(p) { in; }\n}\n",
    2,
    14,
    "points to `void`, so its size must be given"
);
bad!(
    pointer_array_without_element,
    "cl_int f(const char** names, size_t n) {\n    argument(names) { in; buffer(n); }\n}\n",
    2,
    14,
    "points to pointers"
);
bad!(
    callback_without_annotation,
    "cl_int f(pfn_notify cb, void* user_data) {\n    argument(user_data) { opaque; }\n}\n",
    1,
    10,
    "callback argument `cb` of function `f` has no annotation"
);
bad!(
    callback_on_non_callback,
    "cl_int f(size_t n) {\n    argument(n) { callback; }\n}\n",
    2,
    19,
    "`callback` on `n`, which is not a callback type"
);
bad!(
    allocate_on_non_out,
    "cl_int f(cl_context c) {\n    argument(c) { allocate; }\n}\n",
    2,
    19,
    "`allocate` on `c`, which is not an output"
);
bad!(
    allocate_on_non_handle,
    "cl_int f(size_t* p) {\n    argument(p) { out; element { allocate; } }\n}\n",
    2,
    34,
    "`allocate` on `p`, which is not a handle"
);

// ------------------------------------------------------------------ expressions

bad!(
    bool_used_as_size,
    "cl_int f(void* p, size_t n) {\n    argument(p) { in; buffer(n > 0); }\n}\n",
    2,
    30,
    "the size in `buffer(..)` must be an integer, found bool"
);
bad!(
    handle_in_arithmetic,
    "cl_int f(void* p, cl_mem m) {\n    argument(p) { in; buffer(m * 4); }\n}\n",
    2,
    30,
    "handle `cl_mem` used in arithmetic"
);
bad!(
    if_condition_not_bool,
    "cl_int f(void* p, size_t n) {\n    argument(p) { in; if (n) { buffer(n); } else { buffer(1); } }\n}\n",
    2,
    27,
    "the condition of `if` must be a bool, found integer"
);
bad!(
    success_wrong_type,
    "cl_int f(cl_mem m) {\n    async; success(m);\n}\n",
    2,
    20,
    "`success` value must be integer"
);
bad!(
    success_on_void_function,
    "void f(cl_mem m) {\n    async; success(0);\n}\n",
    2,
    12,
    "`success` on `f`, which returns `void`"
);
bad!(
    async_without_success,
    "cl_int f(cl_mem m) {\n    async;\n}\n",
    1,
    8,
    "async function `f` needs a `success(VALUE)`"
);
bad!(
    consumes_rc_not_integer,
    "cl_int f(cl_mem m) {\n    consumes_rc(kernels, m);\n}\n",
    2,
    26,
    "the amount of `consumes_rc` must be an integer"
);
bad!(
    contextual_argument_type_mismatch,
    "cl_int f(CUstream s) {\n    contextual_argument size_t n = get_bufs(pending, s);\n}\n",
    2,
    36,
    "contextual argument `n` has type `size_t` but its value is buffer list"
);

// ------------------------------------------------------------------ async outputs

bad!(
    async_out_without_deferral,
    "cl_int f(void* p, size_t n) {\n    async; success(CL_SUCCESS);\n    argument(p) { out; buffer(n); }\n}\n",
    3,
    19,
    "output `p` of async function `f`"
);
bad!(
    async_manual_buffer_not_registered,
    "cl_int f(void* p, size_t n) {\n    async; success(CL_SUCCESS);\n    argument(p) { no_copy; buffer(n); lifetime_manual; }\n}\n",
    3,
    14,
    "is `no_copy; lifetime_manual;` in async `f` but never registered"
);

// ------------------------------------------------------------------ declarations

bad!(
    const_out_of_range,
    "const BIG: u8 = 300;\n",
    1,
    7,
    "value 300 of `BIG` does not fit in `u8`"
);
bad!(
    enum_with_float_repr,
    "enum E : f32 { A = 1 }\n",
    1,
    10,
    "must have an integer underlying type"
);
bad!(
    alias_cycle,
    "type a_t = b_t;\ntype b_t = a_t;\n",
    1,
    6,
    "refers to itself"
);

// ------------------------------------------------------------------ handles, error codes, references

bad!(
    handle_error_not_integer,
    "handle cl_x = true;\n",
    1,
    15,
    "the invalid-handle error of `cl_x` must be an integer, found bool"
);
bad!(
    handle_error_not_constant,
    "handle cl_x = get_n_bufs(pending, 0);\n",
    1,
    15,
    "the invalid-handle error of `cl_x` must be a constant"
);
bad!(
    error_value_unknown_kind,
    "error_value fatal = 1;\n",
    1,
    13,
    "unknown error value kind `fatal`"
);
bad!(
    error_value_twice,
    "error_value transport = 1;\nerror_value transport = 2;\n",
    2,
    13,
    "error value `transport`"
);
bad!(
    error_value_not_constant,
    "error_value unsupported = get_n_bufs(pending, 0);\n",
    1,
    27,
    "error value `unsupported` must be a constant"
);
bad!(
    error_value_not_integer,
    "error_value unsupported = true;\n",
    1,
    27,
    "error value `unsupported` must be an integer"
);
bad!(
    error_code_not_pointer_to_integer,
    "cl_mem f(size_t n, void* p) {\n    argument(p) { out; buffer(n); error_code; }\n}\n",
    2,
    35,
    "`error_code` on `p`, which is not a pointer to an integer"
);
bad!(
    error_code_not_out,
    "cl_mem f(cl_int* e) {\n    argument(e) { in; error_code; }\n}\n",
    2,
    23,
    "`error_code` on `e`, which is not an `out` argument"
);
bad!(
    two_error_codes,
    "cl_mem f(cl_int* e, cl_int* e2) {\n    argument(e) { out; error_code; }\n    argument(e2) { out; error_code; }\n}\n",
    3,
    25,
    "`f` has two `error_code` arguments, `e` and `e2`"
);
bad!(
    error_code_conditional,
    "cl_mem f(cl_int* e, size_t n) {\n    argument(e) { out; if (n > 0) { error_code; } }\n}\n",
    2,
    37,
    "`error_code` cannot be conditional"
);
bad!(
    retain_on_pointer,
    "cl_int f(cl_mem* m) {\n    argument(m) { in; retain; }\n}\n",
    2,
    23,
    "`retain` on `m`, which is not a handle passed by value"
);
bad!(
    retain_on_integer,
    "cl_int f(size_t n) {\n    argument(n) { retain; }\n}\n",
    2,
    19,
    "`retain` on `n`, which is not a handle passed by value"
);
bad!(
    retain_and_deallocate,
    "cl_int f(cl_mem m) {\n    argument(m) { retain; deallocate; }\n}\n",
    2,
    27,
    "`m` is both `retain` and `deallocate`"
);
bad!(
    value_wrong_type,
    "cl_int f(cl_int b) {\n    argument(b) { value(true); }\n}\n",
    2,
    25,
    "`value` for `b` must be integer (the type `cl_int`), found bool"
);
bad!(
    value_on_pointer,
    "cl_int f(size_t* p) {\n    argument(p) { in; value(1); }\n}\n",
    2,
    23,
    "`value` on `p`, which is not a scalar passed by value"
);
bad!(
    value_conditional,
    "cl_int f(cl_int b, size_t n) {\n    argument(b) { if (n > 0) { value(1); } }\n}\n",
    2,
    32,
    "`value` cannot be conditional"
);
bad!(
    value_needs_one_argument,
    "cl_int f(cl_int b) {\n    argument(b) { value(1, 2); }\n}\n",
    2,
    24,
    "`value` takes 1 argument, found 2"
);
bad!(
    maybe_handle_on_typed_pointer,
    "cl_int f(size_t* p) {\n    argument(p) { in; maybe_handle; }\n}\n",
    2,
    23,
    "`maybe_handle` on `p`, which is not a `void*` buffer"
);
bad!(
    maybe_handle_on_output,
    "cl_int f(void* p, size_t n) {\n    argument(p) { out; buffer(n); maybe_handle; }\n}\n",
    2,
    35,
    "`maybe_handle` on `p`, which is not an `in` argument"
);
bad!(
    key_value_without_zero_terminated,
    "cl_int f(size_t* p, size_t n) {\n    argument(p) { in; buffer(n); key_value; }\n}\n",
    2,
    34,
    "`key_value` on `p`, which is not `zero_terminated`"
);
bad!(
    async_out_handle_not_allocated,
    "cl_int f(cl_mem* m) {\n    async; success(CL_SUCCESS);\n    argument(m) { out; }\n}\n",
    3,
    19,
    "output `m` of async function `f`"
);
bad!(
    async_allocated_handle_with_other_output,
    "cl_int f(cl_mem* m, size_t* n) {\n    async; success(CL_SUCCESS);\n    argument(m) { out; element { allocate; } }\n    argument(n) { out; }\n}\n",
    4,
    19,
    "output `n` of async function `f`"
);

#[test]
fn async_allocated_handles_are_allowed() {
    let text = format!(
        "{PRELUDE}cl_int f(cl_mem* m) {{\n    async; success(CL_SUCCESS);\n    argument(m) {{ out; nullable; element {{ allocate; }} }}\n}}\n"
    );
    lapis::parse_str("ok.lapis", &text).unwrap_or_else(|d| panic!("{d}"));
}

#[test]
fn many_errors_are_collected_in_order() {
    let text = format!(
        "{PRELUDE}cl_int f(size_t* p) {{\n    argument(q) {{ in; }}\n}}\ncl_int g(cl_buffer b);\ncl_int f(cl_mem m);\n"
    );
    let d = diags_of(&text);
    let lines: Vec<usize> = d.iter().map(|x| x.line()).collect();
    assert!(d.len() >= 4, "{}", d.render());
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "diagnostics are sorted by position");
    let n = prelude_lines();
    assert!(lines.contains(&(n + 1))); // p has no annotation
    assert!(lines.contains(&(n + 2))); // unknown argument q
    assert!(lines.contains(&(n + 4))); // unknown type
    assert!(lines.contains(&(n + 5))); // duplicate f
}

#[test]
fn rendering_underlines_and_helps() {
    let text =
        format!("{PRELUDE}cl_int f(size_t* p) {{\n    argument(p) {{ inn; buffer(1); }}\n}}\n");
    let d = diags_of(&text);
    let r = d.render();
    assert!(
        r.contains("error: unknown argument annotation `inn`"),
        "{r}"
    );
    assert!(r.contains("^^^"), "{r}");
    assert!(r.contains("did you mean `in`"), "{r}");
    assert!(!r.contains('\u{1b}'), "plain rendering has no colors");
}

bad!(
    internal_without_implement,
    "cl_int f(size_t n) {\n    internal;\n}\n",
    2,
    5,
    "internal function `f` needs `implement(NAME)`"
);
bad!(
    duplicate_implement,
    "cl_int f(size_t n) {\n    implement(a);\n    implement(b);\n}\n",
    3,
    5,
    "duplicate `implement`"
);
bad!(
    require_condition_not_bool,
    "cl_int f(size_t n) {\n    require(n + 1, CL_SUCCESS);\n}\n",
    2,
    13,
    "the condition of `require`"
);
bad!(
    require_error_not_constant,
    "cl_int f(size_t n) {\n    require(n > 1, n);\n}\n",
    2,
    20,
    "the error of `require` must be a constant"
);
bad!(
    require_needs_two_arguments,
    "cl_int f(size_t n) {\n    require(n > 1);\n}\n",
    2,
    12,
    "`require` takes 2 arguments, found 1"
);
bad!(
    implement_on_unsupported,
    "cl_int f(size_t n) {\n    unsupported;\n    implement(quick);\n}\n",
    3,
    5,
    "`implement` on an `unsupported` function"
);
bad!(
    implement_needs_a_name,
    "cl_int f(size_t n) {\n    implement(1);\n}\n",
    2,
    15,
    "the name of a worker-side function"
);

#[test]
fn hooks_generate_calls_to_hand_written_code() {
    let text = format!(
        "{PRELUDE}cl_int f(size_t n, size_t* out) {{\n    internal;\n    implement(f_impl);\n    argument(out) {{ out; }}\n}}\ncl_int g(size_t n) {{\n    fast_path(g_fast);\n}}\n"
    );
    let spec = lapis::parse_str("ok.lapis", &text).unwrap_or_else(|d| panic!("{d}"));
    let guest = lapis::codegen::generate(&spec, lapis::codegen::Side::Guest).unwrap();
    let worker = lapis::codegen::generate(&spec, lapis::codegen::Side::Worker).unwrap();
    // The internal function is not exported; the other one is, and tries
    // its fast path first.
    let exported = |name: &str| {
        let at = guest
            .find(&format!("pub unsafe extern \"C\" fn {name}("))
            .unwrap();
        let doc = guest[..at].rfind("/// `").unwrap();
        guest[doc..at].contains("#[unsafe(no_mangle)]")
    };
    assert!(!exported("f"), "{guest}");
    assert!(exported("g"), "{guest}");
    let g_body = &guest[guest.find("fn g(").unwrap()..];
    assert!(
        g_body
            .contains("if let Some(__r) = unsafe { crate::fast_paths::g_fast(n) } { return __r; }"),
        "{g_body}"
    );
    // The worker calls the implementation instead of the host symbol.
    let call_f = &worker[worker.find("fn call_f(").unwrap()..worker.find("fn call_g(").unwrap()];
    assert!(
        call_f.contains("crate::guards::f_impl(api, cx, n, out) }?;"),
        "{call_f}"
    );
    assert!(!call_f.contains("api.f.ok_or"), "{call_f}");
    let call_g = &worker[worker.find("fn call_g(").unwrap()..];
    assert!(call_g.contains("api.g.ok_or"), "{call_g}");
}

bad!(
    duplicate_after,
    "cl_int f(size_t n) {\n    after(a);\n    after(b);\n}\n",
    3,
    5,
    "duplicate `after`"
);

#[test]
fn an_after_hook_sees_a_successful_result_and_may_replace_it() {
    let text = format!("{PRELUDE}cl_int f(size_t n) {{\n    after(f_after);\n}}\n");
    let spec = lapis::parse_str("ok.lapis", &text).unwrap_or_else(|d| panic!("{d}"));
    let worker = lapis::codegen::generate(&spec, lapis::codegen::Side::Worker).unwrap();
    let call_f = &worker[worker.find("fn call_f(").unwrap()..];
    let real = call_f.find("__f(n)").expect("the real call");
    let hook = call_f
        .find("if __ok { unsafe { crate::guards::f_after(api, cx, __ret) }? } else { __ret }")
        .unwrap_or_else(|| panic!("{call_f}"));
    assert!(real < hook, "the hook runs after the call: {call_f}");
    // Success is judged again on the hook's result.
    assert!(call_f[hook..].contains("let __ok: bool"), "{call_f}");
}

// ------------------------------------------------------------------ handles passed as themselves

bad!(
    handle_pass_value_must_be_constant,
    "handle CUevent = 400 passes(0, 1 == 1);\n",
    1,
    32,
    "a value of `CUevent` passed as itself must be an integer"
);

#[test]
fn handle_pass_values_parse() {
    let text =
        format!("{PRELUDE}const LEGACY: cl_int = 1;\nhandle CUevent = 400 passes(0, LEGACY, 2);\n");
    let spec = lapis::parse_str("ok.lapis", &text).unwrap();
    let h = spec.handles().find(|h| h.name.name == "CUevent").unwrap();
    assert_eq!(h.pass_values(), vec![0, 1, 2]);
    assert_eq!(h.invalid_value(), Some(400));
}

/// Regression (found by fuzzing `lapis_parse`): a syntax error at a
/// whitespace character of more than one byte (U+0085) is reported with a
/// span on character boundaries, not a panic.
#[test]
fn a_syntax_error_at_a_multibyte_space_is_a_diagnostic() {
    let text = "\u{85}*/";
    let err = lapis::parse_str("fuzz.lapis", text).expect_err("not a specification");
    let shown = err.to_string();
    assert!(shown.contains("fuzz.lapis:1:"), "{shown}");
}
