//! A kernel written in C++ by a crate of its own, built by `ringbridge-build`
//! for both backends from one `.cu` source: the fatbin nvcc made (when it
//! was found) and the host entry the host C++ compiler made.

use core::ffi::c_void;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layout::{LaunchArgs, MAX_PARAM_SIZE, TRAIT_CHUNKWISE, TRAIT_COOPERATIVE, TRAIT_SENDS};

/// The host entry `RB_KERNEL_ENTRY(name, ..)` defines when compiled for the
/// host, `name__rb_host(ctl, h2k, k2h, block, args)` (see
/// `kernels/ringbridge.cuh`): serves region 0's rings as block `block` until
/// terminate or failure and returns the final status, or -1 for a null or
/// misaligned region or null `args` (a [`LaunchArgs`] that outlives the call).
pub type HostEntry = unsafe extern "C" fn(
    ctl: *mut c_void,
    h2k: *mut c_void,
    k2h: *mut c_void,
    block: u32,
    args: *const c_void,
) -> i32;

/// The traits function `RB_KERNEL_ENTRY(name, ..)` defines beside the host
/// entry, `name__rb_traits()`: the handler's `TRAIT_*` bits.
pub type TraitsFn = unsafe extern "C" fn() -> u32;

/// What a kernel's handler is, as its source declares it (see the handler
/// models in `kernels/ringbridge.cuh`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandlerTraits {
    /// The whole block serves one request at a time.
    pub cooperative: bool,
    /// It sends messages of its own (kind [`KIND_EVENT`](crate::layout::KIND_EVENT)).
    pub sends: bool,
    /// Element-wise over 16-byte chunks.
    pub chunkwise: bool,
    /// The messages one request may send (`rb_max_sends`; capped at
    /// 65,535): K2H needs room for a reply and these, `1 + max_sends` slots.
    pub max_sends: u32,
}

impl HandlerTraits {
    pub(crate) fn from_bits(bits: u32) -> Self {
        Self {
            cooperative: bits & TRAIT_COOPERATIVE != 0,
            sends: bits & TRAIT_SENDS != 0,
            chunkwise: bits & TRAIT_CHUNKWISE != 0,
            max_sends: bits >> 16,
        }
    }

    /// Whether it runs in the slot format only: cooperative handlers and
    /// handlers that send are served by the slot loop, not the lane loop.
    pub fn needs_slots(&self) -> bool {
        self.cooperative || self.sends
    }
}

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
///     .kernel(ringbridge::Kernel::User(double().with_param(3u32)))
///     .launch()?;
/// ```
#[derive(Clone)]
pub struct UserKernel {
    entry: &'static str,
    fatbin: Option<&'static [u8]>,
    no_fatbin_reason: &'static str,
    host_entry: HostEntry,
    traits: TraitsFn,
    emulation: Option<&'static str>,
    param: Option<Arc<[u8]>>,
}

impl core::fmt::Debug for UserKernel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UserKernel")
            .field("entry", &self.entry)
            .field("fatbin", &self.fatbin.map(<[u8]>::len))
            .field("no_fatbin_reason", &self.no_fatbin_reason)
            .field("emulation", &self.emulation)
            .field("param", &self.param_bytes())
            .finish()
    }
}

impl UserKernel {
    /// Called by generated code only.
    ///
    /// # Safety
    /// `host_entry` and `traits` must be the functions that
    /// `RB_KERNEL_ENTRY(entry, ..)` defines when compiled for the host (the
    /// contracts of [`HostEntry`] and [`TraitsFn`]); `fatbin`, when given, a
    /// CUDA image of the same source defining the kernel `entry`; and
    /// `emulation`, when given, the path of the block-emulation library
    /// ringbridge-build compiled from the same source.
    #[doc(hidden)]
    pub const unsafe fn from_build(
        entry: &'static str,
        fatbin: Option<&'static [u8]>,
        no_fatbin_reason: &'static str,
        host_entry: HostEntry,
        traits: TraitsFn,
        emulation: Option<&'static str>,
    ) -> Self {
        Self {
            entry,
            fatbin,
            no_fatbin_reason,
            host_entry,
            traits,
            emulation,
            param: None,
        }
    }

    /// The entry's name (the kernel's symbol in the fatbin).
    pub fn entry(&self) -> &'static str {
        self.entry
    }

    /// The CUDA image, `None` when nvcc was not found (or failed) at build
    /// time: then the kernel runs on the fallback backend only.
    pub fn fatbin(&self) -> Option<&'static [u8]> {
        self.fatbin
    }

    /// Why there is no CUDA image ("" when there is one).
    pub fn no_fatbin_reason(&self) -> &'static str {
        self.no_fatbin_reason
    }

    /// The handler's model, as its source declares it.
    pub fn traits(&self) -> HandlerTraits {
        // SAFETY: `traits` is the entry's `name__rb_traits`, which takes
        // nothing and returns a constant (the contract of `from_build`).
        HandlerTraits::from_bits(unsafe { (self.traits)() })
    }

    /// The same kernel with its typed parameter set to `value`: every thread
    /// of the handler reads it (`rb_launch::param<T>()` in the header, or
    /// the first 8 bytes, zero padded, for a handler built from a
    /// `uint64_t`). At most [`MAX_PARAM_SIZE`] bytes, checked when this
    /// compiles; [`try_with_param_bytes`](Self::try_with_param_bytes) takes
    /// bytes known at run time.
    pub fn with_param<T: bytemuck::Pod>(mut self, value: T) -> Self {
        const {
            assert!(
                size_of::<T>() <= MAX_PARAM_SIZE,
                "parameter larger than MAX_PARAM_SIZE"
            )
        };
        self.param = Some(Arc::from(bytemuck::bytes_of(&value)));
        self
    }

    /// The same kernel with its parameter set to `bytes`.
    ///
    /// # Errors
    /// [`Error::ParamTooLarge`] past [`MAX_PARAM_SIZE`] bytes.
    pub fn try_with_param_bytes(mut self, bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_PARAM_SIZE {
            return Err(Error::ParamTooLarge {
                size: bytes.len(),
                max: MAX_PARAM_SIZE,
            });
        }
        self.param = Some(Arc::from(bytes));
        Ok(self)
    }

    /// The parameter's bytes (empty by default).
    pub fn param_bytes(&self) -> &[u8] {
        self.param.as_deref().unwrap_or_default()
    }

    /// The path of the block-emulation library ringbridge-build compiled
    /// from the same source, when it did.
    pub fn emulation_library(&self) -> Option<&'static str> {
        self.emulation
    }

    pub(crate) fn host_entry(&self) -> HostEntry {
        self.host_entry
    }

    /// The launch arguments with this kernel's parameter (no buffers).
    pub(crate) fn launch_args(&self) -> LaunchArgs {
        let bytes = self.param_bytes();
        let mut param = [0u8; MAX_PARAM_SIZE];
        param[..bytes.len()].copy_from_slice(bytes);
        LaunchArgs {
            param,
            param_size: bytes.len() as u32,
            ..LaunchArgs::default()
        }
    }
}
