//! The guest side: a connection to the worker, and the call builder that
//! generated guest functions use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use transport::{ArenaAllocator, ArenaBlock, GuestChannel, Region, RingError, WaitStrategy};

use crate::wire::{Blob, Decoder, Encoder, FLAG_SYNC, Header, MsgKind, Status, WireError};
use crate::{ApiId, GUEST_ID_TAG, INLINE_MAX};

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

/// Registered buffers by (tracker, key): `(guest pointer, size)` each.
type Trackers = HashMap<(&'static str, u64), Vec<(u64, u64)>>;

/// A guest process's connection: one claimed channel, shared by its threads.
pub struct Connection {
    inner: Mutex<Inner>,
    /// The region's buffer heap (empty when the region has none).
    heap: transport::Arena,
    heartbeat: transport::Heartbeat,
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
    metadata: Mutex<HashMap<(u64, &'static str), Vec<i64>>>,
    /// How long a call waits for a worker whose heartbeat does not move
    /// (`AVA_WORKER_TIMEOUT_MS`, default 30 s: generous, since a slow worker
    /// on an overloaded host is not a dead one).
    pub worker_timeout: Duration,
}

struct Inner {
    ch: GuestChannel,
    alloc: ArenaAllocator,
    next_call: u64,
    msg_buf: Vec<u8>,
    async_errors: u64,
    wait: WaitStrategy,
    /// Asynchronous calls whose data is still in the arena: the blocks are
    /// freed when the worker's reply says it is done with them. Replies come
    /// in call order.
    outstanding: std::collections::VecDeque<(u64, Vec<ArenaBlock>)>,
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
/// The first connection opened: the fallback for threads that find no
/// free channel.
static SHARED: OnceLock<Arc<Connection>> = OnceLock::new();
/// Why the worker refused this process's API, once it has: no channel is
/// claimed again, and every call fails with the same error.
static REFUSED: OnceLock<String> = OnceLock::new();
/// Every connection opened, for the heartbeat thread and for shutdown.
static REGISTRY: Mutex<Vec<Weak<Connection>>> = Mutex::new(Vec::new());

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
    if let Ok(Some(c)) = LOCAL.try_with(|l| l.borrow().clone()) {
        return Ok(c);
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
            let _ = SHARED.set(c.clone());
            start_heartbeat();
            c
        }
        Err(CallError::Refused(why)) => {
            tracing::error!("{api}: the worker refused this guest library: {why}");
            let _ = REFUSED.set(why.clone());
            return Err(CallError::Refused(why));
        }
        Err(e) => match SHARED.get() {
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
    pub fn new(region: &Region, api: &ApiId) -> Result<Connection, CallError> {
        let ch = region
            .claim()
            .map_err(|e| CallError::Connect(e.to_string()))?;
        Connection::open(ch, api)
    }

    /// A connection over a claimed channel, opened with a hello that names
    /// `api`: the worker answers before any call is made, and a refusal
    /// ([`CallError::Refused`]) releases the channel.
    pub fn open(ch: GuestChannel, api: &ApiId) -> Result<Connection, CallError> {
        let conn = Connection::with_channel(ch);
        {
            let mut inner = conn.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.send(&conn, &crate::hello_message(api))?;
            let mut reply = Vec::new();
            inner.wait_reply(&conn, 0, &mut reply)?;
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
        Connection {
            heap: ch.heap.clone(),
            heartbeat,
            inner: Mutex::new(Inner {
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
            metadata: Mutex::new(HashMap::new()),
            worker_timeout: std::env::var("AVA_WORKER_TIMEOUT_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(30), Duration::from_millis),
        }
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
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.ch.release();
    }

    /// Handles messages the worker sent outside of any call (callbacks
    /// fired later, asynchronous errors) if no call is in progress, then
    /// runs the callbacks received so far.
    pub fn poll(&self) {
        if let Ok(mut inner) = self.inner.try_lock() {
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
        self.inner.lock().map(|i| i.async_errors).unwrap_or(0)
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
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let call_id = inner.next_call;
        inner.next_call += 1;
        let buf = std::mem::take(&mut inner.msg_buf);
        let header = Header {
            kind: MsgKind::Call,
            flags: if sync { FLAG_SYNC } else { 0 },
            func,
            call_id,
        };
        Call {
            conn: self,
            inner,
            enc: Encoder::with_header(buf, header),
            call_id,
            sync,
            blocks: Vec::new(),
            error: None,
        }
    }

    // ---- per-object metadata (`metadata(x)->field[i]`) ----

    /// Records metadata `field` of object `obj` (for example, a kernel's
    /// argument sizes, learnt when the guest library loads a module).
    pub fn set_metadata(&self, obj: u64, field: &'static str, values: Vec<i64>) {
        self.metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((obj, field), values);
    }

    /// `metadata(obj)->field[index]`: 0 when unknown.
    pub fn metadata(&self, obj: u64, field: &'static str, index: usize) -> i64 {
        self.metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(obj, field))
            .and_then(|v| v.get(index).copied())
            .unwrap_or(0)
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
    fn retire_oldest(&mut self, conn: &Connection) -> Result<bool, CallError> {
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
    fn send(&mut self, conn: &Connection, bytes: &[u8]) -> Result<(), CallError> {
        let wait = self.wait;
        let mut backoff = transport::Backoff::new(&wait);
        let mut scratch = Vec::new();
        loop {
            if self.ch.tx.try_send(bytes)? {
                return Ok(());
            }
            if self.ch.rx.try_recv(&mut scratch)? {
                self.side_message(conn, &scratch)?;
                continue;
            }
            backoff.snooze(None)?;
        }
    }

    /// Waits for the reply to `call_id`, handling other messages meanwhile
    /// and watching the worker's heartbeat.
    fn wait_reply(
        &mut self,
        conn: &Connection,
        call_id: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), CallError> {
        let wait = self.wait;
        let mut backoff = transport::Backoff::new(&wait);
        let mut beat = self.ch.worker_heartbeat();
        let mut since = Instant::now();
        let mut last_look = since;
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
                if !self.ch.is_current() {
                    return Err(CallError::Ring(RingError::Disconnected));
                }
                let now = self.ch.worker_heartbeat();
                let t = Instant::now();
                // A long gap between two looks means this process (or the
                // whole VM, or host) was not running: the worker did not get
                // to beat either, so the gap does not count against it.
                let paused = t.duration_since(last_look) > Duration::from_secs(1);
                last_look = t;
                if now != beat || paused {
                    beat = now;
                    since = t;
                } else if t.duration_since(since) > conn.worker_timeout {
                    return Err(CallError::WorkerGone(t.duration_since(since), beat));
                }
            }
            backoff.snooze(None)?;
        }
    }
}

/// A call being built. Holds the connection's lock until it is sent and its
/// reply read, so a process's threads take turns on the channel.
pub struct Call<'c> {
    conn: &'c Connection,
    inner: MutexGuard<'c, Inner>,
    enc: Encoder,
    call_id: u64,
    sync: bool,
    blocks: Vec<ArenaBlock>,
    error: Option<CallError>,
}

impl<'c> Call<'c> {
    /// The connection.
    pub fn connection(&self) -> &'c Connection {
        self.conn
    }

    /// An integer or pointer-sized value.
    pub fn u64(&mut self, v: u64) {
        self.enc.u64(v);
    }

    /// A handle's id (its pointer value in the application).
    pub fn handle<T>(&mut self, h: *mut T) {
        self.enc.u64(h as u64);
    }

    fn arena_block(&mut self, len: usize) -> Option<ArenaBlock> {
        let mut got = self.inner.alloc.alloc(len as u64);
        while got.is_none() {
            // Room comes back as earlier asynchronous calls complete.
            match self.inner.retire_oldest(self.conn) {
                Ok(true) => got = self.inner.alloc.alloc(len as u64),
                Ok(false) => break,
                Err(e) => {
                    self.error.get_or_insert(e);
                    return None;
                }
            }
        }
        match got {
            Some(b) => {
                self.blocks.push(b);
                Some(b)
            }
            None => {
                self.error.get_or_insert(CallError::TooLarge {
                    len: len as u64,
                    cap: self.inner.alloc.capacity(),
                });
                None
            }
        }
    }

    /// Input bytes (`None`: NULL). Large ones go through the arena.
    pub fn in_bytes(&mut self, data: Option<&[u8]>) {
        match data {
            Some(d) if d.len() > INLINE_MAX => {
                if let Some(b) = self.arena_block(d.len()) {
                    // The block lies inside the arena by construction.
                    let _ = self.inner.ch.arena.write(b.offset, d);
                    self.enc.arena_blob(b.offset, d.len() as u64);
                } else {
                    self.enc.blob(None);
                }
            }
            other => self.enc.blob(other),
        }
    }

    /// Input bytes read from a raw pointer.
    ///
    /// # Safety
    /// `ptr` must be NULL or valid for reading `len` bytes.
    pub unsafe fn in_ptr(&mut self, ptr: *const u8, len: usize) {
        if ptr.is_null() {
            self.in_bytes(None);
        } else {
            // SAFETY: the caller guarantees `ptr` is readable for `len` bytes.
            let s = unsafe { std::slice::from_raw_parts(ptr, len) };
            self.in_bytes(Some(s));
        }
    }

    /// A list of input buffers (an array of strings or blobs); `None`: NULL.
    pub fn in_list(&mut self, items: Option<Vec<Option<&[u8]>>>) {
        match items {
            None => self.enc.u64(crate::wire::NULL_LEN),
            Some(items) => {
                self.enc.u64(items.len() as u64);
                for it in items {
                    self.in_bytes(it);
                }
            }
        }
    }

    /// Room for an output of `len` bytes (`present == false`: NULL).
    pub fn out_space(&mut self, present: bool, len: usize) {
        if !present {
            self.enc.u8(crate::wire::BLOB_NULL);
        } else if len > INLINE_MAX {
            match self.arena_block(len) {
                Some(b) => self.enc.arena_blob(b.offset, len as u64),
                None => self.enc.u8(crate::wire::BLOB_NULL),
            }
        } else {
            self.enc.u8(crate::wire::BLOB_INLINE);
            self.enc.u64(len as u64);
        }
    }

    /// A new guest-chosen handle id (for an asynchronous call's output
    /// handle), sent with the call.
    pub fn new_handle(&mut self) -> u64 {
        let id = self.conn.new_guest_id();
        self.enc.u64(id);
        id
    }

    /// Sends the call. For a synchronous call (or one that moved data
    /// through the arena), waits and returns the reply; otherwise `None`.
    pub fn send(mut self) -> Result<Option<Reply<'c>>, CallError> {
        if let Some(e) = self.error.take() {
            self.release();
            return Err(e);
        }
        // An asynchronous call with data in the arena asks for a reply (the
        // worker replies to every call flagged sync) but does not wait for
        // it: its blocks stay reserved until the reply comes, so that the
        // next calls proceed while the worker still reads them.
        let keep = !self.sync && !self.blocks.is_empty();
        if self.sync || keep {
            self.enc.set_flags(FLAG_SYNC);
        }
        let wait = self.sync;
        let conn = self.conn;
        let bytes = std::mem::take(&mut self.enc).into_inner();
        let sent = self.inner.send(conn, &bytes);
        self.inner.msg_buf = bytes;
        if let Err(e) = sent {
            self.release();
            return Err(e);
        }
        if keep {
            let blocks = std::mem::take(&mut self.blocks);
            self.inner.outstanding.push_back((self.call_id, blocks));
        }
        if !wait {
            return Ok(None);
        }
        let mut out = Vec::new();
        let r = self.inner.wait_reply(conn, self.call_id, &mut out);
        if let Err(e) = r {
            self.release();
            return Err(e);
        }
        Reply::parse(self, out).map(Some)
    }

    fn release(&mut self) {
        for b in self.blocks.drain(..) {
            self.inner.alloc.free(b);
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// A reply being read by generated code, in the order the worker wrote it.
/// Frees the call's arena blocks and the connection's lock when dropped.
pub struct Reply<'c> {
    call: Call<'c>,
    bytes: Vec<u8>,
    pos: usize,
}

impl<'c> Reply<'c> {
    fn parse(call: Call<'c>, bytes: Vec<u8>) -> Result<Reply<'c>, CallError> {
        let (h, mut d) = Decoder::new(&bytes)?;
        match Status::from_u32(h.flags) {
            Some(Status::Ok) => {}
            Some(Status::ApiError) => return Err(CallError::Api(d.i64()?)),
            Some(Status::Protocol) => return Err(CallError::Protocol(d.string()?)),
            Some(Status::Unavailable) => return Err(CallError::Unavailable(d.string()?)),
            Some(Status::Refused) => return Err(CallError::Refused(d.string()?)),
            None => {
                return Err(CallError::Wire(WireError::Invalid {
                    what: "reply status",
                    value: u64::from(h.flags),
                }));
            }
        }
        let pos = bytes.len() - d.remaining();
        Ok(Reply { call, bytes, pos })
    }

    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Decoder<'_>) -> Result<T, WireError>,
    ) -> Result<T, CallError> {
        let mut d = Decoder::at(&self.bytes, self.pos);
        let v = f(&mut d)?;
        self.pos = self.bytes.len() - d.remaining();
        Ok(v)
    }

    /// The next integer.
    pub fn u64(&mut self) -> Result<u64, CallError> {
        self.with(|d| d.u64())
    }

    /// Copies the next output blob into `dst` (up to `dst`'s length).
    ///
    /// # Safety
    /// `dst` must be NULL or valid for writing `len` bytes.
    pub unsafe fn out_ptr(&mut self, dst: *mut u8, len: usize) -> Result<(), CallError> {
        let blob = self.with(|d| {
            d.blob().map(|b| match b {
                Blob::Null => (0u8, 0u64, 0u64, 0usize, 0usize),
                Blob::Inline(x) => (1, 0, x.len() as u64, 0, x.as_ptr() as usize),
                Blob::Arena { offset, len } => (2, offset, len, 0, 0),
            })
        })?;
        if dst.is_null() {
            return Ok(());
        }
        match blob.0 {
            0 => Ok(()),
            1 => {
                let n = (blob.2 as usize).min(len);
                let start = self.pos - blob.2 as usize;
                let src = &self.bytes[start..start + n];
                // SAFETY: the caller guarantees `dst` is writable for `len`
                // bytes, and `n <= len`; `src` is our private copy.
                unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, n) };
                Ok(())
            }
            _ => {
                let n = (blob.2 as usize).min(len);
                // SAFETY: as above; the arena read is bounds-checked.
                let d = unsafe { std::slice::from_raw_parts_mut(dst, n) };
                self.call
                    .inner
                    .ch
                    .arena
                    .read(blob.1, d)
                    .map_err(|e| CallError::Protocol(e.to_string()))
            }
        }
    }

    /// Fails if the worker wrote more than the generated code read.
    pub fn finish(self) -> Result<(), CallError> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            n => Err(CallError::Wire(WireError::Trailing(n))),
        }
    }
}

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
