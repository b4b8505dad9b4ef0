//! The generated OpenCL and CUDA dispatchers' argument decoding, fed random commands
//! that pass the header check: each gets a well-formed reply to that call
//! (an error or, for a command that decodes, the function's absence), never
//! a panic. The dispatcher's function table is empty, so nothing runs on
//! the host; the handle table holds live ids of every kind, so decoding goes
//! past handle translation.

use ava_worker::opencl::{self, Api, Dispatch, FUNCTION_NAMES};
use remoting::testing::random_commands;
use remoting::wire::Status;

/// Feeds `dispatch` random commands over `kinds` handle kinds and `funcs`
/// functions; asserts the statuses seen.
fn random_commands_reach_past_the_first_argument(
    dispatch: &dyn remoting::worker::Dispatcher,
    kinds: u16,
    funcs: u32,
) {
    let seen =
        random_commands(dispatch, kinds, funcs, 20_000, 14).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("statuses (ok, api error, protocol, unavailable, refused): {seen:?}");
    // Some commands decoded to the end (only then is the function's
    // absence found) and some handles were refused: the random bodies
    // reach past the first argument. Decoding to the end is rare (about
    // one command in 700: most stop at a handle), hence the many cases.
    assert!(seen[Status::Unavailable as usize] > 0, "{seen:?}");
    assert!(seen[Status::ApiError as usize] > 0, "{seen:?}");
    assert!(seen[Status::Protocol as usize] > 0, "{seen:?}");
}

#[test]
fn random_commands_get_replies_never_panics() {
    let dispatch = Dispatch {
        api: Api::default(),
    };
    random_commands_reach_past_the_first_argument(
        &dispatch,
        opencl::kind::cl_sampler + 1,
        FUNCTION_NAMES.len() as u32,
    );
}

/// The same for the generated CUDA driver API dispatcher.
#[test]
fn random_cuda_commands_get_replies_never_panics() {
    use ava_worker::cuda;
    let dispatch = cuda::Dispatch {
        api: cuda::Api::default(),
    };
    random_commands_reach_past_the_first_argument(
        &dispatch,
        cuda::kind::CUevent + 1,
        cuda::FUNCTION_NAMES.len() as u32,
    );
}

/// Regression (found by the random commands): allocations of the largest
/// size a guest can name, asked twice, are counted without overflowing;
/// the worker answers each, it does not panic.
#[test]
fn the_largest_allocations_are_counted_without_overflow() {
    use ava_worker::cuda;
    use remoting::wire::{BLOB_INLINE, Encoder, HEADER_LEN, Header, MsgKind};
    let dispatch = cuda::Dispatch {
        api: cuda::Api::default(),
    };
    let mut e = Encoder::with_header(
        Vec::new(),
        Header {
            kind: MsgKind::Call,
            flags: 0,
            func: 0,
            call_id: 0,
        },
    );
    e.u8(BLOB_INLINE);
    e.u64(8);
    e.u64(u64::MAX);
    let body = e.into_inner()[HEADER_LEN..].to_vec();
    let mut h = remoting::testing::Harness::new(cuda::kind::CUevent + 1);
    for _ in 0..2 {
        h.run(&dispatch, cuda::func::cuMemAlloc_v2, &body)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
