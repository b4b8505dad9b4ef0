//! The worker's configuration file on any text: a configuration, or an
//! error whose line and column lie inside the text. Never a panic.
#![no_main]

use ava_worker::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse("fuzz.toml", text) {
        let lines = text.split('\n').count();
        assert!(e.line >= 1 && e.line <= lines.max(1), "{e}");
    } else if let Ok(c) = Config::parse("fuzz.toml", text) {
        for vm in &c.vm {
            let _ = c.settings(vm);
        }
    }
});
