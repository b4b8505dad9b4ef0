//! The LAPIS front end (parser and checker) on any text: a specification or
//! diagnostics, whose rendering names a position inside the text. Never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(d) = lapis::parse_str("fuzz.lapis", text) {
        let _ = d.to_string();
    }
});
