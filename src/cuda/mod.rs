//! The CUDA backend: the driver API through cudarc, loaded at run time.
//!
//! Layers, bottom to top (cudarc's `sys` → `result` → `safe` underneath):
//! - `context`: is there a driver, how many GPUs, what are they, and the
//!   (primary) context of one of them;
//! - `running`: which of our kernels may run on which device, and the
//!   driver calls that must not meet them (`DeviceBusy` instead);
//! - `memory`: pinned, device-mapped host memory for a bridge's rings;
//!   `buffer`: device memory for a bridge-owned buffer;
//! - `module`: a kernel image loaded, its entry point looked up;
//!   `stream`: the non-blocking streams kernels run on;
//! - `launch`: running a loaded entry as a persistent kernel and learning
//!   what became of it; `group`: one launch serving a striped group;
//! - [`Reservation`] (`reservation`, `reserved`, `space`): all of the above
//!   made before any launch, so bridges can start and stop while others run;
//! - `launcher`: the backend's launcher (`crate::backend::launch`), which
//!   puts the above together for a bridge or a group.
//!
//! Nothing here panics when no driver is installed: every entry point checks
//! [`driver_available`] first (cudarc itself panics on the first driver call
//! when `libcuda` cannot be loaded) and returns
//! [`Error::CudaUnavailable`] instead.
//!
//! ```
//! // Works with or without a GPU.
//! match ringbridge::cuda::device_count() {
//!     Ok(n) => println!("{n} CUDA device(s)"),
//!     Err(e) => println!("no CUDA: {e}"),
//! }
//! ```

use std::sync::OnceLock;

use cudarc::driver::DriverError;

use crate::error::Error;

mod buffer;
mod context;
mod driver_library;
mod group;
pub(crate) mod launch;
mod launcher;
mod memory;
mod module;
mod reservation;
mod reserved;
pub(crate) mod running;
mod space;
mod stream;

pub(crate) use buffer::DeviceBuffer;
pub(crate) use context::context;
pub use context::{DeviceInfo, device_count, device_info};
pub use driver_library::{DriverLibrary, driver_library};
pub(crate) use group::{CudaGroup, StripeEngine};
pub(crate) use launch::CudaKernel;
pub(crate) use launcher::{CudaLauncher, device_usable};
pub(crate) use memory::MappedMemory;
pub use reservation::{Reservation, ReservationBuilder, ReservationFree};

/// Whether a CUDA driver library (`libcuda`) can be loaded.
///
/// Never panics. The answer is computed once and cached. `true` does not mean
/// that a GPU is present: [`device_count`] tells that.
///
/// ```
/// if !ringbridge::cuda::driver_available() {
///     println!("no CUDA driver here; use the fallback backend");
/// }
/// ```
pub fn driver_available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        // SAFETY: `is_culib_present` only tries to `dlopen` the driver
        // library under its usual names and closes it again; it calls no
        // driver function. Loading libcuda runs its initialisers, which is
        // what every later use of the driver does anyway.
        unsafe { cudarc::driver::sys::is_culib_present() }
    })
}

/// The driver's name and description of `err`, e.g.
/// `"CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered"`.
///
/// Only call this when the driver is loaded (every `DriverError` comes from
/// a driver that is). Public for code that drives cudarc beside a bridge
/// (the command line's `compare`), so its errors read as the bridge's do.
///
/// ```no_run
/// use cudarc::driver::{DriverError, sys::CUresult};
/// let text = ringbridge::cuda::describe(DriverError(CUresult::CUDA_ERROR_INVALID_VALUE));
/// assert!(text.starts_with("CUDA_ERROR_INVALID_VALUE"));
/// ```
pub fn describe(err: DriverError) -> String {
    let name = err.error_name().map_or_else(
        |_| format!("{:?}", err.0),
        |s| s.to_string_lossy().into_owned(),
    );
    match err.error_string() {
        Ok(text) => format!("{name}: {}", text.to_string_lossy()),
        Err(_) => name,
    }
}

/// Turns a failed driver call into [`Error::Cuda`], naming the call:
/// `result.map_err(cuda_err("cuStreamCreate"))`.
pub(crate) fn cuda_err(call: &'static str) -> impl FnOnce(DriverError) -> Error {
    move |err| Error::Cuda {
        call,
        message: describe(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The no-driver path: these run on machines without a GPU, where they
    /// must return errors rather than panic inside cudarc.
    #[test]
    fn no_driver_gives_cuda_unavailable() {
        if driver_available() {
            eprintln!("a CUDA driver is installed here; skipping the no-driver checks");
            return;
        }
        assert!(matches!(device_count(), Err(Error::CudaUnavailable(_))));
        assert!(matches!(device_info(0), Err(Error::CudaUnavailable(_))));
        assert!(matches!(
            device_info(usize::MAX),
            Err(Error::CudaUnavailable(_))
        ));
        assert!(matches!(context(0), Err(Error::CudaUnavailable(_))));
    }

    #[test]
    fn driver_available_is_stable() {
        assert_eq!(driver_available(), driver_available());
    }

    /// With a driver, the basic queries must agree with each other.
    #[test]
    fn device_queries_agree_when_a_driver_exists() {
        let Ok(count) = device_count() else {
            return;
        };
        for ordinal in 0..count {
            let info = device_info(ordinal).expect("device_info of an existing ordinal");
            assert_eq!(info.ordinal, ordinal);
            assert!(info.total_memory > 0);
            assert!(info.compute_capability.0 > 0);
        }
        assert!(matches!(
            device_info(count),
            Err(Error::DeviceOutOfRange { ordinal, count: c }) if ordinal == count && c == count
        ));
    }
}
