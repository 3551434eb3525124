//! A kernel written in C++ by a crate of its own, built by `ringbridge-build`
//! for both backends from one `.cu` source: the fatbin nvcc made (when it
//! was found) and the host entry the host C++ compiler made.

use core::ffi::c_void;

/// The host entry `RB_KERNEL_ENTRY(name, ..)` defines when compiled for the
/// host, `name__rb_host(ctl, h2k, k2h, block)` (see `kernels/ringbridge.cuh`):
/// serves region 0's rings as block `block` until terminate or failure and
/// returns the final status, or -1 for a null or misaligned region.
pub type HostEntry =
    unsafe extern "C" fn(ctl: *mut c_void, h2k: *mut c_void, k2h: *mut c_void, block: u32) -> i32;

/// One `RB_KERNEL_ENTRY` of a user's `.cu` source, compiled for both
/// backends; launch it with [`Kernel::User`](crate::Kernel::User).
///
/// Made only by the constructors `ringbridge-build` generates (one `pub fn`
/// per entry in `$OUT_DIR/<lib>.rs`), so the host entry it carries is always
/// the serve loop's entry compiled from that source.
///
/// ```ignore
/// // Needs a crate whose build.rs runs ringbridge_build::Kernels (see the
/// // README, "Your own kernel"): `double()` is generated there.
/// include!(concat!(env!("OUT_DIR"), "/my_kernels.rs"));
/// let bridge = ringbridge::Bridge::builder()
///     .kernel(ringbridge::Kernel::User(double().with_param(3)))
///     .launch()?;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct UserKernel {
    entry: &'static str,
    fatbin: Option<&'static [u8]>,
    no_fatbin_reason: &'static str,
    host_entry: HostEntry,
    param: u64,
}

impl UserKernel {
    /// Called by generated code only.
    ///
    /// # Safety
    /// `host_entry` must be the host entry that `RB_KERNEL_ENTRY(entry, ..)`
    /// defines (the contract of [`HostEntry`]), and `fatbin`, when given, a
    /// CUDA image of the same source defining the kernel `entry`.
    #[doc(hidden)]
    pub const unsafe fn from_build(
        entry: &'static str,
        fatbin: Option<&'static [u8]>,
        no_fatbin_reason: &'static str,
        host_entry: HostEntry,
    ) -> Self {
        Self {
            entry,
            fatbin,
            no_fatbin_reason,
            host_entry,
            param: 0,
        }
    }

    /// The entry's name (the kernel's symbol in the fatbin).
    pub fn entry(&self) -> &'static str {
        self.entry
    }

    /// The CUDA image, `None` when nvcc was not found (or failed) at build
    /// time: then the kernel runs on the host backend only.
    pub fn fatbin(&self) -> Option<&'static [u8]> {
        self.fatbin
    }

    /// Why there is no CUDA image ("" when there is one).
    pub fn no_fatbin_reason(&self) -> &'static str {
        self.no_fatbin_reason
    }

    /// The same kernel with the control block's `param` word set to
    /// `param`: each thread builds its handler from it at launch.
    pub fn with_param(mut self, param: u64) -> Self {
        self.param = param;
        self
    }

    /// The `param` word the handler is built from (default 0).
    pub fn param(&self) -> u64 {
        self.param
    }

    pub(crate) fn host_entry(&self) -> HostEntry {
        self.host_entry
    }
}
