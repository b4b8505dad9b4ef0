//! Building a call: its arguments, in order, inline or through the arena.

use transport::ArenaBlock;

use super::connection::Inner;
use super::{CallError, Connection, Reply};
use crate::INLINE_MAX;
use crate::wire::{Encoder, FLAG_SYNC, Header, MsgKind};

/// A call being built. Holds the connection's lock until it is sent and its
/// reply read, so a process's threads take turns on the channel.
pub struct Call<'c> {
    conn: &'c Connection,
    pub(super) inner: super::lock::ChannelGuard<'c, Inner>,
    enc: Encoder,
    call_id: u64,
    sync: bool,
    blocks: Vec<ArenaBlock>,
    error: Option<CallError>,
}

impl<'c> Call<'c> {
    /// Starts a call of `func` on `conn`, whose channel `inner` holds.
    pub(super) fn new(
        conn: &'c Connection,
        mut inner: super::lock::ChannelGuard<'c, Inner>,
        func: u32,
        sync: bool,
    ) -> Call<'c> {
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
            conn,
            inner,
            enc: Encoder::with_header(buf, header),
            call_id,
            sync,
            blocks: Vec::new(),
            error: None,
        }
    }

    /// The connection.
    pub fn connection(&self) -> &'c Connection {
        self.conn
    }

    /// An integer or pointer-sized value.
    pub fn u64(&mut self, v: u64) {
        self.enc.u64(v);
    }

    /// A handle: its id on the wire (see [`super::objects`]).
    pub fn handle<T>(&mut self, h: *mut T) {
        self.enc.u64(super::objects::id_of(h as usize));
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

    /// Input bytes read from a raw pointer, in which the application's
    /// handles (objects) are replaced by their ids: handle arrays, property
    /// lists, structs with handle fields, kernel arguments.
    ///
    /// # Safety
    /// `ptr` must be NULL or valid for reading `len` bytes.
    pub unsafe fn in_ptr_handles(&mut self, ptr: *const u8, len: usize) {
        // SAFETY: the caller's guarantee, passed on.
        match unsafe { super::objects::ids_in_copy(ptr, len) } {
            Some(v) => self.in_bytes(Some(&v)),
            // SAFETY: as above.
            None => unsafe { self.in_ptr(ptr, len) },
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
