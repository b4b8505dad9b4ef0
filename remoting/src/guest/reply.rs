//! Reading a reply, in the order the worker wrote it.

use super::{Call, CallError};
use crate::wire::{Blob, Decoder, Status, WireError};

/// A reply being read by generated code, in the order the worker wrote it.
/// Frees the call's arena blocks and the connection's lock when dropped.
pub struct Reply<'c> {
    call: Call<'c>,
    bytes: Vec<u8>,
    pos: usize,
}

impl<'c> Reply<'c> {
    pub(super) fn parse(call: Call<'c>, bytes: Vec<u8>) -> Result<Reply<'c>, CallError> {
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
