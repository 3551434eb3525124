//! The bridge's counters ([`BridgeStats`]), copied out of the two
//! directions so that reading them never waits.

use std::sync::atomic::Ordering;

use crate::ring::KernelReport;

use super::receive::ReceiveState;
use super::send::H2kProducer;
use super::{Bridge, BridgeState};

/// Counters of a bridge.
///
/// ```
/// use ringbridge::{Backend, Bridge};
/// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
/// bridge.send_batch(&[b"a", b"b"])?;
/// bridge.recv()?;
/// let stats = bridge.stats();
/// assert_eq!((stats.sent, stats.received, stats.in_flight), (2, 1, 1));
/// assert_eq!((stats.no_reply, stats.events), (0, 0));
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BridgeStats {
    /// Requests published to H2K.
    pub sent: u64,
    /// Replies (results and error replies) taken from K2H and received:
    /// routed to their round trip, or handed out by a receive call. A reply
    /// to a plain send that a round trip read and set aside for the
    /// receive calls counts once it is handed out.
    pub received: u64,
    /// Requests the kernel's handler answered with nothing: the
    /// [`KIND_NO_REPLY`](crate::layout::KIND_NO_REPLY) marks the receive
    /// calls consumed silently.
    pub no_reply: u64,
    /// Events (messages the kernel sent on its own,
    /// [`KIND_EVENT`](crate::layout::KIND_EVENT)) taken from K2H, whether already returned or still set aside by a
    /// [`round_trip`](Bridge::round_trip). Events answer no request: they
    /// do not change `in_flight`.
    pub events: u64,
    /// Requests whose answer is still to be received:
    /// `sent - received - no_reply`.
    pub in_flight: u64,
    /// What the kernel last reported (counters as of its last heartbeat).
    pub kernel: KernelReport,
    /// Calls and log lines from the kernel ([`crate::calls`]); zeros
    /// without a call ring.
    pub calls: crate::calls::CallStats,
}

impl Bridge {
    /// The bridge's counters.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// assert_eq!(bridge.stats().sent, 0);
    /// bridge.round_trip(b"x")?;
    /// let stats = bridge.stats();
    /// assert_eq!((stats.sent, stats.received, stats.in_flight), (1, 1, 0));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    ///
    /// Never waits: the counters are copies the sending and receiving calls
    /// update, so a monitoring thread can read them while another thread
    /// blocks in [`recv`](Self::recv). Read while messages move, `sent` and
    /// `received` may be from moments a few nanoseconds apart.
    pub fn stats(&self) -> BridgeStats {
        // Independent copies: a reply can be counted a moment before
        // the sender counts its request, hence the saturating difference.
        let sent = self.state.sent.load(Ordering::Relaxed);
        let received = self.state.received.load(Ordering::Relaxed);
        let no_reply = self.state.no_reply.load(Ordering::Relaxed);
        BridgeStats {
            sent,
            received,
            no_reply,
            events: self.state.events.load(Ordering::Relaxed),
            in_flight: sent.saturating_sub(received + no_reply),
            kernel: self.state.control.report(),
            calls: self
                .state
                .calls
                .as_ref()
                .map(|c| c.stats())
                .unwrap_or_default(),
        }
    }
}

impl BridgeState {
    /// Copies the H2K direction's published count for [`Bridge::stats`].
    /// Called after every publish, so it also wakes a parked serve thread.
    pub(super) fn count_sent(&self, tx: &H2kProducer) {
        self.record_sent(tx);
        self.doorbell.wake_kernel();
    }

    /// [`count_sent`](Self::count_sent) without the wake: for a sender
    /// that wakes the serve thread once it has let go of H2K (a futex wake
    /// under the lock would keep the other senders out for its length).
    pub(super) fn record_sent(&self, tx: &H2kProducer) {
        // Relaxed: statistics.
        self.sent.store(tx.published(), Ordering::Relaxed);
    }

    /// Copies the K2H direction's counts for [`Bridge::stats`].
    pub(super) fn count_received(&self, rx: &ReceiveState) {
        // Relaxed: statistics (see the fields).
        self.received.store(rx.replies(), Ordering::Relaxed);
        self.no_reply.store(rx.no_reply, Ordering::Relaxed);
        self.events.store(rx.events, Ordering::Relaxed);
    }
}
