//! The paper's Figure 4 (completed in `lapis/tests/specs/figure4.lapis`)
//! generates both sides, and both compile and run: without a worker, the
//! generated guest functions fail with the transport error value; the
//! generated dispatcher rejects what the host library does not provide.

remoting::generated! {
    mod guest = "figure4_guest.rs";
}

remoting::generated! {
    mod worker = "figure4_worker.rs";
}

use remoting::worker::{DispatchError, Dispatcher};

/// The worker's side of `metadata(f)->...`: a real backend asks its driver
/// (`worker/src/cuda_guards.rs`); with no host library here, nothing is
/// known and every count and size is 0.
mod guards {
    pub fn metadata(_api: &super::worker::Api, _object: u64, _field: &str, _index: usize) -> i128 {
        0
    }
}

#[test]
fn generated_guest_fails_cleanly_without_a_worker() {
    // SAFETY: no other thread reads the environment here.
    unsafe { std::env::remove_var("AVA_REGION") };
    // SAFETY: a NULL stream is the default stream, an accepted argument.
    let r = unsafe { guest::cuStreamSynchronize(std::ptr::null_mut()) };
    assert_eq!(r, 999, "the transport error value from the build options");
}

#[test]
fn generated_dispatcher_reports_missing_host_functions() {
    let d = worker::Dispatch {
        api: worker::Api::default(),
    };
    assert_eq!(d.name(worker::func::cuLaunchKernel), Some("cuLaunchKernel"));
    let handles = std::sync::Arc::new(std::sync::Mutex::new(remoting::worker::HandleTable::new()));
    let dir = std::env::temp_dir().join(format!("ava-fig4-{}", std::process::id()));
    let region = transport::Region::create(&dir, &transport::RegionConfig::default()).unwrap();
    let mut g = region.claim().unwrap();
    let w = region.attach(g.index()).unwrap().unwrap();
    let mut session = remoting::worker::Session::default();
    let msg = {
        let mut e = remoting::wire::Encoder::with_header(
            Vec::new(),
            remoting::wire::Header {
                kind: remoting::wire::MsgKind::Call,
                flags: remoting::wire::FLAG_SYNC,
                func: worker::func::cuStreamSynchronize,
                call_id: 1,
            },
        );
        e.u64(0);
        e.u64(0);
        e.into_inner()
    };
    let reply =
        remoting::worker::handle_message(&msg, &mut session, &handles, &w.arena, &d, Vec::new())
            .expect("a synchronous call gets a reply");
    let (h, mut dec) = remoting::wire::Decoder::new(&reply).unwrap();
    assert_eq!(h.flags, remoting::wire::Status::Unavailable as u32);
    assert_eq!(dec.string().unwrap(), "cuStreamSynchronize");
    assert_eq!(session.rejected, 1);
    // An unknown function id is rejected too.
    let mut cx_session = remoting::worker::Session::default();
    let mut cx = remoting::worker::CallCtx {
        session: &mut cx_session,
        handles: &handles,
        arena: &w.arena,
        out: remoting::wire::Encoder::default(),
    };
    let (_, mut empty) = remoting::wire::Decoder::new(&msg).unwrap();
    assert_eq!(
        d.dispatch(1000, &mut empty, &mut cx),
        Err(DispatchError::UnknownFunction(1000))
    );
    drop(g.tx.try_send(b"x"));
    let _ = std::fs::remove_file(&dir);
}
