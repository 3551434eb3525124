//! The host fallback: the device half's C++ code (`kernels/ringbridge.cuh`,
//! compiled for the host by `build.rs`) running on a CPU thread over the same
//! ring layout in ordinary page-aligned memory.
//!
//! - `memory`: [`HostMemory`], the region's page-aligned host memory (also
//!   what the ring halves' own tests run on);
//! - `rust_handler`: [`RustHandler`], a handler written in Rust;
//! - `engine`: the serving thread and its C++ entry points' callers;
//! - [`ffi`]: those entry points; `launcher`: the backend's launcher.

#[cfg(not(loom))]
mod engine;
/// Tests only, not a stable API: the fallback's C entry points. Public
/// (hidden) for `tests/serve_loop.rs`, which drives the serve loop through
/// them: the handler pointer type, the built-in handler ids and
/// [`host_serve`](ffi::host_serve); the rest stays crate-private.
#[doc(hidden)]
#[allow(dead_code)]
#[cfg(not(loom))]
pub mod ffi;
#[cfg(not(loom))]
mod launcher;
mod memory;
#[cfg(not(loom))]
mod rust_handler;

#[cfg(not(loom))]
pub(crate) use engine::{FallbackEngine, FallbackKernel};
#[cfg(not(loom))]
pub(crate) use launcher::FallbackLauncher;
pub use memory::HostMemory;
#[cfg(not(loom))]
pub use rust_handler::{RustHandler, RustHandlerFn};
