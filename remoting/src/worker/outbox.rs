//! Messages for a guest that host callbacks produce, and where callbacks go.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::HandleTable;
use crate::wire::{Encoder, Header, MsgKind};

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
            .register(self.owner, kind, host)
    }

    /// Queues the message for the guest.
    pub fn send(&self, e: Encoder) {
        self.outbox.push(e.into_inner());
    }
}
