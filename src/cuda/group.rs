//! One allocation and one launch serving a striped group of ring pairs.
//!
//! A striped group on CUDA is `N` regions in one pinned, device-mapped
//! allocation, `stripe_stride` bytes apart, served by one kernel launched
//! with `N` blocks: block `b` serves region `b` (`rb_select_stripe` in
//! `kernels/ringbridge.cuh`). Everything is allocated and loaded before the
//! kernel starts, and freed only after it finished: a page-locked
//! allocation or free waits for the device's running work (CUDA's implicit
//! synchronization), so pinning a second region while a persistent kernel
//! serves the first would wait forever ([`Error::DeviceBusy`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::CudaKernel;
use crate::backend::{Engine, SharedMemory};
use crate::error::{Error, Result};
use crate::layout::{ControlBlock, STATUS_FAILED, STATUS_STOPPED};
use crate::word_of;

/// How long dropping a group waits for its kernel to return after every
/// block stopped (the grid ends microseconds after its last block).
const DRAIN: Duration = Duration::from_secs(1);

/// The kernel and the memory of a striped group, dropped in that order (the
/// field order): the kernel is stopped, or leaked with its context marked,
/// before the memory is freed or, after such a leak, leaked too.
pub(crate) struct CudaGroup {
    kernel: CudaKernel,
    mem: Arc<dyn SharedMemory>,
}

impl CudaGroup {
    /// Joins a kernel to the memory it serves.
    pub(crate) fn new(kernel: CudaKernel, mem: Arc<dyn SharedMemory>) -> Self {
        Self { kernel, mem }
    }
}

// SAFETY: every word is the mapped memory's, forwarded unchanged.
unsafe impl SharedMemory for CudaGroup {
    fn words(&self) -> &[AtomicU64] {
        self.mem.words()
    }

    fn device_address(&self) -> u64 {
        self.mem.device_address()
    }
}

impl Drop for CudaGroup {
    fn drop(&mut self) {
        // The last stripe went away, so every block was asked to stop and
        // was seen stopped (or its bridge leaked its reference and this
        // never runs). Give the grid its moment to end; a kernel still
        // running after that is leaked by `CudaKernel`'s own drop, which
        // marks the context so that the memory is leaked, not freed.
        let _ = self.kernel.wait_finished(DRAIN);
    }
}

/// One stripe's view of the group's kernel: finished when its own block
/// stopped, faulted when the kernel did.
pub(crate) struct StripeEngine {
    group: Arc<CudaGroup>,
    /// Word index, in the group, of this stripe's control block `status`.
    status: usize,
}

impl StripeEngine {
    /// The engine of the stripe whose control block starts `offset` bytes
    /// into the group.
    pub(crate) fn new(group: &Arc<CudaGroup>, offset: usize) -> Result<Self> {
        let status = offset / 8 + word_of!(ControlBlock, status);
        if offset % 8 != 0 || status >= group.words().len() {
            return Err(Error::InvalidArgument(format!(
                "no control block at byte {offset} of the group"
            )));
        }
        Ok(Self {
            group: Arc::clone(group),
            status,
        })
    }
}

impl Engine for StripeEngine {
    /// The kernel's fault or end first; else whether this stripe's block
    /// wrote its final status.
    fn poll(&self) -> Result<bool> {
        if self.group.kernel.poll()? {
            return Ok(true);
        }
        // ACQUIRE: pairs with the block's release store of its final
        // status, so what it published before (replies, error code and
        // detail) is visible to whoever acts on the answer. The memory is
        // freed only after the whole kernel ended (`CudaGroup`), never on
        // this answer alone.
        let status = self.group.words()[self.status].load(Ordering::Acquire);
        Ok(status == STATUS_STOPPED || status == STATUS_FAILED)
    }
}
