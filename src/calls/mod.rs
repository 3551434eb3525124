//! Calls from the kernel to the host: services a kernel thread calls and
//! waits for, and the kernel's log lines.
//!
//! **Contract.** A bridge whose kernel may call the host has a *call ring*
//! beside H2K and K2H, in the same mapped region ([`CallRing`] sizes it). A
//! kernel thread (`rb_call`, `rb_log` in `kernels/ringbridge.cuh`) claims
//! a slot, writes its request and waits for the answer; a thread the bridge
//! owns serves the slots strictly in order, runs the service registered
//! under the call's id ([`BridgeBuilder::service`]) and writes the answer
//! back. That thread never waits for H2K, K2H or the user's threads, so a
//! call is answered while the user's own thread is blocked in `send`,
//! `recv` or `round_trip`, and nothing the user does is needed to pump it.
//! Every call ends with an answer: the service's, or an error status when
//! no service has the id, the service fails or panics, it runs past the
//! bridge's [service timeout](crate::BridgeBuilder::service_timeout) (the bridge
//! answers for it and serves on with a fresh thread), or the bridge is
//! shutting down. Log lines go to the [`log`] facade (target
//! `ringbridge::kernel`) as they are read. Why no wait can deadlock:
//! docs/architecture.md, "Calls from the kernel".
//!
//! ```
//! use ringbridge::calls::{CallRing, ServiceError};
//! use ringbridge::{Backend, Bridge};
//! // A service answers request bytes with answer bytes, or an error the
//! // calling kernel thread gets as a status.
//! let bridge = Bridge::builder()
//!     .backend(Backend::Fallback)
//!     .call_ring(CallRing::new(16, 256)?)
//!     .service(7, |request: &[u8]| Ok(request.iter().rev().copied().collect()))
//!     .typed_service(8, |x: u64| -> Result<u64, ServiceError> { Ok(x * 2) })
//!     .launch()?;
//! assert_eq!(bridge.stats().calls.served, 0); // the echo kernel never calls
//! # Ok::<(), ringbridge::Error>(())
//! ```
//!
//! [`BridgeBuilder::service`]: crate::BridgeBuilder::service
//! [`log`]: https://docs.rs/log

mod log_line;
pub(crate) mod ring;
pub(crate) mod server;
mod service;

pub use service::{CallStats, ServiceError};
pub(crate) use service::{ServiceFn, Services};

use crate::error::{Error, Result};
use crate::layout::{CALL_HEADER_SIZE, MAX_SLOT_SIZE, MIN_SLOT_SIZE};

/// The shape of a bridge's call ring: how many calls may wait at once and
/// how large a request or answer may be.
///
/// Calls beyond `slots` wait in the kernel for a slot (they never fail for
/// lack of one); a request or answer holds at most `slot_size - 32` bytes.
///
/// ```
/// use ringbridge::calls::CallRing;
/// let ring = CallRing::new(64, 256)?;
/// assert_eq!(ring.max_payload(), 224);
/// assert_eq!(CallRing::default(), ring);
/// assert!(CallRing::new(3, 256).is_err()); // not a power of two
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRing {
    slots: usize,
    slot_size: usize,
}

/// Most slots a call ring may have.
pub const MAX_CALL_SLOTS: usize = 1 << 16;

impl Default for CallRing {
    /// 64 slots of 256 bytes: 224-byte requests and answers, 16 KiB.
    fn default() -> Self {
        Self {
            slots: 64,
            slot_size: 256,
        }
    }
}

impl CallRing {
    /// A call ring of `slots` slots (a power of two, 1 to 65536) of
    /// `slot_size` bytes each (a power of two, 64 bytes to 1 MiB).
    pub fn new(slots: usize, slot_size: usize) -> Result<Self> {
        if !slots.is_power_of_two() || slots > MAX_CALL_SLOTS {
            return Err(Error::InvalidArgument(format!(
                "a call ring of {slots} slots: it needs a power of two from 1 to {MAX_CALL_SLOTS}"
            )));
        }
        if !slot_size.is_power_of_two() || !(MIN_SLOT_SIZE..=MAX_SLOT_SIZE).contains(&slot_size) {
            return Err(Error::InvalidArgument(format!(
                "call slots of {slot_size} bytes: a power of two from {MIN_SLOT_SIZE} to {MAX_SLOT_SIZE} is needed"
            )));
        }
        Ok(Self { slots, slot_size })
    }

    /// Slots of the ring.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Bytes of one slot.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// The largest request or answer: the slot less its 32-byte header.
    pub fn max_payload(&self) -> usize {
        self.slot_size - CALL_HEADER_SIZE
    }
}
