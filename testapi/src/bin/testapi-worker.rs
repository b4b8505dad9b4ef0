//! The worker for the test API: loads `libava_testapi.so` and serves a
//! region with the dispatcher generated from `testapi.lapis`, using the
//! same serving loop as `ava-worker`.
//!
//! Usage: `testapi-worker REGION LIBRARY` (stops when killed). (To serve
//! the test API beside OpenCL in one process: `ava-worker --backends
//! opencl,testapi`.)
//! `AVA_STALE_MS` sets how long a guest may be silent before it is dead.
//! The serving loop logs to stderr, as `ava-worker` does (`AVA_LOG` sets
//! the level, default `info`).

use std::sync::atomic::AtomicBool;

use remoting::ApiId;
use remoting::worker::Dispatcher;
use server::Backend;

/// The test API over `libava_testapi.so`.
struct TestApi {
    dispatch: testapi::Dispatch,
}

impl Backend for TestApi {
    fn api(&self) -> ApiId {
        testapi::API
    }

    fn dispatcher(&self) -> &dyn Dispatcher {
        &self.dispatch
    }

    fn describe(&self) -> String {
        format!(
            "{} of {} test API functions",
            self.dispatch.api.available(),
            testapi::FUNCTION_NAMES.len()
        )
    }
}

remoting::generated! {
    /// The generated dispatcher.
    mod testapi = "testapi_worker.rs";
}

fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AVA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let mut args = std::env::args().skip(1);
    let usage = || anyhow::anyhow!("usage: testapi-worker REGION LIBRARY");
    let region = args.next().ok_or_else(usage)?;
    let library = args.next().ok_or_else(usage)?;
    if args.next().is_some() {
        return Err(usage());
    }
    // SAFETY: loading the test library runs no initialisers of note.
    let lib = unsafe { libloading::Library::new(&library) }?;
    let testapi = TestApi {
        dispatch: testapi::Dispatch {
            api: testapi::Api::load(&lib),
        },
    };
    let backends: Vec<&dyn Backend> = vec![&testapi];
    let stop = AtomicBool::new(false);
    // AVA_STALE_MS shortens the time after which a silent guest is dead.
    let mut opts = server::ServeOptions::default();
    if let Some(ms) = std::env::var("AVA_STALE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.stale_after = std::time::Duration::from_millis(ms);
    }
    server::serve(
        &[region.into()],
        &transport::RegionConfig::default(),
        &backends,
        &opts,
        &stop,
    )
}
