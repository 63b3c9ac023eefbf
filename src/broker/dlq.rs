//! Dead-letter queues: messages the broker (or a publisher) gave up on,
//! kept per channel so a study can inspect them and publish them again.

use std::collections::VecDeque;

use crate::message::{AgentId, Message};
use crate::time::SimTime;
use crate::trace::DeadCause;

/// One message in a dead-letter queue.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// The message as published (its payload shared, not copied).
    pub message: Message,
    /// The subscriber the broker failed to deliver it to, or `None` when
    /// the publish itself was never acknowledged by the broker.
    pub recipient: Option<AgentId>,
    /// Why it was given up on.
    pub cause: DeadCause,
    /// Retransmissions made before giving up.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub time: SimTime,
}

/// The dead-letter queues of a run, one per channel, each bounded: a full
/// queue drops its oldest letter to take a new one.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeadLetters {
    queues: Vec<VecDeque<DeadLetter>>,
}

impl DeadLetters {
    /// Adds a letter to channel `ch`'s queue (at most `capacity` kept);
    /// true if an older letter was pushed out.
    pub(crate) fn push(&mut self, ch: usize, letter: DeadLetter, capacity: usize) -> bool {
        if self.queues.len() <= ch {
            self.queues.resize_with(ch + 1, VecDeque::new);
        }
        let q = &mut self.queues[ch];
        q.push_back(letter);
        if q.len() > capacity {
            q.pop_front();
            return true;
        }
        false
    }

    /// Channel `ch`'s letters, oldest first.
    pub(crate) fn get(&self, ch: usize) -> impl ExactSizeIterator<Item = &DeadLetter> {
        self.queues.get(ch).map(VecDeque::iter).unwrap_or_default()
    }

    /// Takes channel `ch`'s letters, oldest first, emptying its queue.
    pub(crate) fn take(&mut self, ch: usize) -> Vec<DeadLetter> {
        self.queues
            .get_mut(ch)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ChannelId, MessageKind, MsgId, Payload, Recipient};

    fn letter(id: u64) -> DeadLetter {
        DeadLetter {
            message: Message {
                id: MsgId(id),
                env: 0,
                channel: ChannelId(1),
                sender: AgentId(0),
                recipient: Recipient::Broadcast,
                kind: MessageKind::INFO,
                sent: SimTime::ZERO,
                payload: Payload::Empty,
                correlation: None,
            },
            recipient: None,
            cause: DeadCause::Retries,
            attempts: 3,
            time: SimTime::ZERO,
        }
    }

    #[test]
    fn bounded_oldest_out_and_take_empties() {
        let mut d = DeadLetters::default();
        assert_eq!(d.get(1).len(), 0);
        assert!(!d.push(1, letter(0), 2));
        assert!(!d.push(1, letter(1), 2));
        assert!(d.push(1, letter(2), 2));
        let ids: Vec<u64> = d.get(1).map(|l| l.message.id.0).collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(d.take(1).len(), 2);
        assert_eq!(d.get(1).len(), 0);
        assert!(d.take(7).is_empty());
    }
}
