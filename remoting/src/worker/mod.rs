//! The worker side: per-guest handle tables ([`HandleTable`]), the state
//! of a channel between calls ([`Session`]) and the scheduling hook
//! ([`Admission`]), the context a generated dispatcher works in
//! ([`CallCtx`]), messages from host callbacks ([`Outbox`]), and the loop
//! that serves a channel ([`serve_pending`]).

mod call;
mod handles;
mod outbox;
mod serve;
mod session;

pub use call::{Bytes, CallCtx, InData, OutBuf};
pub use handles::HandleTable;
pub use outbox::{CallbackTarget, Outbox};
pub use serve::{Dispatcher, flush_outbox, handle_message, serve_pending};
pub use session::{
    Admission, Admit, AdmitAll, Caller, Consumed, IN_FLIGHT_BUSY, InFlightSlot, LATENCY_SAMPLE,
    Session,
};

use crate::wire::WireError;

/// Why a call was not executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// The command could not be decoded.
    #[error("malformed command: {0}")]
    Wire(#[from] WireError),
    /// The command decoded but is inconsistent (sizes, ranges, ids).
    #[error("{0}")]
    Protocol(String),
    /// A handle was invalid: the API's error value for it.
    #[error("invalid handle (error {0})")]
    Api(i64),
    /// The host library does not provide the function.
    #[error("the host library does not provide {0}")]
    Unavailable(&'static str),
    /// The function id is not in the specification.
    #[error("unknown function id {0}")]
    UnknownFunction(u32),
    /// An asynchronous call ran and the driver returned an error value.
    #[error("the driver returned error {0}")]
    Failed(i64),
}
