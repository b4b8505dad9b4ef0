//! The generated test-API dispatcher's argument decoding on any command
//! body: every call gets a reply to it. Nothing runs (empty table).
#![no_main]

use ava_worker::testapi::{Api, Dispatch, FUNCTION_NAMES};
use libfuzzer_sys::fuzz_target;
use remoting::testing::Harness;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let dispatch = Dispatch {
        api: Api::default(),
    };
    let func = u32::from(data[0]) % (FUNCTION_NAMES.len() as u32 + 2);
    let mut h = Harness::new(1);
    if let Err(e) = h.run(&dispatch, func, &data[1..]) {
        panic!("call {func}: {e}");
    }
});
