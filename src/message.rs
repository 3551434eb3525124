//! Messages: a fixed [`MessageHeader`] and a payload.

pub use crate::layout::MessageHeader;
use crate::layout::{KIND_ERROR, KIND_REPLY, KIND_REQUEST};

/// A message with its header: the element type of the seed's queue, and what
/// the bridge hands back for a reply.
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
    pub fn is_reply(&self) -> bool {
        self.header.kind == KIND_REPLY
    }

    /// Whether this is a handler's error reply; its code is in `header.flags`.
    pub fn is_error(&self) -> bool {
        self.header.kind == KIND_ERROR
    }
}
