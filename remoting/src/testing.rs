//! Test support (feature `testing`): random commands for a generated
//! dispatcher, built from the pieces real commands are made of, so that they
//! pass the header check and reach the argument decoders; and a harness
//! that feeds them to a dispatcher and checks every reply.
//!
//! The harness's handle table holds live ids of every handle kind, bound to
//! made-up host values: run random commands only with a dispatcher whose
//! function table is empty (the generated `Api::default()`), so that no host
//! function is ever called with them, or with a library that checks every
//! handle it is given.

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use transport::{GuestChannel, Region, RegionConfig, WorkerChannel};

use crate::wire::{
    BLOB_ARENA, BLOB_INLINE, BLOB_NULL, Decoder, Encoder, FLAG_SYNC, Header, MsgKind, NULL_LEN,
    Status,
};
use crate::worker::{Dispatcher, HandleTable, Session, handle_message};

/// One piece of a command body: an integer (small, any, or one of `ids`),
/// a blob tag with a length and offset that may or may not hold, or a few
/// raw bytes.
pub fn piece(ids: Vec<u64>) -> impl Strategy<Value = Vec<u8>> {
    let word = |v: u64| v.to_le_bytes().to_vec();
    prop_oneof![
        1 => any::<u64>().prop_map(word),
        2 => (0u64..64).prop_map(word),
        1 => Just(word(NULL_LEN)),
        4 => proptest::sample::select(ids).prop_map(word),
        1 => Just(vec![BLOB_NULL]),
        1 => (0u64..300, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(n, b)| {
            let mut v = vec![BLOB_INLINE];
            v.extend(n.to_le_bytes());
            v.extend(b);
            v
        }),
        1 => (prop_oneof![0u64..8192, any::<u64>()], 0u64..8192).prop_map(|(o, l)| {
            let mut v = vec![BLOB_ARENA];
            v.extend(o.to_le_bytes());
            v.extend(l.to_le_bytes());
            v
        }),
        1 => prop::collection::vec(any::<u8>(), 0..9),
    ]
}

/// A command body: up to `max` pieces (see [`piece`]).
pub fn body(ids: Vec<u64>, max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(piece(ids), 0..max).prop_map(|p| p.concat())
}

/// A synchronous call of `func` with `body` after a valid header.
pub fn call(func: u32, call_id: u64, body: &[u8]) -> Vec<u8> {
    let e = Encoder::with_header(
        Vec::new(),
        Header {
            kind: MsgKind::Call,
            flags: FLAG_SYNC,
            func,
            call_id,
        },
    );
    let mut msg = e.into_inner();
    msg.extend_from_slice(body);
    msg
}

/// A channel's worker-side state on a region of its own, with live handles
/// of every kind, for feeding a dispatcher commands.
pub struct Harness {
    // Field order is drop order: the endpoints go before the region's file.
    worker: WorkerChannel,
    _guest: GuestChannel,
    _region: Region,
    _dir: tempfile::TempDir,
    session: Session,
    handles: Arc<Mutex<HandleTable>>,
    ids: Vec<u64>,
    next_call: u64,
}

impl Harness {
    /// A harness whose table holds two live ids of each of `kinds` handle
    /// kinds (bound to made-up host values).
    pub fn new(kinds: u16) -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = RegionConfig {
            channels: 1,
            arena_size: 8192,
            ..RegionConfig::default()
        };
        let region = Region::create(&dir.path().join("region"), &config).expect("region");
        let guest = region.claim().expect("claim");
        let worker = region.attach(0).expect("attach").expect("claimed");
        let mut table = HandleTable::new();
        let owner = std::process::id();
        let ids = (0..kinds)
            .flat_map(|k| [0x1000, 0x2000].map(|h| (k, h + u64::from(k) * 8)))
            .map(|(k, h)| table.register(owner, k, h))
            .collect();
        Harness {
            worker,
            _guest: guest,
            _region: region,
            _dir: dir,
            session: Session::new(owner),
            handles: Arc::new(Mutex::new(table)),
            ids,
            next_call: 0,
        }
    }

    /// The channel's session (to give it an admission policy, or read its
    /// counters).
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Sends a synchronous call of `func` with `body` and returns the raw
    /// reply.
    pub fn reply(&mut self, dispatcher: &dyn Dispatcher, func: u32, body: &[u8]) -> Vec<u8> {
        self.send(dispatcher, func, body)
            .expect("a synchronous call gets a reply")
    }

    /// Sends a synchronous call of `func` with `body` (the next call id);
    /// its reply, if any.
    fn send(&mut self, dispatcher: &dyn Dispatcher, func: u32, body: &[u8]) -> Option<Vec<u8>> {
        self.next_call += 1;
        handle_message(
            &call(func, self.next_call, body),
            &mut self.session,
            &self.handles,
            &self.worker.arena,
            dispatcher,
            Vec::new(),
        )
    }

    /// The live ids (for [`body`]), and 0 (NULL).
    pub fn ids(&self) -> Vec<u64> {
        let mut ids = self.ids.clone();
        ids.push(0);
        ids
    }

    /// Sends a synchronous call of `func` with `body` to `dispatcher` and
    /// checks the reply: it answers this call, with a status a reply may
    /// carry. Returns that status, or what was wrong with the reply.
    pub fn run(
        &mut self,
        dispatcher: &dyn Dispatcher,
        func: u32,
        body: &[u8],
    ) -> Result<Status, String> {
        let reply = self
            .send(dispatcher, func, body)
            .ok_or("no reply to a synchronous call")?;
        let (h, _) = Decoder::new(&reply).map_err(|e| format!("unreadable reply: {e}"))?;
        if h.kind != MsgKind::Reply || h.call_id != self.next_call || h.func != func {
            return Err(format!("the reply {h:?} does not answer call {func}"));
        }
        Status::from_u32(h.flags).ok_or_else(|| format!("unknown status {}", h.flags))
    }
}

/// Feeds `cases` random commands (ids below `funcs + 2`, so a few unknown
/// ones; bodies of up to `max_pieces` pieces) to `dispatcher` through a
/// [`Harness`] with `kinds` handle kinds, checking every reply; an unknown
/// function must be refused as malformed. Returns how many replies had each
/// status (indexed by [`Status`]), or the first failure with its input.
pub fn random_commands(
    dispatcher: &dyn Dispatcher,
    kinds: u16,
    funcs: u32,
    cases: u32,
    max_pieces: usize,
) -> Result<[u32; 5], String> {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let h = std::cell::RefCell::new(Harness::new(kinds));
    let strategy = (0..funcs + 2, body(h.borrow().ids(), max_pieces));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::cell::RefCell::new([0u32; 5]);
    runner
        .run(&strategy, |(func, body)| {
            let status = h
                .borrow_mut()
                .run(dispatcher, func, &body)
                .map_err(TestCaseError::fail)?;
            seen.borrow_mut()[status as usize] += 1;
            if func >= funcs {
                prop_assert_eq!(status, Status::Protocol, "an unknown function");
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    Ok(seen.into_inner())
}
