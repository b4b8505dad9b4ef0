//! Handle tables: the ids a guest sees, mapped to host objects.

use std::collections::HashMap;

use super::DispatchError;
use crate::{GUEST_ID_TAG, ID_TAG_MASK, WORKER_ID_TAG};

/// One entry of a handle table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    kind: u16,
    host: u64,
    refs: u32,
}

/// The handles of one VM's guest processes for one API: opaque ids with a
/// type, mapped to host objects, in a namespace of their own per process
/// (`owner`, its pid as the guest reports it). A guest process only ever
/// sees ids; an id that is unknown, of the wrong type, already released or
/// another process's does not translate. A host object that several
/// processes receive (a platform, a device) has an id in each, so that one
/// process's exit takes nothing from the others.
#[derive(Debug)]
pub struct HandleTable {
    by_id: HashMap<(u32, u64), Entry>,
    by_host: HashMap<(u32, u16, u64), u64>,
    /// The last id issued. Starts at a value of this table's own (see
    /// [`HandleTable::new`]).
    next: u64,
}

impl Default for HandleTable {
    fn default() -> Self {
        HandleTable::new()
    }
}

impl HandleTable {
    /// An empty table. Its ids start at a point of their own (20 bits from
    /// the clock and the process id, above a 28-bit counter): after an
    /// executor restarts, an id that a guest kept from the executor that
    /// died does not name an object of the new one (except by a one in a
    /// million coincidence), so a stale handle fails as invalid instead of
    /// reaching another object.
    pub fn new() -> HandleTable {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let seed = (u64::from(nanos) ^ u64::from(std::process::id()).rotate_left(7)) & 0xF_FFFF;
        HandleTable {
            by_id: HashMap::new(),
            by_host: HashMap::new(),
            next: seed << 28,
        }
    }

    /// Number of live ids.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no id is live.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The host object of `owner`'s `id` if it is a live handle of type
    /// `kind`. Id 0 is NULL and translates to 0.
    pub fn lookup(&self, owner: u32, id: u64, kind: u16) -> Option<u64> {
        if id == 0 {
            return Some(0);
        }
        self.by_id
            .get(&(owner, id))
            .filter(|e| e.kind == kind)
            .map(|e| e.host)
    }

    /// The host object of `owner`'s `id`, whatever its type.
    pub fn lookup_any(&self, owner: u32, id: u64) -> Option<u64> {
        self.by_id.get(&(owner, id)).map(|e| e.host)
    }

    /// Whether `host` is a live object of type `kind` of process `owner`.
    pub fn has_host(&self, owner: u32, kind: u16, host: u64) -> bool {
        self.by_host.contains_key(&(owner, kind, host))
    }

    /// `owner`'s id of host object `host`, registering it (one reference)
    /// if it is new to that process. A NULL host object is id 0.
    pub fn register(&mut self, owner: u32, kind: u16, host: u64) -> u64 {
        if host == 0 {
            return 0;
        }
        if let Some(&id) = self.by_host.get(&(owner, kind, host)) {
            return id;
        }
        self.next += 1;
        let id = WORKER_ID_TAG | (self.next & !ID_TAG_MASK);
        self.insert(owner, id, kind, host);
        id
    }

    fn insert(&mut self, owner: u32, id: u64, kind: u16, host: u64) {
        self.by_id.insert(
            (owner, id),
            Entry {
                kind,
                host,
                refs: 1,
            },
        );
        self.by_host.insert((owner, kind, host), id);
    }

    /// Binds a guest-chosen `id` of process `owner` to a new host object.
    /// The id must carry the guest tag and be unused by that process.
    pub fn bind(&mut self, owner: u32, id: u64, kind: u16, host: u64) -> Result<(), DispatchError> {
        if id & ID_TAG_MASK != GUEST_ID_TAG || self.by_id.contains_key(&(owner, id)) {
            return Err(DispatchError::Protocol(format!(
                "handle id {id:#x} cannot be bound"
            )));
        }
        if host != 0 {
            self.insert(owner, id, kind, host);
        }
        Ok(())
    }

    /// Adds a reference to `owner`'s `id`.
    pub fn retain(&mut self, owner: u32, id: u64) {
        if let Some(e) = self.by_id.get_mut(&(owner, id)) {
            e.refs = e.refs.saturating_add(1);
        }
    }

    /// Drops a reference to `owner`'s `id`; forgets it at zero. Returns
    /// whether it was forgotten.
    pub fn release(&mut self, owner: u32, id: u64) -> bool {
        let Some(e) = self.by_id.get_mut(&(owner, id)) else {
            return false;
        };
        e.refs -= 1;
        if e.refs > 0 {
            return false;
        }
        let e = self.by_id.remove(&(owner, id)).expect("present");
        self.by_host.remove(&(owner, e.kind, e.host));
        true
    }

    /// Removes every handle of guest process `owner`, returning `(kind,
    /// host, references)` of each so that the caller can free them — in
    /// the order to free them: kinds in the reverse of their declaration
    /// (a specification declares the objects that others are made from
    /// first: contexts before the buffers and queues made in them), and in
    /// each kind the newest first (a sub-buffer before its buffer). A
    /// driver may assert when a context goes before what lives in it.
    pub fn drain_owner(&mut self, owner: u32) -> Vec<(u16, u64, u32)> {
        let mut ids: Vec<(u32, u64)> = self
            .by_id
            .keys()
            .filter(|(o, _)| *o == owner)
            .copied()
            .collect();
        ids.sort_by_key(|&(o, id)| {
            let kind = self.by_id[&(o, id)].kind;
            std::cmp::Reverse((kind, id))
        });
        ids.into_iter()
            .map(|key| {
                let e = self.by_id.remove(&key).expect("present");
                self.by_host.remove(&(owner, e.kind, e.host));
                (e.kind, e.host, e.refs)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUF: u16 = 4;
    const CTX: u16 = 2;
    const DEV: u16 = 1;

    #[test]
    fn ids_translate_only_for_their_type_while_referenced() {
        let mut t = HandleTable::new();
        let id = t.register(7, BUF, 0x1000);
        assert_eq!(id & ID_TAG_MASK, WORKER_ID_TAG);
        assert_eq!(t.lookup(7, id, BUF), Some(0x1000));
        assert_eq!(t.lookup(7, id, CTX), None, "another type");
        assert_eq!(t.lookup(7, 0, BUF), Some(0), "NULL");
        assert_eq!(t.lookup(7, id ^ 1, BUF), None, "an id never issued");
        // The same host object registered again is the same id.
        assert_eq!(t.register(7, BUF, 0x1000), id);
        assert_eq!(t.register(7, BUF, 0), 0);
        // Two references: the first release keeps the id.
        t.retain(7, id);
        assert!(!t.release(7, id));
        assert_eq!(t.lookup(7, id, BUF), Some(0x1000));
        assert!(t.release(7, id));
        assert_eq!(t.lookup(7, id, BUF), None);
        assert!(!t.has_host(7, BUF, 0x1000));
        assert!(!t.release(7, id), "a released id stays released");
        assert!(t.is_empty());
    }

    #[test]
    fn cleanup_frees_exactly_one_owners_objects_with_their_references() {
        let mut t = HandleTable::new();
        let a1 = t.register(1, BUF, 0x1000);
        let a2 = t.register(1, CTX, 0x2000);
        let b = t.register(2, BUF, 0x3000);
        t.retain(1, a1);
        t.retain(1, a1);
        let a3 = t.register(1, BUF, 0x4000);
        let freed = t.drain_owner(1);
        // Later kinds first, newest first in a kind: what lives in a
        // context goes before it.
        assert_eq!(
            freed,
            vec![(BUF, 0x4000, 1), (BUF, 0x1000, 3), (CTX, 0x2000, 1)]
        );
        assert_eq!(t.lookup(1, a3, BUF), None);
        assert_eq!(t.lookup(1, a1, BUF), None);
        assert_eq!(t.lookup(1, a2, CTX), None);
        assert_eq!(t.lookup(2, b, BUF), Some(0x3000), "another owner's object");
        assert_eq!(t.len(), 1);
        assert!(t.drain_owner(1).is_empty());
    }

    /// A host object that two processes receive (a device) has an id in
    /// each; one process's exit leaves the other's id alone, and neither
    /// process can use the other's ids.
    #[test]
    fn processes_have_their_own_ids_even_for_shared_objects() {
        let mut t = HandleTable::new();
        let a = t.register(1, DEV, 0x5000);
        let b = t.register(2, DEV, 0x5000);
        assert_ne!(a, b);
        assert_eq!(t.lookup(1, a, DEV), Some(0x5000));
        assert_eq!(t.lookup(2, b, DEV), Some(0x5000));
        assert_eq!(t.lookup(2, a, DEV), None, "another process's id");
        assert_eq!(t.lookup_any(1, b), None, "another process's id");
        assert_eq!(t.drain_owner(1), vec![(DEV, 0x5000, 1)]);
        assert_eq!(t.lookup(2, b, DEV), Some(0x5000), "still the other's");
        assert!(t.has_host(2, DEV, 0x5000));
        assert!(!t.has_host(1, DEV, 0x5000));
    }

    #[test]
    fn guest_chosen_ids_bind_once_with_the_guest_tag() {
        let mut t = HandleTable::new();
        let id = GUEST_ID_TAG | 5;
        t.bind(1, id, BUF, 0x1000).unwrap();
        assert_eq!(t.lookup(1, id, BUF), Some(0x1000));
        // An id that is already bound, or lacks the guest tag, is refused.
        assert!(t.bind(1, id, BUF, 0x2000).is_err());
        assert!(t.bind(1, WORKER_ID_TAG | 6, BUF, 0x2000).is_err());
        assert!(t.bind(1, 6, BUF, 0x2000).is_err());
        assert_eq!(
            t.lookup(1, id, BUF),
            Some(0x1000),
            "the first binding stands"
        );
        // Another process chooses its ids from its own counter: the same
        // value is its own.
        t.bind(2, id, BUF, 0x4000).unwrap();
        assert_eq!(t.lookup(2, id, BUF), Some(0x4000));
        assert_eq!(t.lookup(1, id, BUF), Some(0x1000));
        // A NULL result binds nothing.
        t.bind(1, GUEST_ID_TAG | 7, BUF, 0).unwrap();
        assert_eq!(t.lookup(1, GUEST_ID_TAG | 7, BUF), None);
        // Released, the id may be chosen again.
        assert!(t.release(1, id));
        t.bind(1, id, BUF, 0x3000).unwrap();
        assert_eq!(t.lookup(1, id, BUF), Some(0x3000));
    }

    /// The case the process-wide id counter fixed: a new connection of a
    /// process (a thread that took over a released channel) chooses ids
    /// while ids chosen over the old channel are still bound. Ids from one
    /// counter never collide; ids restarted at 1 would be refused.
    #[test]
    fn ids_chosen_over_a_channel_given_back_stay_bound_and_distinct() {
        let mut t = HandleTable::new();
        let first: Vec<u64> = (1..=3).map(|n| GUEST_ID_TAG | n).collect();
        for (i, id) in first.iter().enumerate() {
            t.bind(9, *id, BUF, 0x1000 + i as u64 * 8).unwrap();
        }
        // A counter restarted for the new channel repeats the ids: refused.
        assert!(t.bind(9, GUEST_ID_TAG | 1, BUF, 0x9000).is_err());
        // The process-wide counter goes on: accepted, and the old objects
        // still translate.
        for n in 4..=6u64 {
            t.bind(9, GUEST_ID_TAG | n, BUF, 0x2000 + n * 8).unwrap();
        }
        for (i, id) in first.iter().enumerate() {
            assert_eq!(t.lookup(9, *id, BUF), Some(0x1000 + i as u64 * 8));
        }
        assert_eq!(t.drain_owner(9).len(), 6);
    }
}
