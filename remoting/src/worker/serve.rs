//! Executing messages and serving a channel.

use std::sync::{Arc, Mutex};

use transport::{Arena, RingError, WaitStrategy, WorkerChannel};

use super::{CallCtx, DispatchError, HandleTable, Session};
use crate::wire::{Decoder, Encoder, FLAG_SYNC, Header, MsgKind, Status};

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

    /// A guest process is gone (its last channel ended), before its handles
    /// are destroyed: frees what the API's backend tracks outside the
    /// handle table (CUDA's device memory). Nothing by default.
    fn guest_gone(&self, _caller: &crate::worker::Caller) {}

    /// The objects of a gone guest process, `(kind, host, references)` in
    /// the order they are about to be destroyed: settles what would make a
    /// destructor wait forever for the guest (OpenCL's user events, which
    /// only the guest could complete). Nothing by default.
    fn before_destroy(&self, _owned: &[(u16, u64, u32)]) {}

    /// After the objects of a process that went away were destroyed.
    fn after_destroy(&self) {}
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
    if let Some(slot) = &cx.session.in_flight {
        slot.begin(h.func);
    }
    let started = (cx.session.admission.is_some()
        && cx.session.calls.is_multiple_of(super::LATENCY_SAMPLE))
    .then(std::time::Instant::now);
    let result = dispatcher
        .dispatch(h.func, &mut d, &mut cx)
        .and_then(|()| d.finish().map_err(DispatchError::from));
    if let Some(slot) = &cx.session.in_flight {
        slot.end();
    }
    if let Some(a) = &cx.session.admission {
        let took = started.map(|t| t.elapsed());
        a.served(&cx.session.caller, h.func, result.is_ok(), took);
    }
    let mut out = cx.out;
    match result {
        Ok(()) if sync => Some(out.into_inner()),
        Ok(()) => {
            // No reply: the buffer serves the next call.
            session.reply = out.into_inner();
            None
        }
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
