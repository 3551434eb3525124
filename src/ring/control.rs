//! The host's view of the control block.

use crate::backend::SharedMemory;
use crate::layout::{
    ControlBlock, ERR_BAD_MAGIC, ERR_HANDLER, ERR_HANDLER_PANICKED, ERR_PARAM_SIZE,
    ERR_RING_CORRUPTED,
};
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::word_of;

/// Reads and writes the control block at the start of a region.
///
/// ```
/// use ringbridge::layout::STATUS_LAUNCHING;
/// use ringbridge::ring::{RegionLayout, RingSpec};
/// use ringbridge::fallback::HostMemory;
/// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
/// let mem = HostMemory::new(layout.total_bytes)?;
/// layout.init(&*mem);
/// let control = layout.control(&mem);
/// assert_eq!(control.report().status, STATUS_LAUNCHING); // no device half yet
/// let device_view = control.clone();
/// control.request_terminate();
/// assert!(device_view.terminate_requested());
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone)]
pub struct Control {
    mem: Arc<dyn SharedMemory>,
}

/// What the kernel reported through the control block.
///
/// ```
/// use ringbridge::layout::STATUS_LAUNCHING;
/// use ringbridge::ring::{KernelReport, RegionLayout, RingSpec};
/// use ringbridge::fallback::HostMemory;
/// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
/// let mem = HostMemory::new(layout.total_bytes)?;
/// layout.init(&*mem);
/// let report: KernelReport = layout.control(&mem).report();
/// let launching = KernelReport {
///     status: STATUS_LAUNCHING,
///     error_code: 0,
///     error_detail: 0,
///     heartbeat: 0,
///     consumed: 0,
///     produced: 0,
/// };
/// assert_eq!(report, launching);
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
    ///
    /// ```
    /// use ringbridge::error::RingId;
    /// use ringbridge::layout::KIND_REQUEST;
    /// use ringbridge::ring::{RegionLayout, RingSpec, model};
    /// use ringbridge::fallback::HostMemory;
    /// let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// let mem = HostMemory::new(layout.total_bytes)?;
    /// layout.init(&*mem);
    /// let (mut h2k_tx, mut h2k_rx) = layout.ring_pair(&mem, RingId::H2k);
    /// let (mut k2h_tx, _k2h_rx) = layout.ring_pair(&mem, RingId::K2h);
    /// let control = layout.control(&mem);
    /// h2k_tx.try_push(KIND_REQUEST, 0, 0, b"last")?;
    /// control.request_terminate();
    /// // the model serves what is queued, then sees the request and stops
    /// assert_eq!(model::serve_echo(&mut h2k_rx, &mut k2h_tx, &control, 8, 1)?, 1);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn request_terminate(&self) {
        // Release: nothing needs ordering before it for correctness (the
        // kernel only stops), but it keeps every message sent before the
        // request visible to a kernel that sees the request.
        self.word(word_of!(ControlBlock, terminate))
            .store(1, Ordering::Release);
    }

    /// Whether the host asked the device half to stop (what the kernel polls).
    ///
    /// ```
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let control = layout.control(&mem);
    /// assert!(!control.terminate_requested());
    /// control.request_terminate();
    /// assert!(control.terminate_requested());
    /// layout.init(&*mem); // re-initialising clears it
    /// assert!(!control.terminate_requested());
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn terminate_requested(&self) -> bool {
        // Acquire: pairs with `request_terminate`'s release store.
        self.word(word_of!(ControlBlock, terminate))
            .load(Ordering::Acquire)
            != 0
    }

    /// Sets the handler parameter. Before launch only.
    ///
    /// ```
    /// use std::mem::offset_of;
    /// use std::sync::atomic::Ordering;
    /// use ringbridge::backend::SharedMemory;
    /// use ringbridge::layout::ControlBlock;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// // the built-in scale kernel reads an f32 factor from the low 32 bits
    /// layout.control(&mem).set_param(2.5f32.to_bits() as u64);
    /// let param = mem.words()[offset_of!(ControlBlock, param) / 8].load(Ordering::Relaxed);
    /// assert_eq!(f32::from_bits(param as u32), 2.5);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn set_param(&self, value: u64) {
        // Relaxed: written before the device half starts; the launch orders it.
        self.word(word_of!(ControlBlock, param))
            .store(value, Ordering::Relaxed);
    }

    /// Sets how often the serve loop checks terminate and beats (a power of two): once its
    /// polls since the last check, plus one per 16 requests served, reach this. Before launch only.
    ///
    /// ```
    /// use std::mem::offset_of;
    /// use std::sync::atomic::Ordering;
    /// use ringbridge::backend::SharedMemory;
    /// use ringbridge::layout::ControlBlock;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let interval = || {
    ///     mem.words()[offset_of!(ControlBlock, check_interval) / 8].load(Ordering::Relaxed)
    /// };
    /// assert_eq!(interval(), 1024); // what init() writes
    /// layout.control(&mem).set_check_interval(64);
    /// assert_eq!(interval(), 64);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn set_check_interval(&self, value: u64) {
        // Relaxed: as for `set_param`.
        self.word(word_of!(ControlBlock, check_interval))
            .store(value, Ordering::Relaxed);
    }

    /// Reads the kernel's status words.
    ///
    /// ```
    /// use std::mem::offset_of;
    /// use std::sync::atomic::Ordering;
    /// use ringbridge::backend::SharedMemory;
    /// use ringbridge::layout::{ControlBlock, ERR_RING_CORRUPTED, STATUS_FAILED};
    /// use ringbridge::ring::describe_error;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// // what a failing kernel stores: the error first, then (release) the status
    /// let word = |field: usize| &mem.words()[field / 8];
    /// word(offset_of!(ControlBlock, error_code)).store(ERR_RING_CORRUPTED, Ordering::Relaxed);
    /// word(offset_of!(ControlBlock, error_detail)).store(17, Ordering::Relaxed);
    /// word(offset_of!(ControlBlock, status)).store(STATUS_FAILED, Ordering::Release);
    /// let report = layout.control(&mem).report();
    /// assert_eq!((report.status, report.error_detail), (STATUS_FAILED, 17));
    /// assert_eq!(describe_error(report.error_code), "the kernel found a corrupted ring");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
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
    ///
    /// ```
    /// use std::mem::offset_of;
    /// use std::sync::atomic::Ordering;
    /// use ringbridge::backend::SharedMemory;
    /// use ringbridge::layout::ControlBlock;
    /// # use ringbridge::ring::{RegionLayout, RingSpec};
    /// use ringbridge::fallback::HostMemory;
    /// # let layout = RegionLayout::new(RingSpec::new(4, 64)?)?;
    /// # let mem = HostMemory::new(layout.total_bytes)?;
    /// # layout.init(&*mem);
    /// let control = layout.control(&mem);
    /// assert_eq!(control.heartbeat(), 0);
    /// // the kernel's poll loop advances it
    /// mem.words()[offset_of!(ControlBlock, heartbeat) / 8].fetch_add(3, Ordering::Relaxed);
    /// assert_eq!(control.heartbeat(), 3);
    /// assert_eq!(control.report().heartbeat, 3);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn heartbeat(&self) -> u64 {
        // Relaxed: only compared with earlier values to see progress.
        self.word(word_of!(ControlBlock, heartbeat))
            .load(Ordering::Relaxed)
    }
}

/// A kernel error code in words.
///
/// ```
/// use ringbridge::layout::{ERR_BAD_MAGIC, ERR_HANDLER};
/// use ringbridge::ring::describe_error;
/// assert_eq!(describe_error(ERR_HANDLER), "the handler returned a fatal error");
/// assert_eq!(describe_error(ERR_BAD_MAGIC), "bad magic or layout version in shared memory");
/// assert_eq!(describe_error(999), "unknown error code");
/// ```
pub fn describe_error(code: u64) -> &'static str {
    match code {
        ERR_HANDLER => "the handler returned a fatal error",
        ERR_RING_CORRUPTED => "the kernel found a corrupted ring",
        ERR_HANDLER_PANICKED => "a Rust handler panicked",
        ERR_BAD_MAGIC => "bad magic or layout version in shared memory",
        ERR_PARAM_SIZE => "the handler's typed parameter has another size than the one sent",
        _ => "unknown error code",
    }
}
