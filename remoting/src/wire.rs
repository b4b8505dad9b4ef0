//! The wire format of calls and replies.
//!
//! A message is a fixed header followed by values written in order by an
//! [`Encoder`] and read back in the same order by a [`Decoder`]. Integers are
//! little-endian and fixed-width; byte blobs carry their length, and either
//! travel inline or name a range of the channel's data arena. The decoder
//! reads from a private copy of the message and checks every length: a
//! malformed message is a [`WireError`], never a panic.

/// Marks a NULL pointer where a blob or list length is expected.
pub const NULL_LEN: u64 = u64::MAX;
/// Blob tag: bytes follow inline.
pub const BLOB_INLINE: u8 = 1;
/// Blob tag: the bytes are in the data arena at `(offset, len)`.
pub const BLOB_ARENA: u8 = 2;
/// Blob tag: NULL pointer.
pub const BLOB_NULL: u8 = 0;

/// Kinds of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MsgKind {
    /// A call, guest → worker.
    Call = 1,
    /// The reply to a call, worker → guest.
    Reply = 2,
    /// A callback invocation, worker → guest.
    Callback = 3,
    /// An asynchronous call failed, worker → guest.
    AsyncError = 4,
    /// The first message on a channel, guest → worker: the API the guest
    /// speaks and its specification's revision (see [`crate::ApiId`]). The
    /// worker answers with a [`MsgKind::Reply`] to call 0.
    Hello = 5,
}

impl MsgKind {
    /// Parses a kind.
    pub fn from_u32(v: u32) -> Option<MsgKind> {
        Some(match v {
            1 => MsgKind::Call,
            2 => MsgKind::Reply,
            3 => MsgKind::Callback,
            4 => MsgKind::AsyncError,
            5 => MsgKind::Hello,
            _ => return None,
        })
    }
}

/// Call flag: the guest waits for a reply.
pub const FLAG_SYNC: u32 = 1;

/// Header of every message: kind, flags or status, function id, call id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the message is.
    pub kind: MsgKind,
    /// Call flags, or a reply's [`Status`] code.
    pub flags: u32,
    /// The function (or callback) id from the generated tables.
    pub func: u32,
    /// The call this message belongs to.
    pub call_id: u64,
}

/// Size of an encoded [`Header`].
pub const HEADER_LEN: usize = 20;

/// Status of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// The call ran; outputs follow.
    Ok = 0,
    /// The call did not run: a handle was invalid; an i64 error value follows.
    ApiError = 1,
    /// The call did not run: the command was malformed; a message follows.
    Protocol = 2,
    /// The host library lacks the function.
    Unavailable = 3,
    /// The worker does not serve the API the guest named on this channel,
    /// or serves another revision of its specification (or the guest named
    /// none); a message follows.
    Refused = 4,
}

impl Status {
    /// Parses a status.
    pub fn from_u32(v: u32) -> Option<Status> {
        Some(match v {
            0 => Status::Ok,
            1 => Status::ApiError,
            2 => Status::Protocol,
            3 => Status::Unavailable,
            4 => Status::Refused,
            _ => return None,
        })
    }
}

/// A malformed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message ended early.
    #[error("message truncated: needed {need} more bytes at offset {at}")]
    Truncated {
        /// Where reading stopped.
        at: usize,
        /// How many bytes were missing.
        need: usize,
    },
    /// A value outside its allowed range.
    #[error("invalid {what}: {value}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
    /// Bytes left over after the last value.
    #[error("{0} unexpected trailing bytes")]
    Trailing(usize),
}

/// Writes values into a message buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// Starts a message with `header`, reusing `buf`'s allocation.
    pub fn with_header(mut buf: Vec<u8>, header: Header) -> Encoder {
        buf.clear();
        buf.extend_from_slice(&(header.kind as u32).to_le_bytes());
        buf.extend_from_slice(&header.flags.to_le_bytes());
        buf.extend_from_slice(&header.func.to_le_bytes());
        buf.extend_from_slice(&header.call_id.to_le_bytes());
        Encoder { buf }
    }

    /// Replaces the header's flags (or status) field.
    pub fn set_flags(&mut self, flags: u32) {
        self.buf[4..8].copy_from_slice(&flags.to_le_bytes());
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the buffer back.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// Current length.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written (not even a header).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A `u32`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `u64` (also used for every integer, pointer-sized value and id).
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An `i64`.
    pub fn i64(&mut self, v: i64) {
        self.u64(v as u64);
    }

    /// Inline bytes with their length (`None`: NULL).
    pub fn blob(&mut self, data: Option<&[u8]>) {
        match data {
            None => self.u8(BLOB_NULL),
            Some(d) => {
                self.u8(BLOB_INLINE);
                self.u64(d.len() as u64);
                self.buf.extend_from_slice(d);
            }
        }
    }

    /// A reference to `len` bytes at `offset` in the data arena.
    pub fn arena_blob(&mut self, offset: u64, len: u64) {
        self.u8(BLOB_ARENA);
        self.u64(offset);
        self.u64(len);
    }

    /// A string.
    pub fn str(&mut self, s: &str) {
        self.blob(Some(s.as_bytes()));
    }
}

/// A blob as read from a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blob<'a> {
    /// NULL pointer.
    Null,
    /// Inline bytes.
    Inline(&'a [u8]),
    /// A range of the data arena (not yet validated against the arena).
    Arena {
        /// Offset in the arena.
        offset: u64,
        /// Length.
        len: u64,
    },
}

impl Blob<'_> {
    /// The blob's length (0 for NULL).
    pub fn len(&self) -> u64 {
        match self {
            Blob::Null => 0,
            Blob::Inline(b) => b.len() as u64,
            Blob::Arena { len, .. } => *len,
        }
    }

    /// Whether the blob is NULL or empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the blob is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Blob::Null)
    }
}

/// Reads values from a message, checking every length.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// Reads the header of `buf` and returns it with a decoder for the rest.
    pub fn new(buf: &'a [u8]) -> Result<(Header, Decoder<'a>), WireError> {
        let mut d = Decoder { buf, pos: 0 };
        let kind = d.u32()?;
        let kind = MsgKind::from_u32(kind).ok_or(WireError::Invalid {
            what: "message kind",
            value: u64::from(kind),
        })?;
        let flags = d.u32()?;
        let func = d.u32()?;
        let call_id = d.u64()?;
        Ok((
            Header {
                kind,
                flags,
                func,
                call_id,
            },
            d,
        ))
    }

    /// A decoder positioned at `pos` of `buf` (past a header already read).
    pub fn at(buf: &'a [u8], pos: usize) -> Decoder<'a> {
        Decoder {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let rest = self.buf.len() - self.pos;
        if n > rest {
            return Err(WireError::Truncated {
                at: self.pos,
                need: n - rest,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    /// A `u32`.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }

    /// A `u64`.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }

    /// An `i64`.
    pub fn i64(&mut self) -> Result<i64, WireError> {
        Ok(self.u64()? as i64)
    }

    /// A blob.
    pub fn blob(&mut self) -> Result<Blob<'a>, WireError> {
        match self.u8()? {
            BLOB_NULL => Ok(Blob::Null),
            BLOB_INLINE => {
                let len = self.u64()?;
                let len = usize::try_from(len).map_err(|_| WireError::Invalid {
                    what: "blob length",
                    value: len,
                })?;
                Ok(Blob::Inline(self.take(len)?))
            }
            BLOB_ARENA => {
                let offset = self.u64()?;
                let len = self.u64()?;
                Ok(Blob::Arena { offset, len })
            }
            t => Err(WireError::Invalid {
                what: "blob tag",
                value: u64::from(t),
            }),
        }
    }

    /// An inline string (lossy on invalid UTF-8).
    pub fn string(&mut self) -> Result<String, WireError> {
        match self.blob()? {
            Blob::Inline(b) => Ok(String::from_utf8_lossy(b).into_owned()),
            Blob::Null => Ok(String::new()),
            Blob::Arena { .. } => Err(WireError::Invalid {
                what: "string location",
                value: BLOB_ARENA as u64,
            }),
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails when bytes are left over.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrip() {
        let h = Header {
            kind: MsgKind::Call,
            flags: FLAG_SYNC,
            func: 7,
            call_id: 99,
        };
        let mut e = Encoder::with_header(Vec::new(), h);
        e.u32(5);
        e.i64(-3);
        e.blob(Some(b"abc"));
        e.blob(None);
        e.arena_blob(64, 4096);
        e.str("hi");
        assert_eq!(e.len(), HEADER_LEN + 4 + 8 + 12 + 1 + 17 + 11);
        let bytes = e.into_inner();
        let (h2, mut d) = Decoder::new(&bytes).unwrap();
        assert_eq!(h2, h);
        assert_eq!(d.u32(), Ok(5));
        assert_eq!(d.i64(), Ok(-3));
        assert_eq!(d.blob(), Ok(Blob::Inline(b"abc")));
        assert_eq!(d.blob(), Ok(Blob::Null));
        assert_eq!(
            d.blob(),
            Ok(Blob::Arena {
                offset: 64,
                len: 4096
            })
        );
        assert_eq!(d.string().unwrap(), "hi");
        assert_eq!(d.finish(), Ok(()));
    }

    /// A body built of the pieces messages are made of (integers, blob tags
    /// with lengths that may or may not match, raw bytes), so that random
    /// bodies reach every decoder rather than failing the header check.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<u64>().prop_map(|v| v.to_le_bytes().to_vec()),
            (0u64..64).prop_map(|v| v.to_le_bytes().to_vec()),
            Just(NULL_LEN.to_le_bytes().to_vec()),
            Just(vec![BLOB_NULL]),
            (0u64..300, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(n, b)| {
                let mut v = vec![BLOB_INLINE];
                v.extend(n.to_le_bytes());
                v.extend(b);
                v
            }),
            (any::<u64>(), any::<u64>()).prop_map(|(o, l)| {
                let mut v = vec![BLOB_ARENA];
                v.extend(o.to_le_bytes());
                v.extend(l.to_le_bytes());
                v
            }),
            prop::collection::vec(any::<u8>(), 0..9),
        ]
    }

    /// A call header (valid, so the body is decoded) followed by `body`.
    fn call_with_body(func: u32, body: &[u8]) -> Vec<u8> {
        let mut e = Encoder::with_header(
            Vec::new(),
            Header {
                kind: MsgKind::Call,
                flags: FLAG_SYNC,
                func,
                call_id: 1,
            },
        );
        e.buf.extend_from_slice(body);
        e.into_inner()
    }

    proptest! {
        /// A valid header with a random body: every decoder returns a value
        /// or an error, never a panic; each value lies inside the body and
        /// decoding only moves forward.
        #[test]
        fn random_bodies_decode_or_fail_cleanly(
            pieces in prop::collection::vec(piece(), 0..12),
            ops in prop::collection::vec(0u8..5, 1..40),
        ) {
            let body: Vec<u8> = pieces.concat();
            let msg = call_with_body(3, &body);
            let (h, mut d) = Decoder::new(&msg).expect("valid header");
            prop_assert_eq!(h.func, 3);
            prop_assert_eq!(d.remaining(), body.len());
            for op in ops {
                let before = d.remaining();
                let ok = match op {
                    0 => d.u64().is_ok(),
                    1 => d.u32().is_ok(),
                    2 => d.u8().is_ok(),
                    3 => match d.blob() {
                        Ok(Blob::Inline(b)) => {
                            prop_assert!(b.len() <= before);
                            true
                        }
                        Ok(_) => true,
                        Err(_) => false,
                    },
                    _ => d.string().is_ok(),
                };
                prop_assert!(d.remaining() <= before);
                if !ok && op < 3 {
                    prop_assert_eq!(d.remaining(), before, "a failed fixed-size read consumed nothing");
                }
            }
            prop_assert_eq!(d.finish().is_ok(), d.remaining() == 0);
        }

        /// Whatever sequence of values is encoded decodes to the same
        /// values, and then to nothing more.
        #[test]
        fn encoded_values_decode_to_themselves(
            values in prop::collection::vec(
                prop_oneof![
                    any::<u64>().prop_map(|v| (0u8, v, Vec::new())),
                    prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| (1u8, 0, b)),
                    Just((2u8, 0, Vec::new())),
                ],
                0..20,
            ),
        ) {
            let mut e = Encoder::with_header(
                Vec::new(),
                Header { kind: MsgKind::Reply, flags: 0, func: 1, call_id: 2 },
            );
            for (t, v, b) in &values {
                match t {
                    0 => e.u64(*v),
                    1 => e.blob(Some(b)),
                    _ => e.blob(None),
                }
            }
            let bytes = e.into_inner();
            let (_, mut d) = Decoder::new(&bytes).unwrap();
            for (t, v, b) in &values {
                match t {
                    0 => prop_assert_eq!(d.u64(), Ok(*v)),
                    1 => prop_assert_eq!(d.blob(), Ok(Blob::Inline(b.as_slice()))),
                    _ => prop_assert_eq!(d.blob(), Ok(Blob::Null)),
                }
            }
            prop_assert_eq!(d.finish(), Ok(()));
        }
    }
}
