//! What a generated dispatcher works with while executing one call: the
//! call context, input data and output buffers.

use transport::{Arena, WaitStrategy};
use zerocopy::IntoBytes;

use super::{Admit, CallbackTarget, DispatchError, HandleTable, Session};
use crate::wire::{BLOB_ARENA, BLOB_INLINE, BLOB_NULL, Blob, Decoder, Encoder, WireError};
use crate::{GUEST_ID_TAG, ID_TAG_MASK, INLINE_MAX, WORKER_ID_TAG};
use std::sync::{Arc, Mutex};

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
            .lookup(self.session.owner, id, kind)
            .ok_or(DispatchError::Api(invalid))
    }

    /// Whether `host` is a live host object of type `kind` of this guest
    /// (for guards that check values already translated).
    pub fn is_live_host(&self, kind: u16, host: u64) -> bool {
        self.table().has_host(self.session.owner, kind, host)
    }

    /// Like [`CallCtx::handle`], but returns `None` for an unknown id.
    pub fn try_handle(&self, id: u64, kind: u16) -> Option<u64> {
        self.table().lookup(self.session.owner, id, kind)
    }

    /// The id for a host object returned by the call, or found in a query's
    /// result (registered if new; a NULL object is id 0).
    pub fn register(&self, kind: u16, host: u64) -> u64 {
        let owner = self.session.owner;
        self.table().register(owner, kind, host)
    }

    /// Binds a guest-chosen id to a host object the call created.
    pub fn bind(&self, id: u64, kind: u16, host: u64) -> Result<(), DispatchError> {
        let owner = self.session.owner;
        self.table().bind(owner, id, kind, host)
    }

    /// `retain`: one more reference to `id`.
    pub fn retain(&self, id: u64) {
        self.table().retain(self.session.owner, id);
    }

    /// `deallocate`: one reference fewer to `id`.
    pub fn release(&self, id: u64) {
        self.table().release(self.session.owner, id);
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
                && let Some(h) = self.table().lookup_any(self.session.owner, id)
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
            let caller = &self.session.caller;
            let mut backoff = transport::Backoff::new(&WaitStrategy::IDLE);
            let mut since: Option<std::time::Instant> = None;
            loop {
                match admission.admit(caller, resource, amount, since.is_some()) {
                    Admit::Run => break,
                    Admit::Wait => {
                        since.get_or_insert_with(std::time::Instant::now);
                        let _ = backoff.snooze(None);
                    }
                    Admit::Refuse => {
                        if let Some(t) = since {
                            admission.wait_over(caller, resource, t.elapsed());
                        }
                        tracing::debug!(resource, amount, "call refused by the admission policy");
                        return Err(DispatchError::Api(refused));
                    }
                }
            }
            if let Some(t) = since {
                admission.wait_over(caller, resource, t.elapsed());
            }
        }
        // A guest names any amount (a size it asks to allocate): counted
        // without overflowing.
        self.session.consumed.add(resource, amount);
        Ok(())
    }
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
