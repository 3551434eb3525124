//! Messages: a fixed [`MessageHeader`] and a payload.

pub use crate::layout::MessageHeader;
use crate::layout::{KIND_ERROR, KIND_EVENT, KIND_NO_REPLY, KIND_REPLY, KIND_REQUEST};

/// A message with its header: the element type of the seed's queue, and what
/// the bridge hands back for a reply or an event (a message the kernel sent
/// on its own, [`is_event`](Self::is_event)).
///
/// ```
/// use ringbridge::{MessageEnvelope, SpscQueue};
/// let (mut tx, mut rx) = SpscQueue::<MessageEnvelope>::new(8).split();
/// tx.try_enqueue(MessageEnvelope::request(1, b"hello".to_vec())).unwrap();
/// let m = rx.try_dequeue().unwrap();
/// assert_eq!(m.header.seq, 1);
/// assert_eq!(m.payload, b"hello");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageEnvelope {
    /// The fixed header (the same bytes as a ring slot's header).
    pub header: MessageHeader,
    /// The payload; `header.len` is its length.
    pub payload: Vec<u8>,
}

impl MessageEnvelope {
    /// A request with sequence number `seq`.
    ///
    /// # Panics
    /// If `payload` is longer than `u32::MAX` bytes.
    ///
    /// ```
    /// use ringbridge::MessageEnvelope;
    /// use ringbridge::layout::KIND_REQUEST;
    /// let m = MessageEnvelope::request(9, vec![1, 2, 3]);
    /// assert_eq!((m.header.seq, m.header.kind, m.header.len), (9, KIND_REQUEST, 3));
    /// assert!(!m.is_reply() && !m.is_error());
    /// ```
    pub fn request(seq: u64, payload: Vec<u8>) -> Self {
        let len = u32::try_from(payload.len()).expect("payload longer than u32::MAX bytes");
        Self {
            header: MessageHeader {
                seq,
                kind: KIND_REQUEST,
                len,
                ..MessageHeader::default()
            },
            payload,
        }
    }

    /// Whether this is a reply (a result, not an error).
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// let reply = bridge.round_trip(b"hi")?;
    /// assert!(reply.is_reply() && !reply.is_error());
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn is_reply(&self) -> bool {
        self.header.kind == KIND_REPLY
    }

    /// Whether this is a handler's error reply; its code is in `header.flags`.
    ///
    /// The built-in `ScaleF32` kernel answers a payload that is not whole
    /// `f32`s with error code 1:
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Kernel};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
    ///     .kernel(Kernel::ScaleF32 { factor: 2.0 })
    ///     .launch()?;
    /// let reply = bridge.round_trip(&[1, 2, 3])?;
    /// assert!(reply.is_error() && !reply.is_reply());
    /// assert_eq!(reply.header.flags, 1);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn is_error(&self) -> bool {
        self.header.kind == KIND_ERROR
    }

    /// Whether this is a no-reply answer: the handler answered the request
    /// (`header.correlation`) with nothing (`RB_NO_REPLY`). Only a round
    /// trip returns these ([`Bridge::round_trip`](crate::Bridge::round_trip));
    /// the plain receive calls consume them silently.
    ///
    /// ```
    /// use ringbridge::MessageEnvelope;
    /// use ringbridge::layout::KIND_NO_REPLY;
    /// use ringbridge::message::MessageHeader;
    /// let header = MessageHeader { correlation: 5, kind: KIND_NO_REPLY, ..Default::default() };
    /// let answer = MessageEnvelope { header, payload: vec![] };
    /// assert!(answer.is_no_reply() && !answer.is_reply() && !answer.is_error());
    /// ```
    pub fn is_no_reply(&self) -> bool {
        self.header.kind == KIND_NO_REPLY
    }

    /// Whether this is an event: a message the kernel sent on its own
    /// ([`KIND_EVENT`]), not a reply to a request. Its `header.correlation`
    /// is the kernel's own event number ([`event_seq`](Self::event_seq)),
    /// its `header.seq` its position in K2H, its `header.flags` whatever the
    /// handler set.
    ///
    /// ```
    /// use ringbridge::{MessageEnvelope, MessageHeader};
    /// use ringbridge::layout::KIND_EVENT;
    /// let event = MessageEnvelope {
    ///     header: MessageHeader { seq: 4, correlation: 1, kind: KIND_EVENT, len: 2, ..Default::default() },
    ///     payload: b"hi".to_vec(),
    /// };
    /// assert!(event.is_event() && !event.is_reply() && !event.is_error());
    /// assert!(!MessageEnvelope::request(0, vec![]).is_event());
    /// ```
    pub fn is_event(&self) -> bool {
        self.header.kind == KIND_EVENT
    }

    /// The kernel's own number of an event (0 for its first, then 1, 2, ...
    /// per bridge): its `header.correlation`. `None` for anything that is not
    /// an event (a reply's correlation is its request's `seq`).
    ///
    /// ```
    /// use ringbridge::{MessageEnvelope, MessageHeader};
    /// use ringbridge::layout::{KIND_EVENT, KIND_REPLY};
    /// let header = MessageHeader { seq: 9, correlation: 3, kind: KIND_EVENT, ..Default::default() };
    /// let event = MessageEnvelope { header, payload: vec![] };
    /// assert_eq!(event.event_seq(), Some(3));
    /// let reply = MessageEnvelope { header: MessageHeader { kind: KIND_REPLY, ..header }, payload: vec![] };
    /// assert_eq!(reply.event_seq(), None);
    /// ```
    pub fn event_seq(&self) -> Option<u64> {
        self.is_event().then_some(self.header.correlation)
    }
}
