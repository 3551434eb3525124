//! A handler written in Rust, run by the fallback's callback serve loop.

use std::sync::Arc;

use crate::error::Result;
use crate::layout::MessageHeader;

/// The signature of a Rust handler: request header, request payload, reply
/// buffer (the slot's payload capacity). `Ok(n)` replies with the first `n`
/// bytes of the buffer; `Err(code)` sends an error reply carrying `code`
/// (0 is sent as 1).
///
/// ```
/// use ringbridge::fallback::RustHandlerFn;
/// use ringbridge::MessageHeader;
/// let upper: Box<RustHandlerFn> = Box::new(|_hdr, input, out| {
///     if input.len() > out.len() {
///         return Err(7);
///     }
///     out[..input.len()].copy_from_slice(&input.to_ascii_uppercase());
///     Ok(input.len())
/// });
/// let mut out = [0u8; 8];
/// assert_eq!(upper(&MessageHeader::default(), b"abc", &mut out), Ok(3));
/// assert_eq!(&out[..3], b"ABC");
/// assert_eq!(upper(&MessageHeader::default(), b"too long!", &mut out), Err(7));
/// ```
pub type RustHandlerFn =
    dyn Fn(&MessageHeader, &[u8], &mut [u8]) -> Result<usize, u32> + Send + Sync;

/// A handler written in Rust, run by the fallback's serve loop in place of a
/// kernel's handler.
///
/// ```
/// use ringbridge::fallback::RustHandler;
/// use ringbridge::{Backend, Bridge, Kernel};
/// let reverse = RustHandler::new(|_hdr, input, out| {
///     for (o, i) in out.iter_mut().zip(input.iter().rev()) { *o = *i; }
///     Ok(input.len())
/// });
/// let bridge = Bridge::builder()
///     .backend(Backend::Fallback)
///     .kernel(Kernel::RustHandler(reverse))
///     .launch()?;
/// assert_eq!(bridge.round_trip(b"stressed")?.payload, b"desserts");
/// bridge.shutdown()?;
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone)]
pub struct RustHandler(pub(crate) Arc<RustHandlerFn>);

impl RustHandler {
    /// Wraps a closure.
    ///
    /// An `Err(code)` from the closure becomes an error reply carrying
    /// `code` in its `flags`:
    ///
    /// ```
    /// use ringbridge::fallback::RustHandler;
    /// use ringbridge::{Backend, Bridge, Kernel};
    /// let handler = RustHandler::new(|hdr, input, out| {
    ///     if hdr.flags == 1 {
    ///         return Err(42);
    ///     }
    ///     out[..input.len()].copy_from_slice(input);
    ///     Ok(input.len())
    /// });
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
    ///     .kernel(Kernel::RustHandler(handler))
    ///     .launch()?;
    /// assert_eq!(bridge.round_trip(b"same")?.payload, b"same");
    /// bridge.send_with_flags(1, b"fail")?;
    /// let reply = bridge.recv()?;
    /// assert!(reply.is_error());
    /// assert_eq!(reply.header.flags, 42);
    /// bridge.shutdown()?;
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn new(
        f: impl Fn(&MessageHeader, &[u8], &mut [u8]) -> Result<usize, u32> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for RustHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RustHandler(..)")
    }
}
