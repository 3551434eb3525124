//! A simulated CUDA driver for ringbridge's tests.
//!
//! Built as a shared library that cudarc's dynamic loading opens in place
//! of `libcuda.so` when a test run puts it first on the loader's path
//! (`scripts/sim-driver.sh`) **and** sets `RINGBRIDGE_SIM_DRIVER=1`; without
//! the variable `cuInit` refuses, so it never stands in for a real driver by
//! accident. ringbridge's `src/cuda/` runs against it unchanged.
//!
//! What it models, call by call, with the return codes of NVIDIA's CUDA
//! Driver API reference (docs/sim-driver.md has the table and the choices
//! made where the reference is silent):
//! - devices, their attributes and primary contexts (`config`, `world`);
//! - page-locked, device-mapped host memory (same address on both sides, as
//!   with unified addressing) and device memory (a separate allocation,
//!   reached through copies); new memory is filled with a pattern, not
//!   zeroed;
//! - modules loaded from the images ringbridge-build produces (fatbin,
//!   cubin, PTX: `image`), each run by its *host twin*, the block-emulation
//!   build of the same `.cu` (`twin`), found by the image's digest;
//! - launches that hand the twin the parameter space exactly as the driver
//!   builds it from `kernelParams`, blocks made resident only when an SM has
//!   room, streams that run their work in order (`exec`);
//! - faults: a `__trap()` or an invalid store in a kernel is the context's
//!   sticky error; allocations, launches and module loads fail on demand;
//!   blocks can be held back (`control`);
//! - the implicit-synchronization rule: a call that would wait for a
//!   running kernel aborts the process with the call and the kernel named,
//!   instead of hanging (`World::check_idle`).

mod abi;
pub mod api;
mod config;
pub mod control;
mod exec;
mod image;
mod twin;
mod world;

/// Locks `m`, ignoring poisoning: a panicking test thread must not wedge the
/// simulated machine for the others.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
