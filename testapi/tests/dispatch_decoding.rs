//! The generated test-API dispatcher's argument decoding, fed random
//! commands that pass the header check: each gets a well-formed reply to
//! that call, never a panic. The function table is empty, so nothing runs;
//! the handle table holds live ids, so decoding goes past translation.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use remoting::testing::{Harness, body};
use remoting::wire::Status;

remoting::generated! {
    mod worker = "testapi_worker.rs";
}

#[test]
fn random_commands_get_replies_never_panics() {
    let dispatch = worker::Dispatch {
        api: worker::Api::default(),
    };
    let h = std::cell::RefCell::new(Harness::new(1));
    let funcs = worker::FUNCTION_NAMES.len() as u32;
    let strategy = (0..funcs + 2, body(h.borrow().ids(), 10));
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::cell::RefCell::new([0u32; 4]);
    let result = runner.run(&strategy, |(func, body)| {
        let status = h
            .borrow_mut()
            .run(&dispatch, func, &body)
            .map_err(TestCaseError::fail)?;
        seen.borrow_mut()[status as usize] += 1;
        if func >= funcs {
            prop_assert_eq!(status, Status::Protocol, "an unknown function");
        }
        prop_assert_ne!(
            status,
            Status::Ok,
            "nothing can run without a function table"
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let seen = seen.into_inner();
    eprintln!("statuses (ok, api error, protocol, unavailable): {seen:?}");
    assert!(seen[Status::Unavailable as usize] > 0, "{seen:?}");
    assert!(seen[Status::Protocol as usize] > 0, "{seen:?}");
}
