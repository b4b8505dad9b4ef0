//! The generated OpenCL dispatcher's argument decoding, fed random commands
//! that pass the header check: each gets a well-formed reply to that call
//! (an error or, for a command that decodes, the function's absence), never
//! a panic. The dispatcher's function table is empty, so nothing runs on
//! the host; the handle table holds live ids of every kind, so decoding goes
//! past handle translation.

use ava_worker::opencl::{self, Api, Dispatch, FUNCTION_NAMES};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use remoting::testing::{Harness, body};
use remoting::wire::Status;

#[test]
fn random_commands_get_replies_never_panics() {
    let dispatch = Dispatch {
        api: Api::default(),
    };
    let h = std::cell::RefCell::new(Harness::new(opencl::kind::cl_sampler + 1));
    let funcs = FUNCTION_NAMES.len() as u32;
    let strategy = (0..funcs + 2, body(h.borrow().ids(), 14));
    let mut runner = TestRunner::new(Config {
        cases: 4000,
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
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let seen = seen.into_inner();
    eprintln!("statuses (ok, api error, protocol, unavailable): {seen:?}");
    // Some commands decoded to the end (only then is the function's
    // absence found) and some handles were refused: the random bodies
    // reach past the first argument.
    assert!(seen[Status::Unavailable as usize] > 0, "{seen:?}");
    assert!(seen[Status::ApiError as usize] > 0, "{seen:?}");
    assert!(seen[Status::Protocol as usize] > 0, "{seen:?}");
}
