//! What the stand-in reads from PTX text itself: kernel signatures
//! (`.entry` parameters, for `cuLaunchKernel` and `cuFuncGetParamInfo`),
//! register counts, and the rewrites that let the interpreter parse what
//! NVRTC/NVCC emit.

/// One kernel parameter: its offset and size in the parameter buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// Offset from the start of the parameter buffer, aligned.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
}

/// A `.entry` of a PTX module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The kernel's (possibly mangled) name.
    pub name: String,
    /// Its parameters, in order.
    pub params: Vec<Param>,
    /// Registers the body declares (`.reg .b32 %r<6>;` counts 6).
    pub num_regs: usize,
}

/// Removes `//` and `/* */` comments.
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |i| &r[i..]);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |i| &r[i + 2..]);
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn type_size(t: &str) -> Option<usize> {
    Some(match t {
        ".u8" | ".s8" | ".b8" | ".pred" => 1,
        ".u16" | ".s16" | ".b16" | ".f16" => 2,
        ".u32" | ".s32" | ".b32" | ".f32" | ".f16x2" => 4,
        ".u64" | ".s64" | ".b64" | ".f64" => 8,
        ".b128" => 16,
        _ => return None,
    })
}

fn parse_param(decl: &str) -> Option<(usize, usize)> {
    let toks: Vec<&str> = decl.split_whitespace().collect();
    let mut align = None;
    let mut elem = None;
    let mut count = 1usize;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        if t == ".align" {
            // After the type (`.ptr .global .align N`) it is the pointee's.
            if elem.is_none() {
                align = toks.get(i + 1).and_then(|a| a.parse::<usize>().ok());
            }
            i += 2;
            continue;
        }
        if let Some(s) = type_size(t) {
            elem = Some(s);
        } else if !t.starts_with('.')
            && let (Some(open), Some(close)) = (t.find('['), t.find(']'))
        {
            count = t[open + 1..close].trim().parse().ok()?;
        }
        i += 1;
    }
    let elem = elem?;
    let align = align.unwrap_or(elem).max(1);
    Some((elem * count, align))
}

/// The kernels (`.entry`) of a PTX module, with their parameter layout.
pub fn entries(src: &str) -> Vec<Entry> {
    let src = strip_comments(src);
    let mut out = Vec::new();
    let mut rest = src.as_str();
    while let Some(at) = rest.find(".entry") {
        let after = &rest[at + ".entry".len()..];
        let name_end = after.find(['(', '{', ';']).unwrap_or(after.len());
        let name = after[..name_end]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let mut params = Vec::new();
        let mut body_from = name_end;
        if after[name_end..].starts_with('(') {
            let close = after[name_end..]
                .find(')')
                .map_or(after.len(), |i| name_end + i);
            let mut offset = 0usize;
            for decl in after[name_end + 1..close].split(',') {
                if decl.trim().is_empty() {
                    continue;
                }
                if let Some((size, align)) = parse_param(decl) {
                    offset = offset.div_ceil(align) * align;
                    params.push(Param { offset, size });
                    offset += size;
                }
            }
            body_from = close;
        }
        // The body: from the first `{` to its matching `}`.
        let body = &after[body_from..];
        let mut num_regs = 0;
        if let Some(open) = body.find('{') {
            let mut depth = 0;
            let mut end = body.len();
            for (i, c) in body[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            for stmt in body[open..end].split(';') {
                let stmt = stmt.trim().trim_start_matches('{').trim();
                if let Some(decl) = stmt.strip_prefix(".reg") {
                    num_regs += decl
                        .split(',')
                        .map(|v| {
                            v.find('<')
                                .and_then(|i| v[i + 1..].trim_end_matches('>').trim().parse().ok())
                                .unwrap_or(1usize)
                        })
                        .sum::<usize>();
                }
            }
            rest = &body[end.min(body.len())..];
        } else {
            rest = body;
        }
        if !name.is_empty() {
            out.push(Entry {
                name,
                params,
                num_regs,
            });
        }
    }
    out
}

/// The PTX ISA version of the module (`.version 8.7` gives 87).
pub fn ptx_version(src: &str) -> i32 {
    src.lines()
        .find_map(|l| l.trim().strip_prefix(".version"))
        .and_then(|v| {
            let mut it = v.trim().split('.');
            let major: i32 = it.next()?.trim().parse().ok()?;
            let minor: i32 = it.next()?.trim().parse().ok()?;
            Some(major * 10 + minor)
        })
        .unwrap_or(0)
}

/// Rewrites what compilers emit into the forms the interpreter parses:
/// floating-point `mul`/`add`/`sub` with no mode or a rounding mode (the
/// interpreter wants `mul.lo.f32` and unrounded `add.f32`); the values are
/// the same, rounded to nearest.
pub fn normalize(src: &str) -> String {
    let mut s = src.to_string();
    for ty in ["f32", "f64"] {
        for rnd in ["", ".rn", ".ftz", ".rn.ftz"] {
            s = s.replace(&format!("mul{rnd}.{ty}"), &format!("mul.lo.{ty}"));
            if !rnd.is_empty() {
                s = s.replace(&format!("add{rnd}.{ty}"), &format!("add.{ty}"));
                s = s.replace(&format!("sub{rnd}.{ty}"), &format!("sub.{ty}"));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixture_signatures() {
        let e = entries(include_str!("../../samples/cuda/kernels.ptx"));
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "vector_add",
                "saxpy",
                "scale_inplace",
                "empty",
                "fault",
                "transpose_2d"
            ]
        );
        let p = |o, s| Param { offset: o, size: s };
        assert_eq!(e[0].params, [p(0, 8), p(8, 8), p(16, 8), p(24, 4)]);
        assert_eq!(e[1].params, [p(0, 4), p(8, 8), p(16, 8), p(24, 4)]);
        assert_eq!(e[2].params, [p(0, 8), p(8, 4), p(12, 4)]);
        assert!(e[3].params.is_empty());
        assert_eq!(e[0].num_regs, 2 + 4 + 6 + 11);
    }

    #[test]
    fn aligned_byte_arrays() {
        let e = entries(
            ".visible .entry k(.param .u32 a, .param .align 8 .b8 s[24], .param .u64 .ptr .global .align 4 p)\n{ ret; }",
        );
        let p = |o, s| Param { offset: o, size: s };
        assert_eq!(e[0].params, [p(0, 4), p(8, 24), p(32, 8)]);
    }

    #[test]
    fn normalizes_float_mul() {
        assert_eq!(
            normalize("mul.f32 %f1, %f2, %f3;"),
            "mul.lo.f32 %f1, %f2, %f3;"
        );
        assert_eq!(normalize("add.rn.f64 a"), "add.f64 a");
        assert_eq!(normalize("mul.wide.u32 a"), "mul.wide.u32 a");
        assert_eq!(ptx_version(".version 8.7\n"), 87);
    }
}
