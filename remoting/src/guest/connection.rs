//! A guest process's connections: one channel per thread, the region they
//! live in, the hello that opens each, the heartbeat, and waiting for
//! replies while callbacks and asynchronous errors arrive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use transport::{ArenaAllocator, ArenaBlock, GuestChannel, Region, RingError, WaitStrategy};

use super::{Call, CallError, CallbackHandler, wait_strategy_from_env};
use crate::wire::{Decoder, MsgKind, Status};
use crate::{ApiId, GUEST_ID_TAG};

/// How long a beating worker may leave a channel's hello unanswered.
const HELLO_TIMEOUT: Duration = Duration::from_secs(20);
/// How many more channels a guest claims after an unanswered hello.
const HELLO_TRIES: u32 = 2;

/// Registered buffers by (tracker, key): `(guest pointer, size)` each.
type Trackers = HashMap<(&'static str, u64), Vec<(u64, u64)>>;

/// A guest process's connection: one claimed channel, shared by its threads.
pub struct Connection {
    inner: super::lock::ChannelLock<Inner>,
    /// The region's buffer heap (empty when the region has none).
    heap: transport::Arena,
    /// Bytes of the channel's data arena.
    arena_size: usize,
    heartbeat: transport::Heartbeat,
    /// Whether the channel is still this connection's (read without the
    /// channel's lock).
    ownership: transport::Ownership,
    index: u32,
    callbacks: OnceLock<CallbackHandler>,
    callback_targets: Mutex<HashMap<u64, (usize, usize)>>,
    next_token: AtomicU64,
    /// Callback messages received while a call held the channel; run once
    /// it is released, so that a callback may itself call the API.
    pending_callbacks: Mutex<Vec<Vec<u8>>>,
    /// Whether `pending_callbacks` may hold something (checked without the
    /// lock after every call).
    callbacks_pending: std::sync::atomic::AtomicBool,
    trackers: Mutex<Trackers>,
    /// How long a call waits for a worker whose heartbeat does not move
    /// (`AVA_WORKER_TIMEOUT_MS`, default 30 s: generous, since a slow worker
    /// on an overloaded host is not a dead one).
    pub worker_timeout: Duration,
}

pub(super) struct Inner {
    pub(super) ch: GuestChannel,
    pub(super) alloc: ArenaAllocator,
    pub(super) next_call: u64,
    pub(super) msg_buf: Vec<u8>,
    pub(super) async_errors: u64,
    pub(super) wait: WaitStrategy,
    /// Asynchronous calls whose data is still in the arena: the blocks are
    /// freed when the worker's reply says it is done with them. Replies come
    /// in call order.
    pub(super) outstanding: std::collections::VecDeque<(u64, Vec<ArenaBlock>)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("channel", &self.index)
            .finish()
    }
}

/// The region this process talks through, opened on first use.
static REGION: OnceLock<Result<Region, String>> = OnceLock::new();
/// The first connection opened (and still current): the fallback for
/// threads that find no free channel.
static SHARED: Mutex<Option<Arc<Connection>>> = Mutex::new(None);
/// Why the worker refused this process's API, once it has: no channel is
/// claimed again, and every call fails with the same error.
static REFUSED: OnceLock<String> = OnceLock::new();

/// Set when a call of this process found the worker gone (its heartbeat
/// stood still for the worker timeout): that heartbeat value plus one; 0
/// while the worker is taken for alive. While the heartbeat stays there,
/// every call fails at once instead of waiting for the dead worker again;
/// once a worker beats again, calls go through.
static WORKER_GONE_AT: AtomicU64 = AtomicU64::new(0);

/// The error for a call made while the worker is known to be gone, if it
/// still is.
fn worker_still_gone() -> Option<CallError> {
    let at = WORKER_GONE_AT.load(Ordering::Relaxed);
    if at == 0 {
        return None;
    }
    let region = REGION.get()?.as_ref().ok()?;
    let now = region.worker_heartbeat();
    if now.wrapping_add(1) == at {
        return Some(CallError::WorkerGone(Duration::ZERO, now));
    }
    // A worker serves the region again.
    let _ = WORKER_GONE_AT.compare_exchange(at, 0, Ordering::Relaxed, Ordering::Relaxed);
    None
}
thread_local! {
    /// Set while [`synchronously`] runs: every call waits for its reply.
    static FORCE_SYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every call it makes on this thread sent as synchronous,
/// asynchronous ones included: each waits for the worker, and a call the
/// driver refuses returns the driver's error instead of the success value
/// an asynchronous call returns at once. For calls a guest library suspects
/// to be invalid, so that they fail as they do natively.
pub fn synchronously<R>(f: impl FnOnce() -> R) -> R {
    let before = FORCE_SYNC.with(|s| s.replace(true));
    let r = f();
    FORCE_SYNC.with(|s| s.set(before));
    r
}

/// Every connection opened, for the heartbeat thread and for shutdown.
static REGISTRY: Mutex<Vec<Weak<Connection>>> = Mutex::new(Vec::new());

/// Per-object metadata of this process (`metadata(obj)->field`), by
/// (object id, field).
static METADATA: Mutex<Option<MetadataMap>> = Mutex::new(None);

/// Metadata values by (object id, field).
type MetadataMap = HashMap<(u64, &'static str), Vec<i64>>;

/// Records metadata `field` of object `obj` for the whole process.
pub fn set_metadata(obj: u64, field: &'static str, values: Vec<i64>) {
    METADATA
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert((obj, field), values);
}

/// `metadata(obj)->field[index]`, if known.
pub fn metadata(obj: u64, field: &'static str, index: usize) -> Option<i64> {
    METADATA
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()?
        .get(&(obj, field))?
        .get(index)
        .copied()
}

/// Forgets every metadata field of object `obj` (it was destroyed).
pub fn forget_metadata(obj: u64) {
    if let Some(m) = METADATA.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        m.retain(|(o, _), _| *o != obj);
    }
}

thread_local! {
    /// This thread's own connection (its own channel), released when the
    /// thread exits.
    static LOCAL: std::cell::RefCell<Option<Arc<Connection>>> =
        const { std::cell::RefCell::new(None) };
}

/// Releases the channels of every connection still open. Guest libraries
/// call this when they are unloaded or the process exits, so that the
/// channels are free at once instead of after the worker's stale timeout.
pub fn shutdown() {
    for c in REGISTRY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
    {
        c.close();
    }
}

/// The calling thread's connection. Each thread gets its own channel, so
/// that a thread blocked in a call (waiting for an event another thread
/// will set) never holds up the others; when the region has no free
/// channel left, threads share the process's first connection. The region
/// comes from `AVA_REGION`, or from `locate` when the variable is unset (a
/// guest library passes its ivshmem probe here). Each new channel is
/// opened with a hello naming `api`; a worker that does not serve it at
/// this revision refuses, and every call then fails with
/// [`CallError::Refused`].
pub fn connection(
    api: &ApiId,
    locate: fn() -> Result<std::path::PathBuf, String>,
) -> Result<Arc<Connection>, CallError> {
    if let Some(gone) = worker_still_gone() {
        return Err(gone);
    }
    if let Ok(Some(c)) = LOCAL.try_with(|l| l.borrow().clone()) {
        if c.is_current() {
            return Ok(c);
        }
        // The worker took the channel back (its executor was restarted, or
        // it took this process for dead): the objects made over it are gone
        // with it, and the next call opens a new channel.
        tracing::warn!(
            channel = c.channel(),
            "the worker took this thread's channel back; opening a new one"
        );
        let _ = LOCAL.try_with(|l| *l.borrow_mut() = None);
    }
    if let Some(why) = REFUSED.get() {
        return Err(CallError::Refused(why.clone()));
    }
    let region = REGION
        .get_or_init(|| {
            let path = match std::env::var_os("AVA_REGION") {
                Some(p) => std::path::PathBuf::from(p),
                None => locate()?,
            };
            Region::open(&path).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| CallError::Connect(e.clone()))?;
    let conn = match Connection::new(region, api) {
        Ok(c) => {
            let c = Arc::new(c);
            REGISTRY
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Arc::downgrade(&c));
            let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
            if shared.as_ref().is_none_or(|s| !s.is_current()) {
                *shared = Some(c.clone());
            }
            drop(shared);
            start_heartbeat();
            c
        }
        Err(CallError::Refused(why)) => {
            tracing::error!("{api}: the worker refused this guest library: {why}");
            let _ = REFUSED.set(why.clone());
            return Err(CallError::Refused(why));
        }
        Err(e) => match SHARED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|s| s.is_current())
        {
            Some(shared) => {
                tracing::debug!("no channel of its own for this thread ({e}); sharing");
                shared.clone()
            }
            None => return Err(e),
        },
    };
    let _ = LOCAL.try_with(|l| *l.borrow_mut() = Some(conn.clone()));
    Ok(conn)
}

/// Starts (once) the thread that keeps every connection's heartbeat going
/// and delivers callbacks that fire while the application makes no call.
fn start_heartbeat() {
    static BEAT: std::sync::Once = std::sync::Once::new();
    BEAT.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("ava-heartbeat".into())
            .spawn(|| {
                loop {
                    let live: Vec<Arc<Connection>> = {
                        let mut r = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
                        r.retain(|w| w.strong_count() > 0);
                        r.iter().filter_map(Weak::upgrade).collect()
                    };
                    for c in &live {
                        c.beat();
                    }
                    for _ in 0..20 {
                        for c in &live {
                            c.poll();
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            });
    });
}

impl Connection {
    /// Claims a channel of `region` and opens it for `api` (see
    /// [`Connection::open`]).
    ///
    /// A worker answers a hello at once, from the channel's own thread.
    /// One that beats but leaves a hello unanswered for [`HELLO_TIMEOUT`]
    /// does not serve the channel (it cannot happen by design; this keeps
    /// a guest from hanging if it ever does): the channel is given back
    /// and another one claimed, a few times, before the call fails.
    pub fn new(region: &Region, api: &ApiId) -> Result<Connection, CallError> {
        let mut tries = 0;
        loop {
            let ch = region
                .claim()
                .map_err(|e| CallError::Connect(e.to_string()))?;
            let index = ch.index();
            match Connection::open_within(ch, api, HELLO_TIMEOUT) {
                Err(CallError::Unanswered(t)) if tries < HELLO_TRIES => {
                    tries += 1;
                    tracing::warn!(
                        channel = index,
                        "the worker left this channel's hello unanswered for {t:?}; \
                         claiming another channel"
                    );
                }
                r => return r,
            }
        }
    }

    /// A connection over a claimed channel, opened with a hello that names
    /// `api`: the worker answers before any call is made, and a refusal
    /// ([`CallError::Refused`]) releases the channel.
    pub fn open(ch: GuestChannel, api: &ApiId) -> Result<Connection, CallError> {
        Connection::open_within(ch, api, HELLO_TIMEOUT)
    }

    /// [`Connection::open`], failing with [`CallError::Unanswered`] when a
    /// beating worker leaves the hello unanswered for `limit`.
    fn open_within(
        ch: GuestChannel,
        api: &ApiId,
        limit: Duration,
    ) -> Result<Connection, CallError> {
        let conn = Connection::with_channel(ch);
        {
            let mut inner = conn.inner.lock();
            inner.send(&conn, &crate::hello_message(api))?;
            let mut reply = Vec::new();
            inner.wait_reply_until(&conn, 0, &mut reply, Some(limit))?;
            let (h, mut d) = Decoder::new(&reply)?;
            match Status::from_u32(h.flags) {
                Some(Status::Ok) => {}
                Some(Status::Refused) => return Err(CallError::Refused(d.string()?)),
                _ => {
                    return Err(CallError::Protocol(format!(
                        "unexpected answer to the hello (status {})",
                        h.flags
                    )));
                }
            }
        }
        Ok(conn)
    }

    /// A connection over a claimed channel on which no hello was sent: for
    /// tests that speak to a worker directly.
    fn with_channel(ch: GuestChannel) -> Connection {
        let index = ch.index();
        let alloc = ArenaAllocator::new(ch.arena.size());
        let heartbeat = ch.heartbeat();
        let ownership = ch.ownership();
        Connection {
            heap: ch.heap.clone(),
            arena_size: ch.arena.size() as usize,
            heartbeat,
            ownership,
            inner: super::lock::ChannelLock::new(Inner {
                ch,
                alloc,
                next_call: 1,
                msg_buf: Vec::with_capacity(256),
                async_errors: 0,
                wait: wait_strategy_from_env(),
                outstanding: std::collections::VecDeque::new(),
            }),
            index,
            callbacks: OnceLock::new(),
            callback_targets: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            pending_callbacks: Mutex::new(Vec::new()),
            callbacks_pending: std::sync::atomic::AtomicBool::new(false),
            trackers: Mutex::new(HashMap::new()),
            worker_timeout: std::env::var("AVA_WORKER_TIMEOUT_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(30), Duration::from_millis),
        }
    }

    /// Whether the channel is still this connection's: not given back, and
    /// not taken back by the worker.
    pub fn is_current(&self) -> bool {
        self.ownership.holds()
    }

    /// Advances the channel's heartbeat. A guest library calls this from a
    /// background thread so that the worker can tell a live idle process
    /// from a dead one.
    pub fn beat(&self) {
        // Not through the channel's lock: a call may hold it for minutes.
        self.heartbeat.beat();
    }

    /// The region's buffer heap: storage of device buffers the worker
    /// placed in shared memory, at offsets it names in its replies. Empty
    /// when the region has none.
    pub fn heap(&self) -> &transport::Arena {
        &self.heap
    }

    /// Bytes of the channel's data arena: the most that one call can move
    /// through it.
    pub fn arena_size(&self) -> usize {
        self.arena_size
    }

    /// The channel index this connection owns.
    pub fn channel(&self) -> u32 {
        self.index
    }

    /// Installs the handler for callback messages (once).
    pub fn set_callback_handler(&self, h: CallbackHandler) {
        let _ = self.callbacks.set(h);
    }

    /// Registers an application callback (function pointer and user data)
    /// and returns the token the worker will name it by.
    pub fn register_callback(&self, function: usize, user_data: usize) -> u64 {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.callback_targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, (function, user_data));
        token
    }

    /// Gives the channel back to the region (at process exit). Calls made
    /// afterwards fail with [`CallError::Ring`] instead of waiting.
    pub fn close(&self) {
        let inner = self.inner.lock();
        inner.ch.release();
    }

    /// Handles messages the worker sent outside of any call (callbacks
    /// fired later, asynchronous errors) if no call is in progress, then
    /// runs the callbacks received so far.
    pub fn poll(&self) {
        if let Some(mut inner) = self.inner.try_lock() {
            let mut msg = Vec::new();
            while let Ok(true) = inner.ch.rx.try_recv(&mut msg) {
                if let Err(e) = inner.side_message(self, &msg) {
                    tracing::warn!("while polling: {e}");
                    break;
                }
            }
        }
        self.run_callbacks();
    }

    /// Runs the application callbacks received so far, in order. Called by
    /// generated code after each call (with the channel released) and by
    /// the background thread.
    pub fn run_callbacks(&self) {
        // A plain load first: this runs after every call.
        if !self.callbacks_pending.load(Ordering::Relaxed)
            || !self.callbacks_pending.swap(false, Ordering::Acquire)
        {
            return;
        }
        loop {
            let batch = std::mem::take(
                &mut *self
                    .pending_callbacks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            if batch.is_empty() {
                return;
            }
            for msg in batch {
                let Ok((h, mut d)) = Decoder::new(&msg) else {
                    continue;
                };
                let target = self
                    .callback_targets
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&h.call_id)
                    .copied();
                match (self.callbacks.get(), target) {
                    (Some(handler), Some((f, ud))) => {
                        if let Err(e) = handler(h.func, f, ud, &mut d) {
                            tracing::warn!("malformed callback message: {e}");
                        }
                    }
                    _ => tracing::warn!(
                        token = h.call_id,
                        "callback for an unknown registration dropped"
                    ),
                }
            }
        }
    }

    /// How many asynchronous calls failed so far.
    pub fn async_errors(&self) -> u64 {
        self.inner.lock().async_errors
    }

    /// A new handle id chosen by the guest (for handles that asynchronous
    /// calls create).
    pub fn new_guest_id(&self) -> u64 {
        // One counter for the whole process: the worker keeps a process's
        // handles across its channels, and a channel given back by a thread
        // that ended may be claimed again by a new connection while ids
        // chosen over it are still bound.
        static NEXT_GUEST_ID: AtomicU64 = AtomicU64::new(1);
        GUEST_ID_TAG
            | (u64::from(self.index) << 32)
            | (NEXT_GUEST_ID.fetch_add(1, Ordering::Relaxed) & 0xFFFF_FFFF)
    }

    /// Starts a call to function `func`.
    pub fn call(&self, func: u32, sync: bool) -> Call<'_> {
        let sync = sync || FORCE_SYNC.with(std::cell::Cell::get);
        let inner = self.inner.lock();
        Call::new(self, inner, func, sync)
    }

    // ---- per-object metadata (`metadata(x)->field[i]`) ----

    /// Records metadata `field` of object `obj` (for example, a kernel's
    /// argument sizes, learnt when the guest library first launches it).
    /// Metadata belongs to the process: an object made over one thread's
    /// channel is used over another's.
    pub fn set_metadata(&self, obj: u64, field: &'static str, values: Vec<i64>) {
        set_metadata(obj, field, values);
    }

    /// `metadata(obj)->field[index]`: 0 when unknown.
    pub fn metadata(&self, obj: u64, field: &'static str, index: usize) -> i64 {
        metadata(obj, field, index).unwrap_or(0)
    }

    // ---- state-tracking runtime (`register_buf`, `get_bufs`, ...) ----

    /// `register_buf(tracker, key, buf, size)`: remembers a buffer that a
    /// later call will fill.
    pub fn register_buf(&self, tracker: &'static str, key: u64, buf: u64, size: u64) {
        let mut t = self.trackers.lock().unwrap_or_else(|p| p.into_inner());
        t.entry((tracker, key)).or_default().push((buf, size));
    }

    /// `get_bufs(tracker, key)`: the buffers registered under `key`.
    pub fn get_bufs(&self, tracker: &'static str, key: u64) -> Vec<(u64, u64)> {
        let t = self.trackers.lock().unwrap_or_else(|p| p.into_inner());
        t.get(&(tracker, key)).cloned().unwrap_or_default()
    }

    /// `get_n_bufs(tracker, key)`.
    pub fn get_n_bufs(&self, tracker: &'static str, key: u64) -> u64 {
        self.get_bufs(tracker, key).len() as u64
    }

    /// `get_buf_size(tracker, key, i)`.
    pub fn get_buf_size(&self, tracker: &'static str, key: u64, i: u64) -> u64 {
        self.get_bufs(tracker, key)
            .get(i as usize)
            .map_or(0, |b| b.1)
    }

    /// `unregister_buf(tracker, key, buf)`: forgets one buffer.
    pub fn unregister_buf(&self, tracker: &'static str, key: u64, buf: u64) {
        let mut t = self.trackers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = t.get_mut(&(tracker, key)) {
            v.retain(|b| b.0 != buf);
            if v.is_empty() {
                t.remove(&(tracker, key));
            }
        }
    }
}

impl Inner {
    /// Handles one incoming message that is not the awaited reply.
    fn side_message(&mut self, conn: &Connection, bytes: &[u8]) -> Result<(), CallError> {
        let (h, mut d) = Decoder::new(bytes)?;
        match h.kind {
            MsgKind::AsyncError => {
                self.async_errors += 1;
                let msg = d.string().unwrap_or_default();
                tracing::warn!(
                    func = h.func,
                    call = h.call_id,
                    "asynchronous call failed: {msg}"
                );
            }
            MsgKind::Callback => {
                let target = conn
                    .callback_targets
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&h.call_id)
                    .copied();
                match (conn.callbacks.get(), target) {
                    (Some(handler), Some((f, ud))) => handler(h.func, f, ud, &mut d)?,
                    _ => tracing::warn!(
                        token = h.call_id,
                        "callback for an unknown registration dropped"
                    ),
                }
            }
            MsgKind::Reply => match self.outstanding.iter().position(|o| o.0 == h.call_id) {
                Some(i) => {
                    let (_, blocks) = self.outstanding.remove(i).expect("index in range");
                    for b in blocks {
                        self.alloc.free(b);
                    }
                    if Status::from_u32(h.flags) != Some(Status::Ok) {
                        self.async_errors += 1;
                        tracing::warn!(func = h.func, call = h.call_id, "asynchronous call failed");
                    }
                }
                None => tracing::warn!(call = h.call_id, "unexpected reply dropped"),
            },
            MsgKind::Call | MsgKind::Hello => {
                return Err(CallError::Protocol(format!(
                    "the worker sent a {:?} message",
                    h.kind
                )));
            }
        }
        Ok(())
    }

    /// Waits for the reply of the oldest outstanding asynchronous call and
    /// frees its arena blocks. Returns false when none is outstanding.
    pub(super) fn retire_oldest(&mut self, conn: &Connection) -> Result<bool, CallError> {
        let Some(&(id, _)) = self.outstanding.front() else {
            return Ok(false);
        };
        let mut msg = Vec::new();
        self.wait_reply(conn, id, &mut msg)?;
        self.side_message(conn, &msg)?;
        Ok(true)
    }

    /// Sends `bytes`, draining incoming messages while the ring is full (so
    /// that a worker blocked on replies can always make progress).
    pub(super) fn send(&mut self, conn: &Connection, bytes: &[u8]) -> Result<(), CallError> {
        let wait = self.wait;
        let mut backoff = transport::Backoff::new(&wait);
        let mut watch = WorkerWatch::new(&self.ch);
        let mut scratch = Vec::new();
        loop {
            if self.ch.tx.try_send(bytes)? {
                return Ok(());
            }
            if self.ch.rx.try_recv(&mut scratch)? {
                self.side_message(conn, &scratch)?;
                continue;
            }
            if backoff.is_sleeping() {
                watch.look(&self.ch, conn.worker_timeout)?;
            }
            backoff.snooze(None)?;
        }
    }

    /// Waits for the reply to `call_id`, handling other messages meanwhile
    /// and watching the worker's heartbeat.
    pub(super) fn wait_reply(
        &mut self,
        conn: &Connection,
        call_id: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), CallError> {
        self.wait_reply_until(conn, call_id, out, None)
    }

    /// [`Inner::wait_reply`], failing with [`CallError::Unanswered`] after
    /// `limit` (calls that the worker may take long to answer have none: a
    /// kernel may run for minutes; nor does a call pay for a clock read).
    fn wait_reply_until(
        &mut self,
        conn: &Connection,
        call_id: u64,
        out: &mut Vec<u8>,
        limit: Option<Duration>,
    ) -> Result<(), CallError> {
        let deadline = limit.map(|l| (Instant::now() + l, l));
        // The call woke a sleeping worker thread, which the kernel may run
        // on this core: yield instead of spinning on it.
        let wait = if self.ch.tx.woke_consumer() {
            WaitStrategy {
                spins: 0,
                ..self.wait
            }
        } else {
            self.wait
        };
        let mut backoff = transport::Backoff::new(&wait);
        let mut watch = WorkerWatch::new(&self.ch);
        loop {
            if self.ch.rx.try_recv(out)? {
                let (h, _) = Decoder::new(out)?;
                if h.kind == MsgKind::Reply && h.call_id == call_id {
                    return Ok(());
                }
                let msg = std::mem::take(out);
                self.side_message(conn, &msg)?;
                backoff = transport::Backoff::new(&wait);
                continue;
            }
            if backoff.is_sleeping() {
                watch.look(&self.ch, conn.worker_timeout)?;
                if let Some((at, limit)) = deadline
                    && Instant::now() >= at
                {
                    return Err(CallError::Unanswered(limit));
                }
                // Sharing the worker's kernel, the guest sleeps until the
                // worker rings (a reply, or a look at the heartbeat every
                // 50 ms) instead of waking on a timer.
                if self.ch.can_sleep() && self.ch.rx.sleep(Duration::from_millis(50)) {
                    continue;
                }
            }
            backoff.snooze(None)?;
        }
    }
}

/// Watches the worker's heartbeat while this process waits for it (for a
/// reply, or for room in a full ring).
struct WorkerWatch {
    /// The heartbeat value last seen.
    beat: u64,
    /// When the heartbeat was last seen to move (or this process resumed).
    since: Instant,
    /// When the heartbeat was last looked at.
    last_look: Instant,
}

impl WorkerWatch {
    fn new(ch: &GuestChannel) -> WorkerWatch {
        let now = Instant::now();
        WorkerWatch {
            beat: ch.worker_heartbeat(),
            since: now,
            last_look: now,
        }
    }

    /// Fails when the channel was taken back, or when the worker's
    /// heartbeat has stood still for `timeout` while this process ran;
    /// the latter marks the worker gone for every later call
    /// ([`WORKER_GONE_AT`]).
    fn look(&mut self, ch: &GuestChannel, timeout: Duration) -> Result<(), CallError> {
        if !ch.is_current() {
            return Err(CallError::Ring(RingError::Disconnected));
        }
        let now = ch.worker_heartbeat();
        let t = Instant::now();
        // A long gap between two looks means this process (or the whole
        // VM, or host) was not running: the worker did not get to beat
        // either, so the gap does not count against it.
        let paused = t.duration_since(self.last_look) > Duration::from_secs(1);
        self.last_look = t;
        if now != self.beat || paused {
            self.beat = now;
            self.since = t;
        } else if t.duration_since(self.since) > timeout {
            WORKER_GONE_AT.store(now.wrapping_add(1), Ordering::Relaxed);
            tracing::error!(
                "the worker stopped beating {:?} ago: this call and every later one fail until a worker serves the region again",
                t.duration_since(self.since)
            );
            return Err(CallError::WorkerGone(t.duration_since(self.since), now));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A worker that beats but never answers a hello: opening fails with
    /// `Unanswered` after the limit instead of waiting for ever, and the
    /// channel is given back.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "opens the region's file twice (under Miri each open is new memory)"
    )]
    fn an_unanswered_hello_fails_after_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let config = transport::RegionConfig {
            channels: 1,
            arena_size: 8192,
            ..transport::RegionConfig::default()
        };
        let path = dir.path().join("region");
        Region::create(&path, &config).unwrap();
        let region = Region::open(&path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let beating = {
            let (stop, region) = (stop.clone(), Region::open(&path).unwrap());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    region.beat_worker();
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let api = ApiId {
            name: "testapi",
            version: "1",
            revision: 1,
        };
        let t = Instant::now();
        let r = Connection::open_within(region.claim().unwrap(), &api, Duration::from_millis(300));
        let waited = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        beating.join().unwrap();
        match r {
            Err(CallError::Unanswered(d)) => assert!(d >= Duration::from_millis(300), "{d:?}"),
            other => panic!("expected an unanswered hello, got {other:?}"),
        }
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        // The failed connection gave its channel back.
        let status = region.status(0).unwrap();
        assert_eq!(status.state, transport::ChannelState::Free);
    }
}
