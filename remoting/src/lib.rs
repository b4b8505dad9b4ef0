//! The call protocol between generated guest libraries and generated worker
//! dispatchers.
//!
//! Code generated from a LAPIS specification (see the `lapis` crate) calls
//! into this crate on both sides: [`guest`] builds calls, sends them over a
//! [`transport`] channel and reads replies; [`worker`] decodes calls against
//! a per-guest [`worker::HandleTable`], and serves channels. [`wire`] is the
//! encoding both share.

mod api;
pub mod guest;
pub mod heap;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;
pub mod worker;

pub use api::{ApiId, PROTOCOL_VERSION, Refusal, accept_hello, hello_message};

/// First 16 bits of every handle id the worker assigns: makes ids easy to
/// recognise and unlikely to collide with other values (see `maybe_handle`).
pub const WORKER_ID_TAG: u64 = 0xA7A0 << 48;
/// First 16 bits of handle ids a guest chooses itself (for handles created
/// by asynchronous calls).
pub const GUEST_ID_TAG: u64 = 0xA7A1 << 48;
/// Mask of the tag bits.
pub const ID_TAG_MASK: u64 = 0xFFFF << 48;

/// Blobs up to this size travel inline in the rings; larger ones through the
/// channel's data arena.
pub const INLINE_MAX: usize = 8 << 10;

/// Includes code that `lapis::codegen::build_script` generated into
/// `OUT_DIR` as a module, with the lints that generated C-API code needs
/// (C names, unused helpers, constants and fields documented by the
/// specification rather than in Rust, unsafe blocks whose one justification
/// is the comment the generator writes above each call) allowed:
///
/// ```ignore
/// remoting::generated! {
///     /// The generated OpenCL entry points.
///     pub mod opencl = "opencl_guest.rs";
/// }
/// ```
#[macro_export]
macro_rules! generated {
    ($(#[$meta:meta])* $vis:vis mod $name:ident = $file:literal;) => {
        $(#[$meta])*
        #[allow(
            non_camel_case_types,
            non_upper_case_globals,
            non_snake_case,
            dead_code,
            unused_parens,
            unused_imports,
            unused_variables,
            unused_mut,
            unused_unsafe,
            missing_docs,
            clippy::all,
            clippy::undocumented_unsafe_blocks
        )]
        $vis mod $name {
            include!(concat!(env!("OUT_DIR"), "/", $file));
        }
    };
}
