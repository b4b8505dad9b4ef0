//! The generated CUDA driver API dispatcher's argument decoding on any
//! command body (the function id from the first two bytes): every call gets
//! a reply to it, with a status a reply may carry. The function table is
//! empty, so nothing reaches a driver; the handle table holds live ids of
//! every kind.
#![no_main]

use ava_worker::cuda::{Api, Dispatch, FUNCTION_NAMES, kind};
use libfuzzer_sys::fuzz_target;
use remoting::testing::Harness;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let dispatch = Dispatch {
        api: Api::default(),
    };
    let func =
        u32::from(u16::from_le_bytes([data[0], data[1]])) % (FUNCTION_NAMES.len() as u32 + 2);
    let mut h = Harness::new(kind::CUevent + 1);
    if let Err(e) = h.run(&dispatch, func, &data[2..]) {
        panic!("call {func}: {e}");
    }
});
