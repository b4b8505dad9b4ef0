//! The worker for the test API: loads `libava_testapi.so` and serves a
//! region with the dispatcher generated from `testapi.lapis`, using the
//! same serving loop as `ava-worker`.
//!
//! Usage: `testapi-worker REGION LIBRARY` (stops when killed);
//! `AVA_STALE_MS` sets how long a guest may be silent before it is dead.

use std::sync::atomic::AtomicBool;

remoting::generated! {
    /// The generated dispatcher.
    mod testapi = "testapi_worker.rs";
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let region = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: testapi-worker REGION LIBRARY"))?;
    let library = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: testapi-worker REGION LIBRARY"))?;
    // SAFETY: loading the test library runs no initialisers of note.
    let lib = unsafe { libloading::Library::new(&library) }?;
    let dispatch = testapi::Dispatch {
        api: testapi::Api::load(&lib),
    };
    let stop = AtomicBool::new(false);
    // AVA_STALE_MS shortens the time after which a silent guest is dead.
    let mut opts = ava_worker::server::ServeOptions::default();
    if let Some(ms) = std::env::var("AVA_STALE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.stale_after = std::time::Duration::from_millis(ms);
    }
    ava_worker::server::serve(
        &[region.into()],
        &transport::RegionConfig::default(),
        &dispatch,
        &opts,
        &stop,
    )
}
