//! The wire decoder on any bytes: a message header, then fields of every
//! kind until one fails. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remoting::wire::Decoder;

fuzz_target!(|data: &[u8]| {
    let Ok((_, mut d)) = Decoder::new(data) else {
        return;
    };
    for (i, b) in data.iter().enumerate().take(64) {
        let ok = match (b ^ i as u8) % 4 {
            0 => d.u64().is_ok(),
            1 => d.blob().is_ok(),
            2 => d.string().is_ok(),
            _ => d.finish().is_ok(),
        };
        if !ok {
            break;
        }
    }
});
