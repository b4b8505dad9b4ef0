//! The API-agnostic serving core of the worker.
//!
//! A worker serves regions (one per VM); in each, a supervisor thread
//! attaches to channels as guests claim them and gives each its own thread.
//! A channel's first message names its API; the channel is then served by
//! that API's [`Backend`], whose dispatcher is generated from the API's
//! specification. Nothing here knows any API: OpenCL, the test API and
//! CUDA are backends that plug in (see `ava-worker`).

use remoting::ApiId;
use remoting::worker::Dispatcher;

pub mod doorbells;
mod inflight;
pub mod ledger;
pub mod policy;
mod serve;

pub use doorbells::Doorbells;
pub use inflight::{InFlight, Running};
pub use ledger::{Ledger, Settings};
pub use policy::Policy;
pub use serve::{ServeOptions, name_of_region, open_region, open_region_as, serve, serve_region};

/// One API the worker serves: its identity (name and specification
/// revision), the dispatcher generated from its specification over the host
/// library, and what it runs on. A backend is loaded by its own constructor;
/// one that cannot load is left out and the others are served.
pub trait Backend: Send + Sync {
    /// The API and specification revision that guests must name.
    fn api(&self) -> ApiId;
    /// Executes the API's calls; also destroys what a departed guest left
    /// ([`Dispatcher::destroy`]).
    fn dispatcher(&self) -> &dyn Dispatcher;
    /// What the backend runs on, in words, for the log.
    fn describe(&self) -> String;
}
