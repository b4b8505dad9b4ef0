//! Byte sizes as people and QEMU write them: `16M`, `64KiB`, `1g`, `4096`.
//!
//! Suffixes are binary (`K` = 1024), as in QEMU's `size=` properties.

/// A size that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size '{text}': {reason} (examples: 4096, 64K, 16M, 1G)")]
pub struct SizeError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

const UNITS: [(&str, u64); 4] = [
    ("K", 1 << 10),
    ("M", 1 << 20),
    ("G", 1 << 30),
    ("T", 1 << 40),
];

/// Parses a byte count with an optional binary suffix: `K`, `M`, `G`, `T`,
/// optionally followed by `iB` or `B`, in any case.
///
/// ```
/// use ivshmem_probe::size::parse_size;
/// assert_eq!(parse_size("16M").unwrap(), 16 << 20);
/// assert_eq!(parse_size("64KiB").unwrap(), 64 << 10);
/// assert_eq!(parse_size("4096").unwrap(), 4096);
/// ```
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError {
        text: text.to_owned(),
        reason,
    };
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(digits_end);
    if digits.is_empty() {
        return Err(err("it does not start with a number"));
    }
    let n: u64 = digits.parse().map_err(|_| err("the number is too large"))?;
    let suffix = suffix.trim().to_ascii_uppercase();
    let unit = suffix
        .strip_suffix("IB")
        .or_else(|| suffix.strip_suffix('B'))
        .unwrap_or(&suffix);
    let scale = match unit {
        "" => 1,
        u => UNITS
            .iter()
            .find(|(name, _)| *name == u)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| err("unknown unit"))?,
    };
    n.checked_mul(scale)
        .ok_or_else(|| err("the size is too large"))
}

/// Writes `bytes` with the largest suffix that divides it exactly (`16M`,
/// `64K`, `4097`), a form that both [`parse_size`] and QEMU accept.
pub fn format_size(bytes: u64) -> String {
    for (name, scale) in UNITS.iter().rev() {
        if bytes != 0 && bytes.is_multiple_of(*scale) {
            return format!("{}{name}", bytes / scale);
        }
    }
    bytes.to_string()
}

/// Writes `bytes` for people: `16 MiB`, `1.5 KiB`, `100 B`.
pub fn human_size(bytes: u64) -> String {
    let mut unit = None;
    for (name, scale) in UNITS.iter().rev() {
        if bytes >= *scale {
            unit = Some((name, *scale));
            break;
        }
    }
    match unit {
        None => format!("{bytes} B"),
        Some((name, scale)) if bytes.is_multiple_of(scale) => format!("{} {name}iB", bytes / scale),
        Some((name, scale)) => format!("{:.2} {name}iB", bytes as f64 / scale as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_suffixed_sizes() {
        for (text, want) in [
            ("0", 0),
            ("4096", 4096),
            ("64K", 64 << 10),
            ("64k", 64 << 10),
            ("64KiB", 64 << 10),
            ("64kb", 64 << 10),
            ("16M", 16 << 20),
            (" 16 MiB ", 16 << 20),
            ("1G", 1 << 30),
            ("2T", 2 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_bad_sizes() {
        for text in [
            "",
            "M",
            "16X",
            "1.5M",
            "-1",
            "99999999999999999999",
            "20000000T",
        ] {
            assert!(parse_size(text).is_err(), "{text}");
        }
        let e = parse_size("16X").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid size '16X': unknown unit (examples: 4096, 64K, 16M, 1G)"
        );
    }

    #[test]
    fn formats_round_trip() {
        for bytes in [1, 4095, 4096, 65536, 16 << 20, 3 << 30, (1 << 20) + 1] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }
        assert_eq!(format_size(16 << 20), "16M");
        assert_eq!(format_size(4096), "4K");
        assert_eq!(format_size(0), "0");
        assert_eq!(human_size(16 << 20), "16 MiB");
        assert_eq!(human_size(1536), "1.50 KiB");
        assert_eq!(human_size(100), "100 B");
    }
}
