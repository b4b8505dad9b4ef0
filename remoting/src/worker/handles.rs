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

#[cfg(test)]
mod tests {
    use super::*;

    const BUF: u16 = 4;
    const CTX: u16 = 2;

    #[test]
    fn ids_translate_only_for_their_type_while_referenced() {
        let mut t = HandleTable::new();
        let id = t.register(BUF, 0x1000, 7);
        assert_eq!(id & ID_TAG_MASK, WORKER_ID_TAG);
        assert_eq!(t.lookup(id, BUF), Some(0x1000));
        assert_eq!(t.lookup(id, CTX), None, "another type");
        assert_eq!(t.lookup(0, BUF), Some(0), "NULL");
        assert_eq!(t.lookup(id ^ 1, BUF), None, "an id never issued");
        // The same host object registered again is the same id.
        assert_eq!(t.register(BUF, 0x1000, 7), id);
        assert_eq!(t.register(BUF, 0, 7), 0);
        // Two references: the first release keeps the id.
        t.retain(id);
        assert!(!t.release(id));
        assert_eq!(t.lookup(id, BUF), Some(0x1000));
        assert!(t.release(id));
        assert_eq!(t.lookup(id, BUF), None);
        assert!(!t.has_host(BUF, 0x1000));
        assert!(!t.release(id), "a released id stays released");
        assert!(t.is_empty());
    }

    #[test]
    fn cleanup_frees_exactly_one_owners_objects_with_their_references() {
        let mut t = HandleTable::new();
        let a1 = t.register(BUF, 0x1000, 1);
        let a2 = t.register(CTX, 0x2000, 1);
        let b = t.register(BUF, 0x3000, 2);
        t.retain(a1);
        t.retain(a1);
        let mut freed = t.drain_owner(1);
        freed.sort();
        assert_eq!(freed, vec![(CTX, 0x2000, 1), (BUF, 0x1000, 3)]);
        assert_eq!(t.lookup(a1, BUF), None);
        assert_eq!(t.lookup(a2, CTX), None);
        assert_eq!(t.lookup(b, BUF), Some(0x3000), "another owner's object");
        assert_eq!(t.len(), 1);
        assert!(t.drain_owner(1).is_empty());
    }

    #[test]
    fn guest_chosen_ids_bind_once_with_the_guest_tag() {
        let mut t = HandleTable::new();
        let id = GUEST_ID_TAG | 5;
        t.bind(id, BUF, 0x1000, 1).unwrap();
        assert_eq!(t.lookup(id, BUF), Some(0x1000));
        // An id that is already bound, or lacks the guest tag, is refused.
        assert!(t.bind(id, BUF, 0x2000, 1).is_err());
        assert!(t.bind(WORKER_ID_TAG | 6, BUF, 0x2000, 1).is_err());
        assert!(t.bind(6, BUF, 0x2000, 1).is_err());
        assert_eq!(t.lookup(id, BUF), Some(0x1000), "the first binding stands");
        // A NULL result binds nothing.
        t.bind(GUEST_ID_TAG | 7, BUF, 0, 1).unwrap();
        assert_eq!(t.lookup(GUEST_ID_TAG | 7, BUF), None);
        // Released, the id may be chosen again.
        assert!(t.release(id));
        t.bind(id, BUF, 0x3000, 1).unwrap();
        assert_eq!(t.lookup(id, BUF), Some(0x3000));
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
            t.bind(*id, BUF, 0x1000 + i as u64 * 8, 9).unwrap();
        }
        // A counter restarted for the new channel repeats the ids: refused.
        assert!(t.bind(GUEST_ID_TAG | 1, BUF, 0x9000, 9).is_err());
        // The process-wide counter goes on: accepted, and the old objects
        // still translate.
        for n in 4..=6u64 {
            t.bind(GUEST_ID_TAG | n, BUF, 0x2000 + n * 8, 9).unwrap();
        }
        for (i, id) in first.iter().enumerate() {
            assert_eq!(t.lookup(*id, BUF), Some(0x1000 + i as u64 * 8));
        }
        assert_eq!(t.drain_owner(9).len(), 6);
    }
}
