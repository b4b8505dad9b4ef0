//! The guest side: a connection to the worker ([`Connection`], one channel
//! per application thread, opened with a hello that names the API), the
//! call encoder ([`Call`]) and reply decoder ([`Reply`]) that generated
//! guest functions use, and the helpers they report errors with.

use std::time::Duration;

use transport::{RingError, WaitStrategy};

use crate::wire::{Decoder, WireError};

mod call;
mod connection;
mod lock;
pub mod objects;
mod reply;

pub use call::Call;
pub use connection::{
    Connection, connection, forget_metadata, metadata, set_metadata, shutdown, synchronously,
};
pub use reply::Reply;

/// Why a remoted call could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No region could be opened or no channel claimed.
    #[error("cannot connect to the worker: {0}")]
    Connect(String),
    /// The ring failed (corruption, channel reclaimed).
    #[error("transport failure: {0}")]
    Ring(#[from] RingError),
    /// The worker stopped beating while a call waited.
    #[error("the worker is not responding (heartbeat stuck at {1} for {0:?})")]
    WorkerGone(Duration, u64),
    /// A worker that beats left a call unanswered that it answers at once
    /// (the hello that opens a channel) for this long.
    #[error("the worker left the channel's hello unanswered for {0:?}")]
    Unanswered(Duration),
    /// The reply could not be decoded.
    #[error("malformed reply: {0}")]
    Wire(#[from] WireError),
    /// The worker rejected the call as malformed.
    #[error("the worker rejected the call: {0}")]
    Protocol(String),
    /// The worker refused a handle; the API's error value is attached.
    #[error("invalid handle (API error {0})")]
    Api(i64),
    /// The host library does not provide the function.
    #[error("the host library does not provide {0}")]
    Unavailable(String),
    /// The guest library does not remote this use of the function (the
    /// reason says which argument); nothing was sent.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The worker does not serve this API, or serves another revision of
    /// its specification: no call is made (the message says which API and
    /// revisions each side has).
    #[error("the worker refused this guest library: {0}")]
    Refused(String),
    /// A buffer does not fit the channel's data arena.
    #[error("a transfer of {len} bytes exceeds the channel's data arena ({cap} bytes)")]
    TooLarge {
        /// Bytes asked for.
        len: u64,
        /// Arena capacity.
        cap: u64,
    },
}

/// How a callback message is handled: generated code registers one per API.
/// It gets the callback type, the application's function pointer and user
/// data registered under the message's token, and the encoded arguments.
pub type CallbackHandler = fn(
    kind: u32,
    function: usize,
    user_data: usize,
    args: &mut Decoder<'_>,
) -> Result<(), WireError>;

/// The API error value for a failed call: the worker's value for an invalid
/// handle, `unsupported` when the host lacks the function, else `transport`.
pub fn error_value(e: &CallError, unsupported: i64, transport: i64) -> i64 {
    match e {
        CallError::Api(v) => *v,
        CallError::Unavailable(_) | CallError::Unsupported(_) => unsupported,
        _ => transport,
    }
}

/// Logs why a call failed (once per function and kind of failure is enough
/// for a user; `tracing` filters decide).
pub fn report(func: &str, e: &CallError) {
    match e {
        CallError::Api(_) => tracing::debug!("{func}: {e}"),
        CallError::Unsupported(reason) => report_unsupported(func, reason),
        // Logged once, as an error, when the worker refused the library.
        CallError::Refused(_) => tracing::debug!("{func}: {e}"),
        _ => tracing::warn!("{func}: {e}"),
    }
}

/// Logs that an `unsupported` function was called.
pub fn report_unsupported(func: &str, reason: &str) {
    tracing::warn!("{func} is not supported by this guest library: {reason}");
    if std::env::var_os("AVA_QUIET").is_none() {
        eprintln!("ava: {func} is not supported: {reason}");
    }
}

/// A region locator for hosts without ivshmem probing: always fails,
/// asking for `AVA_REGION`.
pub fn no_region() -> Result<std::path::PathBuf, String> {
    Err("AVA_REGION is not set (set it to the region's path)".into())
}

/// Number of elements of a zero-terminated list, the terminator included
/// (0 for NULL). With `key_value`, the list is (key, value) pairs and only
/// keys are tested. Lists are capped at 4096 elements.
///
/// # Safety
/// `p` must be NULL or point to a list that is terminated as described.
pub unsafe fn zero_terminated_len<T: Copy + PartialEq + Default>(
    p: *const T,
    key_value: bool,
) -> usize {
    if p.is_null() {
        return 0;
    }
    let step = if key_value { 2 } else { 1 };
    let mut i = 0;
    while i < 4096 {
        // SAFETY: the caller guarantees the list is readable up to its terminator.
        if unsafe { *p.add(i) } == T::default() {
            return i + 1;
        }
        i += step;
    }
    i
}

/// The guest's wait strategy: `AVA_WAIT=spin|balanced|idle` (default
/// `balanced`). Spinning gives the lowest latency when the guest has a core
/// to itself; `idle` leaves the core to others (for example to the host
/// library's own threads when guest and worker share a small machine).
pub fn wait_strategy_from_env() -> WaitStrategy {
    match std::env::var("AVA_WAIT").as_deref() {
        Ok("spin") => WaitStrategy::LOW_LATENCY,
        Ok("idle") => WaitStrategy::IDLE,
        _ => WaitStrategy::BALANCED,
    }
}
