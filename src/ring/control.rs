//! The host's view of the control block.

use crate::backend::SharedMemory;
use crate::layout::{
    ControlBlock, ERR_BAD_MAGIC, ERR_HANDLER, ERR_HANDLER_PANICKED, ERR_RING_CORRUPTED,
};
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::word_of;

/// Reads and writes the control block at the start of a region.
#[derive(Clone)]
pub struct Control {
    mem: Arc<dyn SharedMemory>,
}

/// What the kernel reported through the control block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelReport {
    /// `STATUS_*`.
    pub status: u64,
    /// `ERR_*` when failed.
    pub error_code: u64,
    /// The error's detail word.
    pub error_detail: u64,
    /// The heartbeat.
    pub heartbeat: u64,
    /// Requests the kernel consumed (as of its last heartbeat).
    pub consumed: u64,
    /// Replies the kernel published (as of its last heartbeat).
    pub produced: u64,
}

impl Control {
    pub(crate) fn new(mem: Arc<dyn SharedMemory>) -> Self {
        Self { mem }
    }

    fn word(&self, index: usize) -> &AtomicU64 {
        &self.mem.words()[index]
    }

    /// Asks the kernel to stop.
    pub fn request_terminate(&self) {
        // Release: nothing needs ordering before it for correctness (the
        // kernel only stops), but it keeps every message sent before the
        // request visible to a kernel that sees the request.
        self.word(word_of!(ControlBlock, terminate))
            .store(1, Ordering::Release);
    }

    /// Whether the host asked the device half to stop (what the kernel polls).
    pub fn terminate_requested(&self) -> bool {
        // Acquire: pairs with `request_terminate`'s release store.
        self.word(word_of!(ControlBlock, terminate))
            .load(Ordering::Acquire)
            != 0
    }

    /// Sets the handler parameter. Before launch only.
    pub fn set_param(&self, value: u64) {
        // Relaxed: written before the device half starts; the launch orders it.
        self.word(word_of!(ControlBlock, param))
            .store(value, Ordering::Relaxed);
    }

    /// Sets the idle polls between two terminate checks (a power of two). Before launch only.
    pub fn set_check_interval(&self, value: u64) {
        // Relaxed: as for `set_param`.
        self.word(word_of!(ControlBlock, check_interval))
            .store(value, Ordering::Relaxed);
    }

    /// Reads the kernel's status words.
    pub fn report(&self) -> KernelReport {
        // Acquire on `status`: pairs with the kernel's release store of its
        // status, so the error code and counters it wrote before are visible.
        let status = self
            .word(word_of!(ControlBlock, status))
            .load(Ordering::Acquire);
        let load = |w: usize| self.word(w).load(Ordering::Relaxed);
        KernelReport {
            status,
            error_code: load(word_of!(ControlBlock, error_code)),
            error_detail: load(word_of!(ControlBlock, error_detail)),
            heartbeat: load(word_of!(ControlBlock, heartbeat)),
            consumed: load(word_of!(ControlBlock, consumed)),
            produced: load(word_of!(ControlBlock, produced)),
        }
    }

    /// The heartbeat alone (one load).
    pub fn heartbeat(&self) -> u64 {
        // Relaxed: only compared with earlier values to see progress.
        self.word(word_of!(ControlBlock, heartbeat))
            .load(Ordering::Relaxed)
    }
}

/// A kernel error code in words.
pub fn describe_error(code: u64) -> &'static str {
    match code {
        ERR_HANDLER => "the handler returned a fatal error",
        ERR_RING_CORRUPTED => "the kernel found a corrupted ring",
        ERR_HANDLER_PANICKED => "a host handler panicked",
        ERR_BAD_MAGIC => "bad magic or layout version in shared memory",
        _ => "unknown error code",
    }
}
