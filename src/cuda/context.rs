//! Driver discovery, device queries and the context the other layers use.

use std::sync::Arc;

use cudarc::driver::{CudaContext, DriverError, result, sys};

use super::{cuda_err, describe, driver_available};
use crate::error::{Error, Result};

/// What the driver reports about one GPU.
///
/// ```
/// use ringbridge::{Error, cuda};
/// match cuda::device_info(0) {
///     Ok(info) => {
///         assert_eq!(info.ordinal, 0);
///         assert!(info.compute_capability.0 > 0 && info.total_memory > 0);
///         println!("{} (driver {})", info.name, info.driver_version);
///     }
///     // Without a driver (as on a machine without a GPU), always this error.
///     Err(e) if !cuda::driver_available() => assert!(matches!(e, Error::CudaUnavailable(_))),
///     Err(e) => println!("no usable GPU: {e}"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device's ordinal, as given to [`device_info`].
    pub ordinal: usize,
    /// The device's name, e.g. `"NVIDIA H200"`.
    pub name: String,
    /// `(major, minor)`, e.g. `(9, 0)` for Hopper.
    pub compute_capability: (i32, i32),
    /// Device memory in bytes.
    pub total_memory: usize,
    /// The driver's CUDA version as `1000 * major + 10 * minor`, e.g. `13000`.
    pub driver_version: i32,
}

/// Loads and initialises the driver (`cuInit`), or says why it cannot.
fn init() -> Result<()> {
    if !driver_available() {
        return Err(Error::CudaUnavailable(
            "no CUDA driver library (libcuda) could be loaded".into(),
        ));
    }
    result::init().map_err(|e| Error::CudaUnavailable(format!("cuInit failed: {}", describe(e))))
}

/// The number of CUDA devices.
///
/// # Errors
/// [`Error::CudaUnavailable`] when no driver can be loaded or `cuInit` fails
/// (for instance with `CUDA_ERROR_NO_DEVICE`); [`Error::Cuda`] if the count
/// itself cannot be read.
///
/// ```
/// match ringbridge::cuda::device_count() {
///     Ok(n) => println!("{n} device(s)"),
///     Err(ringbridge::Error::CudaUnavailable(why)) => println!("no CUDA: {why}"),
///     Err(e) => println!("{e}"),
/// }
/// ```
pub fn device_count() -> Result<usize> {
    init()?;
    let count = result::device::get_count().map_err(cuda_err("cuDeviceGetCount"))?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// The driver's handle of device `ordinal`, after checking that it exists.
fn device(ordinal: usize) -> Result<sys::CUdevice> {
    let count = device_count()?;
    if ordinal >= count {
        return Err(Error::DeviceOutOfRange { ordinal, count });
    }
    // `ordinal < count <= i32::MAX`, so the conversion cannot fail.
    let raw = i32::try_from(ordinal).map_err(|_| Error::DeviceOutOfRange { ordinal, count })?;
    result::device::get(raw).map_err(cuda_err("cuDeviceGet"))
}

/// Describes device `ordinal` without creating a context on it.
///
/// # Errors
/// [`Error::CudaUnavailable`] without a driver, [`Error::DeviceOutOfRange`]
/// for an ordinal beyond the devices present, [`Error::Cuda`] when a query
/// fails.
///
/// ```no_run
/// let info = ringbridge::cuda::device_info(0)?;
/// println!(
///     "{}: sm_{}{}, {} GiB",
///     info.name,
///     info.compute_capability.0,
///     info.compute_capability.1,
///     info.total_memory >> 30
/// );
/// # Ok::<(), ringbridge::Error>(())
/// ```
///
/// An ordinal beyond the devices present is an error, with or without a
/// driver:
///
/// ```
/// use ringbridge::{Error, cuda};
/// let err = cuda::device_info(usize::MAX).unwrap_err();
/// if cuda::driver_available() {
///     assert!(matches!(err, Error::DeviceOutOfRange { .. } | Error::CudaUnavailable(_)));
/// } else {
///     assert!(matches!(err, Error::CudaUnavailable(_)));
/// }
/// ```
pub fn device_info(ordinal: usize) -> Result<DeviceInfo> {
    let dev = device(ordinal)?;
    let name = result::device::get_name(dev).map_err(cuda_err("cuDeviceGetName"))?;
    let attribute = |attr| {
        // SAFETY: `dev` was returned by `cuDeviceGet` for an existing ordinal.
        unsafe { result::device::get_attribute(dev, attr) }
            .map_err(cuda_err("cuDeviceGetAttribute"))
    };
    let major = attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    // SAFETY: as above, `dev` is a valid device handle.
    let total_memory =
        unsafe { result::device::total_mem(dev) }.map_err(cuda_err("cuDeviceTotalMem_v2"))?;
    let mut driver_version = 0;
    // SAFETY: the driver is loaded and initialised (`device` succeeded); the
    // pointer is to a live, writable `c_int`.
    unsafe { sys::cuDriverGetVersion(&raw mut driver_version) }
        .result()
        .map_err(cuda_err("cuDriverGetVersion"))?;
    Ok(DeviceInfo {
        ordinal,
        name,
        compute_capability: (major, minor),
        total_memory,
        driver_version,
    })
}

/// The primary context of device `ordinal`, retained (its reference count is
/// released when the last `Arc` is dropped).
///
/// Checks for a driver and the ordinal before touching any context, so it
/// never panics: [`Error::CudaUnavailable`], [`Error::DeviceOutOfRange`], or
/// [`Error::Cuda`] when retaining the context fails.
pub(crate) fn context(ordinal: usize) -> Result<Arc<CudaContext>> {
    device(ordinal)?;
    CudaContext::new(ordinal).map_err(cuda_err("cuDevicePrimaryCtxRetain"))
}

/// Makes `ctx` current on the calling thread.
///
/// Unlike `CudaContext::bind_to_thread` this does not consume an error that
/// some cudarc `Drop` recorded in the context earlier (which would surface
/// as a failure of an unrelated call here).
pub(crate) fn bind(ctx: &CudaContext) -> std::result::Result<(), DriverError> {
    if result::ctx::get_current()? != Some(ctx.cu_ctx()) {
        // SAFETY: `ctx` is alive (we borrow it), so its `CUcontext` is valid.
        unsafe { result::ctx::set_current(ctx.cu_ctx()) }?;
    }
    Ok(())
}
