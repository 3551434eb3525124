//! Event subscriptions: the messages a kernel sends on its own, as a
//! stream beside the calls ([`Events`]).

use std::time::Duration;

use crate::error::Result;
use crate::message::MessageEnvelope;

use super::Bridge;
use super::router::Wake;
use super::wait::Deadline;

/// A subscription to a bridge's events ([`Bridge::events`]).
///
/// While any subscription is alive, every event the kernel sends goes to
/// the subscriptions (each event to one of them, oldest first), and the
/// receive calls never return events. When the last one is dropped, events
/// not yet taken are dropped with it and later ones go to the receive calls
/// again.
///
/// ```
/// use ringbridge::{Backend, Bridge};
/// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
/// let events = bridge.events();
/// assert!(matches!(events.try_recv(), Err(ringbridge::Error::Empty)));
/// // The echo kernel sends no events; a user's kernel would (rb_send_event).
/// assert_eq!(bridge.round_trip(b"a")?.payload, b"b");
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub struct Events<'a> {
    bridge: &'a Bridge,
}

impl Bridge {
    /// Subscribes to the kernel's events: see [`Events`].
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// let events = bridge.events();
    /// drop(events); // events go to the receive calls again
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn events(&self) -> Events<'_> {
        self.state.router.subscribe();
        Events { bridge: self }
    }

    /// The next event for the subscribers, waiting until `deadline`.
    pub(super) fn next_event(&self, deadline: Deadline) -> Result<MessageEnvelope> {
        let router = &self.state.router;
        self.wait_routed(
            deadline,
            || router.take_event(Some(Wake::current_thread())),
            || router.has_event(),
        )
    }
}

impl Events<'_> {
    /// The next event, waiting for it.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// use std::time::Duration;
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// let events = bridge.events();
    /// bridge.shutdown()?;
    /// assert!(matches!(events.recv(), Err(Error::ShutDown)));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv(&self) -> Result<MessageEnvelope> {
        self.bridge.next_event(Deadline::Never)
    }

    /// The next event if one is there: [`Error::Empty`](crate::Error::Empty) if not.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// assert!(matches!(bridge.events().try_recv(), Err(Error::Empty)));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn try_recv(&self) -> Result<MessageEnvelope> {
        self.bridge.next_event(Deadline::Now)
    }

    /// The next event, waiting at most `timeout`.
    ///
    /// ```
    /// use ringbridge::{Backend, Bridge, Error};
    /// use std::time::Duration;
    /// let bridge = Bridge::builder().backend(Backend::Fallback).launch()?;
    /// let err = bridge.events().recv_timeout(Duration::from_millis(1)).unwrap_err();
    /// assert!(matches!(err, Error::Timeout { .. }));
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<MessageEnvelope> {
        self.bridge.next_event(Deadline::after(timeout))
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        self.bridge.state.router.unsubscribe();
    }
}

impl std::fmt::Debug for Events<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}
