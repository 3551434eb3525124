//! What runs on a bridge's device side ([`Kernel`]): below the bridge and
//! the backends, which both read it.

use std::sync::Arc;

use crate::fallback::RustHandler;
use crate::user_kernel::UserKernel;

/// What runs on the device side of a bridge.
///
/// ```
/// use ringbridge::{Backend, Bridge, Kernel};
/// use ringbridge::fallback::RustHandler;
/// let reverse = RustHandler::new(|_hdr, input, out| {
///     for (o, i) in out.iter_mut().zip(input.iter().rev()) { *o = *i; }
///     Ok(input.len())
/// });
/// let bridge = Bridge::builder()
///     .backend(Backend::Fallback)
///     .kernel(Kernel::RustHandler(reverse))
///     .launch()?;
/// assert_eq!(bridge.round_trip(b"abc")?.payload, b"cba");
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub enum Kernel {
    /// Replies with the request's payload, every byte plus one (wrapping),
    /// its flags echoed and `correlation` set to the request's `seq`.
    #[default]
    Echo,
    /// Treats the payload as `f32`s and replies with each one times `factor`.
    /// A payload whose length is not a multiple of 4 gets an error reply
    /// with code 1.
    ScaleF32 {
        /// The factor.
        factor: f32,
    },
    /// A user's kernel image (cubin, fatbin or PTX) whose `entry` includes
    /// `kernels/ringbridge.cuh` and serves the rings (CUDA backend only).
    /// The entry takes `(rb_control*, rb_ring* h2k, rb_ring* k2h)`.
    Custom {
        /// The image's bytes.
        image: Arc<[u8]>,
        /// The entry point's name.
        entry: String,
        /// Blocks to launch (the built-in serve loop uses one).
        grid: u32,
        /// Threads per block.
        block: u32,
    },
    /// A Rust handler run by the fallback's serve loop (fallback backend only).
    RustHandler(RustHandler),
    /// A user's C++ kernel built by `ringbridge-build` for both backends: on
    /// CUDA from its fatbin (one block per bridge, the builder's block size),
    /// on the host from its host entry. Its handler is built from
    /// [`UserKernel::param_bytes`].
    User(UserKernel),
}

impl Kernel {
    pub(crate) fn needs_cuda(&self) -> bool {
        matches!(self, Kernel::Custom { .. })
    }
    pub(crate) fn needs_fallback(&self) -> bool {
        matches!(self, Kernel::RustHandler(_))
    }
}
