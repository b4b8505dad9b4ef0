//! The generated test-API dispatcher's argument decoding, fed random
//! commands that pass the header check: each gets a well-formed reply to
//! that call, never a panic. The function table is empty, so nothing runs;
//! the handle table holds live ids, so decoding goes past translation.

use remoting::testing::random_commands;
use remoting::wire::Status;

remoting::generated! {
    mod worker = "testapi_worker.rs";
}

#[test]
fn random_commands_get_replies_never_panics() {
    let dispatch = worker::Dispatch {
        api: worker::Api::default(),
    };
    let funcs = worker::FUNCTION_NAMES.len() as u32;
    let seen = random_commands(&dispatch, 1, funcs, 3000, 10).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("statuses (ok, api error, protocol, unavailable, refused): {seen:?}");
    assert_eq!(
        seen[Status::Ok as usize],
        0,
        "nothing can run without a function table"
    );
    assert!(seen[Status::Unavailable as usize] > 0, "{seen:?}");
    assert!(seen[Status::Protocol as usize] > 0, "{seen:?}");
}
