//! # ringbridge
//!
//! Messaging between a host program and a persistent CUDA kernel through a
//! pair of single-producer single-consumer rings in pinned, device-mapped
//! host memory: host-to-kernel (H2K) and kernel-to-host (K2H).
//!
//! Layers, bottom to top:
//! - [`queue`]: a lock-free host SPSC queue with `Producer`/`Consumer` halves.
//! - [`layout`]: the bytes both sides share (ring header, slot header,
//!   control block); the CUDA header is generated from it.
//! - [`ring`]: the host halves of the ring protocol over shared memory.
//! - backends: [`cuda`] (driver API through cudarc) and [`fallback`] (the same
//!   device-half C++ code, compiled for the host and run on a CPU thread).
//! - [`bridge`]: the user-facing [`Bridge`]; [`striped`]: several of them
//!   striped by the host, for more SMs and more host threads.
//! - [`wait`]: how an idle bridge waits ([`WaitPolicy`]) and the doorbell
//!   that lets the host fallback's two sides sleep until woken.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod backend;
#[cfg(not(loom))]
pub mod bridge;
#[cfg(not(loom))]
pub mod cuda;
pub mod error;
#[cfg(not(loom))]
pub mod fallback;
#[cfg(not(loom))]
pub mod kernels;
pub mod layout;
pub mod message;
pub mod queue;
pub mod ring;
#[cfg(not(loom))]
pub mod striped;
pub(crate) mod sync;
pub mod wait;

pub use backend::Backend;
#[cfg(not(loom))]
pub use bridge::{Bridge, BridgeBuilder, BridgeStats, Kernel, SendChunk};
pub use error::{Error, Result};
pub use message::{MessageEnvelope, MessageHeader};
pub use queue::{Consumer, Producer, QueueStats, SpscQueue};
#[cfg(not(loom))]
pub use striped::StripedBridge;
pub use wait::WaitPolicy;
