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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
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
/// field order): the kernel is stopped, or abandoned with its context
/// refusing frees, before the memory is freed or, after that, leaked.
///
/// Made before the launch, so that every stripe's view and engine exists
/// before any block runs: nothing that can fail is left between the launch
/// and the bridges that stop it.
pub(crate) struct CudaGroup {
    kernel: OnceLock<CudaKernel>,
    mem: Arc<dyn SharedMemory>,
}

impl CudaGroup {
    /// The group's memory, its kernel not launched yet.
    pub(crate) fn new(mem: Arc<dyn SharedMemory>) -> Self {
        Self {
            kernel: OnceLock::new(),
            mem,
        }
    }

    /// Records the kernel launched over the group's memory (once).
    pub(crate) fn launched(&self, kernel: CudaKernel) {
        let _ = self.kernel.set(kernel);
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
        // running after that is abandoned by `CudaKernel`'s own drop, and
        // its context then leaks the memory rather than free it.
        if let Some(kernel) = self.kernel.get() {
            let _ = kernel.wait_finished(DRAIN);
        }
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
        if !offset.is_multiple_of(8) || status >= group.words().len() {
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
        // Not launched: nothing runs this stripe (only before the launch
        // returned, or after it failed).
        let Some(kernel) = self.group.kernel.get() else {
            return Ok(true);
        };
        if kernel.poll()? {
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
