//! The worker side: per-guest handle tables, the context a generated
//! dispatcher works in, and the loop that serves a channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zerocopy::IntoBytes;

use transport::{Arena, RingError, WaitStrategy, WorkerChannel};

use crate::wire::{
    BLOB_ARENA, BLOB_INLINE, BLOB_NULL, Blob, Decoder, Encoder, FLAG_SYNC, Header, MsgKind, Status,
    WireError,
};
use crate::{GUEST_ID_TAG, ID_TAG_MASK, INLINE_MAX, WORKER_ID_TAG};

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

/// One entry of a handle table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    kind: u16,
    host: u64,
    refs: u32,
    owner: u32,
}

/// The handles of one guest (one VM region): opaque ids with a type, mapped
/// to host objects. A guest only ever sees ids; an id that is unknown, of the
/// wrong type or already released does not translate.
#[derive(Debug, Default)]
pub struct HandleTable {
    by_id: HashMap<u64, Entry>,
    by_host: HashMap<(u16, u64), u64>,
    next: u64,
}

impl HandleTable {
    /// An empty table.
    pub fn new() -> HandleTable {
        HandleTable::default()
    }

    /// Number of live ids.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no id is live.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The host object of `id` if it is a live handle of type `kind`.
    /// Id 0 is NULL and translates to 0.
    pub fn lookup(&self, id: u64, kind: u16) -> Option<u64> {
        if id == 0 {
            return Some(0);
        }
        self.by_id
            .get(&id)
            .filter(|e| e.kind == kind)
            .map(|e| e.host)
    }

    /// The host object of `id`, whatever its type.
    pub fn lookup_any(&self, id: u64) -> Option<u64> {
        self.by_id.get(&id).map(|e| e.host)
    }

    /// Whether `host` is a live object of type `kind` of this guest.
    pub fn has_host(&self, kind: u16, host: u64) -> bool {
        self.by_host.contains_key(&(kind, host))
    }

    /// The id of host object `host`, registering it (one reference, owned by
    /// guest process `owner`) if it is new. A NULL host object is id 0.
    pub fn register(&mut self, kind: u16, host: u64, owner: u32) -> u64 {
        if host == 0 {
            return 0;
        }
        if let Some(&id) = self.by_host.get(&(kind, host)) {
            return id;
        }
        self.next += 1;
        let id = WORKER_ID_TAG | (self.next & !ID_TAG_MASK);
        self.insert(id, kind, host, owner);
        id
    }

    fn insert(&mut self, id: u64, kind: u16, host: u64, owner: u32) {
        self.by_id.insert(
            id,
            Entry {
                kind,
                host,
                refs: 1,
                owner,
            },
        );
        self.by_host.insert((kind, host), id);
    }

    /// Binds a guest-chosen `id` to a new host object. The id must carry the
    /// guest tag and be unused.
    pub fn bind(&mut self, id: u64, kind: u16, host: u64, owner: u32) -> Result<(), DispatchError> {
        if id & ID_TAG_MASK != GUEST_ID_TAG || self.by_id.contains_key(&id) {
            return Err(DispatchError::Protocol(format!(
                "handle id {id:#x} cannot be bound"
            )));
        }
        if host != 0 {
            self.insert(id, kind, host, owner);
        }
        Ok(())
    }

    /// Adds a reference to `id`.
    pub fn retain(&mut self, id: u64) {
        if let Some(e) = self.by_id.get_mut(&id) {
            e.refs = e.refs.saturating_add(1);
        }
    }

    /// Drops a reference to `id`; forgets it at zero. Returns whether it
    /// was forgotten.
    pub fn release(&mut self, id: u64) -> bool {
        let Some(e) = self.by_id.get_mut(&id) else {
            return false;
        };
        e.refs -= 1;
        if e.refs > 0 {
            return false;
        }
        let e = self.by_id.remove(&id).expect("present");
        self.by_host.remove(&(e.kind, e.host));
        true
    }

    /// Removes every handle created by guest process `owner`, returning
    /// `(kind, host, references)` of each so that the caller can free them.
    pub fn drain_owner(&mut self, owner: u32) -> Vec<(u16, u64, u32)> {
        let ids: Vec<u64> = self
            .by_id
            .iter()
            .filter(|(_, e)| e.owner == owner)
            .map(|(&id, _)| id)
            .collect();
        ids.into_iter()
            .map(|id| {
                let e = self.by_id.remove(&id).expect("present");
                self.by_host.remove(&(e.kind, e.host));
                (e.kind, e.host, e.refs)
            })
            .collect()
    }
}

/// Messages for a guest produced outside its poller (callbacks fired by the
/// host library, possibly on its own threads), sent by the poller in order.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: Mutex<Vec<Vec<u8>>>,
    pending: AtomicBool,
}

impl Outbox {
    /// Queues a message.
    pub fn push(&self, msg: Vec<u8>) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(msg);
        self.pending.store(true, Ordering::Release);
    }

    /// Takes every queued message (cheap when there is none).
    pub fn take(&self) -> Vec<Vec<u8>> {
        // A plain load first: this runs on every poll, and an atomic
        // read-modify-write there would cost more than the poll itself.
        if !self.pending.load(Ordering::Relaxed) || !self.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Where a host callback goes: passed to the host library as the
/// callback's user data, and read by the generated trampoline.
#[derive(Debug)]
pub struct CallbackTarget {
    /// The guest's token for the application's function and user data.
    pub token: u64,
    /// The callback type (index in the specification).
    pub kind: u32,
    /// The guest's outbox.
    pub outbox: Arc<Outbox>,
    /// The guest's handles, to name objects passed to the callback.
    pub handles: Arc<Mutex<HandleTable>>,
    /// The guest process that registered the callback (handle owner).
    pub owner: u32,
}

impl CallbackTarget {
    /// A callback message with its header written.
    pub fn message(&self) -> Encoder {
        Encoder::with_header(
            Vec::new(),
            Header {
                kind: MsgKind::Callback,
                flags: 0,
                func: self.kind,
                call_id: self.token,
            },
        )
    }

    /// The guest id of a host object passed to the callback.
    pub fn id_of(&self, kind: u16, host: u64) -> u64 {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register(kind, host, self.owner)
    }

    /// Queues the message for the guest.
    pub fn send(&self, e: Encoder) {
        self.outbox.push(e.into_inner());
    }
}

/// What an [`Admission`] decides for a call that consumes a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Run the call now.
    Run,
    /// Not yet: the channel's thread waits and asks again. The guest's
    /// calls stay in order (a channel's calls run one after the other), and
    /// other channels are not held up.
    Wait,
    /// Do not run it: the call fails with the API's error for a refusal
    /// (the value given to [`CallCtx::consume`]).
    Refuse,
}

/// Who makes a call, as an [`Admission`] sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The VM (its region's name).
    pub vm: String,
    /// The channel in the VM's region.
    pub channel: u32,
    /// The guest process (its pid as the guest reports it).
    pub owner: u32,
    /// The API of the channel.
    pub api: &'static str,
}

/// The scheduling hook: every call that its specification marks
/// `consumes_rc(resource, amount)` asks the admission object the server
/// owns before it runs, and work that completes on the device may be
/// reported back with the device time it took. A policy (fair share,
/// priorities, rate limits, quotas) implements this trait.
pub trait Admission: Send + Sync {
    /// Whether the call of `caller` that consumes `amount` of `resource`
    /// may run now.
    fn admit(&self, caller: &Caller, resource: &'static str, amount: u64) -> Admit;

    /// Work of `caller` that consumed `resource` completed on the device,
    /// taking `device_time` there.
    fn completed(&self, caller: &Caller, resource: &'static str, device_time: Duration) {
        let _ = (caller, resource, device_time);
    }
}

/// The default policy: every call runs at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct AdmitAll;

impl Admission for AdmitAll {
    fn admit(&self, _: &Caller, _: &'static str, _: u64) -> Admit {
        Admit::Run
    }
}

impl Session {
    /// The state of a new channel of guest process `owner`.
    pub fn new(owner: u32) -> Session {
        Session {
            owner,
            caller: Caller {
                owner,
                ..Caller::default()
            },
            ..Session::default()
        }
    }
}

/// Per-channel state kept between calls.
#[derive(Default)]
pub struct Session {
    /// Buffers kept with `lifetime_manual`, keyed by the guest's pointer.
    pub manual: HashMap<u64, Vec<u8>>,
    /// Units of each resource consumed (`consumes_rc`).
    pub consumed: HashMap<&'static str, u64>,
    /// Calls served.
    pub calls: u64,
    /// Calls rejected (malformed, invalid handle, unavailable).
    pub rejected: u64,
    /// Messages for the guest produced by host callbacks.
    pub outbox: Arc<Outbox>,
    /// The guest process on this channel (its pid as it reports it): the
    /// owner of the handles its calls create.
    pub owner: u32,
    /// The region's buffer heap, when it has one and the backend places
    /// buffers in it.
    pub heap: Option<Arc<crate::heap::Heap>>,
    /// Who makes this channel's calls, for the admission object.
    pub caller: Caller,
    /// Decides whether calls that consume resources run (none: all run).
    pub admission: Option<Arc<dyn Admission>>,
    /// The reply buffer, reused from call to call.
    reply: Vec<u8>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("caller", &self.caller)
            .field("calls", &self.calls)
            .field("rejected", &self.rejected)
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

/// An output buffer prepared for the host function.
#[derive(Debug)]
pub enum OutBuf {
    /// The guest passed NULL.
    Null,
    /// Worker memory, returned inline.
    Local(Bytes),
    /// A validated range of the arena, written in place.
    Arena {
        /// Offset in the arena.
        offset: u64,
        /// Length.
        len: u64,
        /// Pointer to the range.
        ptr: *mut u8,
    },
}

impl OutBuf {
    /// The pointer to hand to the host function (NULL for [`OutBuf::Null`]).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        match self {
            OutBuf::Null => std::ptr::null_mut(),
            OutBuf::Local(v) => v.as_mut_ptr(),
            OutBuf::Arena { ptr, .. } => *ptr,
        }
    }

    /// The buffer's length.
    pub fn len(&self) -> usize {
        match self {
            OutBuf::Null => 0,
            OutBuf::Local(v) => v.len(),
            OutBuf::Arena { len, .. } => *len as usize,
        }
    }

    /// Whether it is NULL or empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the guest passed NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, OutBuf::Null)
    }

    /// The `i`-th pointer-sized word, for translating handles in place.
    pub fn word(&self, i: usize) -> Option<u64> {
        match self {
            OutBuf::Local(v) => (i * 8 + 8 <= v.len()).then(|| v.word(i)),
            _ => None,
        }
    }

    /// Replaces the `i`-th pointer-sized word.
    pub fn set_word(&mut self, i: usize, w: u64) {
        if let OutBuf::Local(v) = self {
            v.set_word(i, w);
        }
    }
}

/// Everything a generated dispatcher needs while executing one call.
pub struct CallCtx<'a> {
    /// The channel's state.
    pub session: &'a mut Session,
    /// The guest's handle table (shared by the channels of one region).
    pub handles: &'a Arc<Mutex<HandleTable>>,
    /// The channel's data arena.
    pub arena: &'a Arena,
    /// The reply's outputs, in order.
    pub out: Encoder,
}

impl CallCtx<'_> {
    fn table(&self) -> std::sync::MutexGuard<'_, HandleTable> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Translates a guest id of type `kind`, or fails with the API's
    /// `invalid` error value.
    pub fn handle(&self, id: u64, kind: u16, invalid: i64) -> Result<u64, DispatchError> {
        self.table()
            .lookup(id, kind)
            .ok_or(DispatchError::Api(invalid))
    }

    /// Whether `host` is a live host object of type `kind` of this guest
    /// (for guards that check values already translated).
    pub fn is_live_host(&self, kind: u16, host: u64) -> bool {
        self.table().has_host(kind, host)
    }

    /// Like [`CallCtx::handle`], but returns `None` for an unknown id.
    pub fn try_handle(&self, id: u64, kind: u16) -> Option<u64> {
        self.table().lookup(id, kind)
    }

    /// The id for a host object returned by the call, or found in a query's
    /// result (registered if new; a NULL object is id 0).
    pub fn register(&self, kind: u16, host: u64) -> u64 {
        let owner = self.session.owner;
        self.table().register(kind, host, owner)
    }

    /// Binds a guest-chosen id to a host object the call created.
    pub fn bind(&self, id: u64, kind: u16, host: u64) -> Result<(), DispatchError> {
        let owner = self.session.owner;
        self.table().bind(id, kind, host, owner)
    }

    /// `retain`: one more reference to `id`.
    pub fn retain(&self, id: u64) {
        self.table().retain(id);
    }

    /// `deallocate`: one reference fewer to `id`.
    pub fn release(&self, id: u64) {
        self.table().release(id);
    }

    /// The bytes of an input blob, copied out of shared memory.
    pub fn in_bytes(&self, blob: Blob<'_>) -> Result<Option<Bytes>, DispatchError> {
        match blob {
            Blob::Null => Ok(None),
            Blob::Inline(b) => Ok(Some(Bytes::from_slice(b))),
            Blob::Arena { offset, len } => {
                self.arena
                    .check(offset, len)
                    .map_err(|e| DispatchError::Protocol(e.to_string()))?;
                let mut v = Bytes::zeroed(len as usize);
                self.arena
                    .read(offset, v.as_mut_slice())
                    .map_err(|e| DispatchError::Protocol(e.to_string()))?;
                Ok(Some(v))
            }
        }
    }

    /// Input data the worker only passes on: inline bytes are copied out of
    /// the message; arena data is handed to the host function in place
    /// (zero-copy). The guest may change arena bytes underneath; they are
    /// opaque data to the worker, so that can only hurt the guest itself.
    pub fn in_data(&self, blob: Blob<'_>) -> Result<Option<InData>, DispatchError> {
        match blob {
            Blob::Null => Ok(None),
            Blob::Inline(b) => Ok(Some(InData::Local(Bytes::from_slice(b)))),
            Blob::Arena { offset, len } => {
                let ptr = self
                    .arena
                    .ptr(offset, len)
                    .map_err(|e| DispatchError::Protocol(e.to_string()))?;
                Ok(Some(InData::Shared {
                    ptr,
                    len: len as usize,
                    arena: self.arena.clone(),
                    offset,
                }))
            }
        }
    }

    /// A list of input blobs (an array of buffers or strings): a count,
    /// then each blob.
    pub fn in_list(
        &self,
        d: &mut Decoder<'_>,
    ) -> Result<Option<Vec<Option<Bytes>>>, DispatchError> {
        let n = d.u64()?;
        if n == crate::wire::NULL_LEN {
            return Ok(None);
        }
        if n > d.remaining() as u64 {
            return Err(DispatchError::Protocol(format!(
                "list of {n} elements is truncated"
            )));
        }
        (0..n)
            .map(|_| self.in_bytes(d.blob()?))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// For `maybe_handle`: translates a pointer-sized value that is a live
    /// handle id of this guest (of any type) into its host object.
    pub fn maybe_handle(&self, bytes: &mut Bytes) {
        if bytes.len() == 8 {
            let id = bytes.word(0);
            if (id & ID_TAG_MASK == WORKER_ID_TAG || id & ID_TAG_MASK == GUEST_ID_TAG)
                && let Some(h) = self.table().lookup_any(id)
            {
                bytes.set_word(0, h);
            }
        }
    }

    /// Reads an output-space request and prepares the buffer.
    pub fn out_space(&self, d: &mut Decoder<'_>) -> Result<OutBuf, DispatchError> {
        match d.u8()? {
            BLOB_NULL => Ok(OutBuf::Null),
            BLOB_INLINE => {
                let len = d.u64()?;
                if len > INLINE_MAX as u64 {
                    return Err(DispatchError::Protocol(format!(
                        "inline output of {len} bytes exceeds {INLINE_MAX}"
                    )));
                }
                Ok(OutBuf::Local(Bytes::zeroed(len as usize)))
            }
            BLOB_ARENA => {
                let offset = d.u64()?;
                let len = d.u64()?;
                let ptr = self
                    .arena
                    .ptr(offset, len)
                    .map_err(|e| DispatchError::Protocol(e.to_string()))?;
                Ok(OutBuf::Arena { offset, len, ptr })
            }
            t => Err(DispatchError::Wire(WireError::Invalid {
                what: "output tag",
                value: u64::from(t),
            })),
        }
    }

    /// Appends an output buffer to the reply.
    pub fn put_out(&mut self, buf: &OutBuf) {
        match buf {
            OutBuf::Null => self.out.blob(None),
            OutBuf::Local(v) => self.out.blob(Some(v.as_slice())),
            OutBuf::Arena { offset, len, .. } => self.out.arena_blob(*offset, *len),
        }
    }

    /// The user data to pass to the host library for a guest callback
    /// registered under `token` (0: none, NULL). The target is leaked on
    /// purpose: the host library may call it at any later time.
    pub fn callback_target(&self, token: u64, kind: u32) -> *mut std::ffi::c_void {
        if token == 0 {
            return std::ptr::null_mut();
        }
        let t = Box::new(CallbackTarget {
            token,
            kind,
            outbox: self.session.outbox.clone(),
            handles: self.handles.clone(),
            owner: self.session.owner,
        });
        Box::into_raw(t).cast()
    }

    /// `consumes_rc(resource, amount)`: asks the session's admission
    /// object whether the call may run (waiting while it says
    /// [`Admit::Wait`]), then records the units consumed. A refusal fails
    /// the call with the API's error value `refused`.
    pub fn consume(
        &mut self,
        resource: &'static str,
        amount: u64,
        refused: i64,
    ) -> Result<(), DispatchError> {
        if let Some(admission) = &self.session.admission {
            let mut backoff = transport::Backoff::new(&WaitStrategy::IDLE);
            loop {
                match admission.admit(&self.session.caller, resource, amount) {
                    Admit::Run => break,
                    Admit::Wait => {
                        let _ = backoff.snooze(None);
                    }
                    Admit::Refuse => {
                        tracing::debug!(resource, amount, "call refused by the admission policy");
                        return Err(DispatchError::Api(refused));
                    }
                }
            }
        }
        *self.session.consumed.entry(resource).or_default() += amount;
        Ok(())
    }
}

/// A generated dispatcher for one API.
pub trait Dispatcher: Send + Sync {
    /// Decodes and executes function `func`, writing its outputs to `cx.out`.
    fn dispatch(
        &self,
        func: u32,
        args: &mut Decoder<'_>,
        cx: &mut CallCtx<'_>,
    ) -> Result<(), DispatchError>;

    /// The function's name (for logs), if the id is known.
    fn name(&self, func: u32) -> Option<&'static str>;

    /// Frees a host object of handle type `kind` (cleanup after a dead guest).
    fn destroy(&self, kind: u16, host: u64);
}

/// Executes one message and returns the reply to send, if any.
pub fn handle_message(
    msg: &[u8],
    session: &mut Session,
    handles: &Arc<Mutex<HandleTable>>,
    arena: &Arena,
    dispatcher: &dyn Dispatcher,
    reply_buf: Vec<u8>,
) -> Option<Vec<u8>> {
    let (h, mut d) = match Decoder::new(msg) {
        Ok(x) => x,
        Err(e) => {
            session.rejected += 1;
            let mut enc = Encoder::with_header(
                reply_buf,
                Header {
                    kind: MsgKind::AsyncError,
                    flags: 0,
                    func: 0,
                    call_id: 0,
                },
            );
            enc.str(&format!("malformed message: {e}"));
            return Some(enc.into_inner());
        }
    };
    if h.kind != MsgKind::Call {
        session.rejected += 1;
        return None;
    }
    session.calls += 1;
    let sync = h.flags & FLAG_SYNC != 0;
    let reply_header = Header {
        kind: MsgKind::Reply,
        flags: Status::Ok as u32,
        func: h.func,
        call_id: h.call_id,
    };
    let mut cx = CallCtx {
        session,
        handles,
        arena,
        out: Encoder::with_header(reply_buf, reply_header),
    };
    let result = dispatcher
        .dispatch(h.func, &mut d, &mut cx)
        .and_then(|()| d.finish().map_err(DispatchError::from));
    let mut out = cx.out;
    match result {
        Ok(()) if sync => Some(out.into_inner()),
        Ok(()) => None,
        Err(e) => {
            session.rejected += 1;
            let name = dispatcher.name(h.func).unwrap_or("?");
            tracing::debug!(func = name, call = h.call_id, "call rejected: {e}");
            let buf = out.into_inner();
            let (status, kind) = match &e {
                DispatchError::Api(_) | DispatchError::Failed(_) => {
                    (Status::ApiError, MsgKind::Reply)
                }
                DispatchError::Unavailable(_) => (Status::Unavailable, MsgKind::Reply),
                _ => (Status::Protocol, MsgKind::Reply),
            };
            let kind = if sync { kind } else { MsgKind::AsyncError };
            out = Encoder::with_header(
                buf,
                Header {
                    kind,
                    flags: status as u32,
                    func: h.func,
                    call_id: h.call_id,
                },
            );
            match e {
                DispatchError::Api(v) | DispatchError::Failed(v) if sync => out.i64(v),
                DispatchError::Unavailable(n) if sync => out.str(n),
                other => out.str(&format!("{name}: {other}")),
            }
            Some(out.into_inner())
        }
    }
}

/// Serves every message waiting on `ch`; returns how many it handled.
/// A ring failure (corruption, or the guest went away) is returned so the
/// caller can drop the channel; it affects no other channel.
pub fn serve_pending(
    ch: &mut WorkerChannel,
    session: &mut Session,
    handles: &Arc<Mutex<HandleTable>>,
    dispatcher: &dyn Dispatcher,
    buf: &mut Vec<u8>,
    wait: &WaitStrategy,
) -> Result<usize, RingError> {
    let mut n = 0;
    let timeout = Some(std::time::Duration::from_secs(30));
    flush_outbox(ch, session, wait)?;
    while ch.rx.try_recv(buf)? {
        n += 1;
        let reply = std::mem::take(&mut session.reply);
        if let Some(r) = handle_message(buf, session, handles, &ch.arena, dispatcher, reply) {
            // Callbacks fired during the call reach the guest before its reply.
            flush_outbox(ch, session, wait)?;
            ch.tx.send(&r, wait, timeout)?;
            session.reply = r;
        }
    }
    Ok(n)
}

/// Sends the messages host callbacks queued for the guest.
pub fn flush_outbox(
    ch: &mut WorkerChannel,
    session: &Session,
    wait: &WaitStrategy,
) -> Result<(), RingError> {
    for m in session.outbox.take() {
        ch.tx
            .send(&m, wait, Some(std::time::Duration::from_secs(30)))?;
    }
    Ok(())
}

/// Input data: a private copy, or a range of the arena used in place.
#[derive(Debug)]
pub enum InData {
    /// Copied out of the message.
    Local(Bytes),
    /// In the arena, validated to lie inside it.
    Shared {
        /// Start of the range.
        ptr: *mut u8,
        /// Its length.
        len: usize,
        /// The arena, to read single elements safely.
        arena: Arena,
        /// Offset of the range in the arena.
        offset: u64,
    },
}

impl InData {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            InData::Local(b) => b.len(),
            InData::Shared { len, .. } => *len,
        }
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pointer for the host function.
    pub fn as_ptr(&self) -> *const u8 {
        match self {
            InData::Local(b) => b.as_ptr(),
            InData::Shared { ptr, .. } => *ptr,
        }
    }

    /// Element `i` of an array of `size`-byte integers (0 past the end),
    /// copied out of shared memory first.
    pub fn int(&self, i: usize, size: usize, signed: bool) -> i128 {
        match self {
            InData::Local(b) => b.int(i, size, signed),
            InData::Shared {
                len, arena, offset, ..
            } => {
                let Some(at) = i.checked_mul(size).filter(|at| at + size <= *len) else {
                    return 0;
                };
                let mut tmp = [0u8; 16];
                if arena.read(offset + at as u64, &mut tmp[..size]).is_err() {
                    return 0;
                }
                Bytes::from_slice(&tmp[..size]).int(0, size, signed)
            }
        }
    }
}

/// Bytes received from (or returned to) a guest, in 8-byte-aligned memory so
/// that host functions may read them as arrays of any scalar type.
#[derive(Debug, Clone, Default)]
pub struct Bytes {
    words: Vec<u64>,
    len: usize,
}

impl Bytes {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Bytes {
        Bytes {
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }

    /// A copy of `data`.
    pub fn from_slice(data: &[u8]) -> Bytes {
        let mut b = Bytes::zeroed(data.len());
        b.as_mut_slice().copy_from_slice(data);
        b
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.words.as_bytes()[..self.len]
    }

    /// The bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.words.as_mut_bytes()[..len]
    }

    /// Pointer to the first byte (8-aligned).
    pub fn as_ptr(&self) -> *const u8 {
        self.words.as_ptr().cast()
    }

    /// Mutable pointer to the first byte (8-aligned).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr().cast()
    }

    /// Element `i` of an array of `size`-byte integers (0 past the end).
    pub fn int(&self, i: usize, size: usize, signed: bool) -> i128 {
        let s = self.as_slice();
        let Some(b) = i
            .checked_mul(size)
            .and_then(|at| s.get(at..at.checked_add(size)?))
        else {
            return 0;
        };
        let mut w = [0u8; 16];
        w[..size].copy_from_slice(b);
        let v = u128::from_le_bytes(w);
        if signed && size < 16 && b[size - 1] & 0x80 != 0 {
            (v | (u128::MAX << (size * 8))) as i128
        } else {
            v as i128
        }
    }

    /// Word `i` (pointer-sized elements).
    pub fn word(&self, i: usize) -> u64 {
        self.int(i, 8, false) as u64
    }

    /// The `u64` at byte offset `off` (0 past the end).
    pub fn u64_at(&self, off: usize) -> u64 {
        self.as_slice()
            .get(off..off + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8")))
    }

    /// Replaces the `u64` at byte offset `off` (ignored past the end).
    pub fn set_u64_at(&mut self, off: usize, v: u64) {
        if let Some(b) = self.as_mut_slice().get_mut(off..off + 8) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }

    /// Replaces word `i` (ignored past the end).
    pub fn set_word(&mut self, i: usize, v: u64) {
        if let Some(b) = self.as_mut_slice().get_mut(i * 8..i * 8 + 8) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }

    /// Whether the last byte is NUL (a complete C string).
    pub fn is_c_string(&self) -> bool {
        self.as_slice().last() == Some(&0)
    }
}
