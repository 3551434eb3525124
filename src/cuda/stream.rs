//! The non-blocking streams persistent kernels run on.

use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, result, sys};

use super::context::bind;
use super::cuda_err;
use super::running::{Scope, while_idle};
use crate::error::Result;
use crate::sync::lock;

/// A `CU_STREAM_NON_BLOCKING` stream: a kernel on it never serialises with
/// the legacy default stream or any other work.
///
/// Created while the device is idle (the driver documents no wait for
/// stream creation, but nothing here depends on that having been measured),
/// or taken from a [`StreamPool`] filled before any launch, to which it
/// returns when dropped. The owner must not drop it while a kernel on it
/// runs: a kernel left running keeps its stream for good (`mem::forget`).
pub(crate) struct Stream {
    ctx: Arc<CudaContext>,
    raw: sys::CUstream,
    /// The pool it came from and returns to; `None`: destroyed on drop.
    home: Option<Arc<StreamPool>>,
}

// SAFETY: the handle is only passed to driver calls, which are thread safe,
// after making its context current; it is destroyed or handed back only in
// `drop`, which has exclusive access.
unsafe impl Send for Stream {}
// SAFETY: see `Send`: `&self` only reads the handle.
unsafe impl Sync for Stream {}

/// Creates a raw non-blocking stream in `ctx` (made current here).
fn create(ctx: &CudaContext) -> Result<sys::CUstream> {
    bind(ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
    while_idle(Scope::Device(ctx.ordinal()), || {
        result::stream::create(result::stream::StreamKind::NonBlocking)
            .map_err(cuda_err("cuStreamCreate"))
    })?
}

impl Stream {
    /// A new stream of its own on `ctx`.
    ///
    /// # Errors
    /// [`crate::Error::DeviceBusy`] while a kernel of ours may run on
    /// `ctx`'s device; [`crate::Error::Cuda`] when the driver fails.
    pub(crate) fn new(ctx: &Arc<CudaContext>) -> Result<Self> {
        Ok(Self {
            ctx: Arc::clone(ctx),
            raw: create(ctx)?,
            home: None,
        })
    }

    /// The driver's handle.
    pub(crate) fn raw(&self) -> sys::CUstream {
        self.raw
    }

    /// Waits for the work queued on this stream (never for other streams').
    pub(crate) fn synchronize(&self) -> Result<()> {
        bind(&self.ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        // SAFETY: the stream belongs to the now-current context and lives
        // as long as `self`.
        unsafe { result::stream::synchronize(self.raw) }.map_err(cuda_err("cuStreamSynchronize"))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(pool) = self.home.take() {
            lock(&pool.free).push(self.raw);
            return;
        }
        if bind(&self.ctx).is_ok() {
            // SAFETY: created in `new`, destroyed once; the owner dropped the
            // kernel that ran on it first.
            let _ = unsafe { result::stream::destroy(self.raw) };
        }
    }
}

/// Streams created before any launch, lent out as [`Stream`]s.
pub(crate) struct StreamPool {
    ctx: Arc<CudaContext>,
    free: Mutex<Vec<sys::CUstream>>,
}

// SAFETY: as for `Stream`; the raw handles are guarded by the mutex.
unsafe impl Send for StreamPool {}
// SAFETY: as for `Send`.
unsafe impl Sync for StreamPool {}

impl StreamPool {
    /// `count` new streams on `ctx`.
    ///
    /// # Errors
    /// As [`Stream::new`].
    pub(crate) fn new(ctx: &Arc<CudaContext>, count: usize) -> Result<Arc<Self>> {
        let pool = Arc::new(Self {
            ctx: Arc::clone(ctx),
            free: Mutex::new(Vec::with_capacity(count)),
        });
        for _ in 0..count {
            // Pushed one by one, so the pool's `Drop` destroys what exists
            // if a later creation fails.
            let raw = create(ctx)?;
            lock(&pool.free).push(raw);
        }
        Ok(pool)
    }

    /// Lends a stream, or `None` when every one is in use.
    pub(crate) fn take(self: &Arc<Self>) -> Option<Stream> {
        let raw = lock(&self.free).pop()?;
        Some(Stream {
            ctx: Arc::clone(&self.ctx),
            raw,
            home: Some(Arc::clone(self)),
        })
    }

    /// Streams not lent out.
    pub(crate) fn available(&self) -> usize {
        lock(&self.free).len()
    }
}

impl Drop for StreamPool {
    fn drop(&mut self) {
        // Every lent stream holds the pool, so all are back here.
        if bind(&self.ctx).is_ok() {
            for raw in lock(&self.free).drain(..) {
                // SAFETY: created by the pool, destroyed once; no kernel runs
                // on a stream that came back.
                let _ = unsafe { result::stream::destroy(raw) };
            }
        }
    }
}
