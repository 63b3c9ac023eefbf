//! Published messages, stored once and referenced by index from every copy
//! in flight, with a reference count: a fan-out to N subscribers stores one
//! message, and a slot is reused once its last copy is delivered or dropped.

use crate::message::Message;

/// A slab of published messages with a reference count per slot.
#[derive(Default)]
pub(super) struct MsgStore {
    slots: Vec<(Option<Message>, u32)>,
    free: Vec<u32>,
    /// Payload bytes of the messages held.
    bytes: u64,
}

impl MsgStore {
    /// Stores `msg` with one reference; returns its slot.
    #[inline]
    pub(super) fn insert(&mut self, msg: Message) -> u32 {
        self.bytes += msg.payload.heap_bytes();
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = (Some(msg), 1);
                i
            }
            None => {
                self.slots.push((Some(msg), 1));
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Payload bytes of the messages held (published, some copy still in
    /// flight).
    #[inline]
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many slots hold a message (tests: nothing leaks).
    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.0.is_some()).count()
    }

    /// The message in a live slot.
    #[inline]
    pub(super) fn get(&self, slot: u32) -> &Message {
        self.slots[slot as usize]
            .0
            .as_ref()
            .expect("live slot holds a message")
    }

    /// One more copy refers to `slot`.
    #[inline]
    pub(super) fn add_ref(&mut self, slot: u32) {
        self.slots[slot as usize].1 += 1;
    }

    /// Drops one reference; the last one frees the slot.
    #[inline]
    pub(super) fn release(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.1 -= 1;
        if s.1 == 0 {
            if let Some(m) = s.0.take() {
                self.bytes -= m.payload.heap_bytes();
            }
            self.free.push(slot);
        }
    }

    /// Drops one reference and returns the message: moved out if this was
    /// the last reference, else a cheap clone (payload shared).
    #[inline]
    pub(super) fn take(&mut self, slot: u32) -> Message {
        let s = &mut self.slots[slot as usize];
        s.1 -= 1;
        if s.1 == 0 {
            self.free.push(slot);
            let m = s.0.take().expect("live slot holds a message");
            self.bytes -= m.payload.heap_bytes();
            m
        } else {
            s.0.as_ref().expect("live slot holds a message").clone()
        }
    }
}
