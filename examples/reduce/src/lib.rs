//! # reduce: a block-cooperative compute service
//!
//! The kernel (`kernels/reduce.cu`) answers each request, a vector of up to
//! [`MAX_ELEMENTS`] `f32`, with one `f64`: its sum (flags [`OP_SUM`]) or its
//! dot product with the weights the bridge holds in buffer 0 (flags
//! [`OP_DOT`]). The whole thread block works on one request: each thread
//! sums a strided share in `f64`, then the block adds the partial sums in a
//! tree in shared scratch memory, with a barrier per level. On the host
//! fallback the block is one thread.

use ringbridge::buffer::BufferInit;
use ringbridge::{Bridge, BridgeBuilder, Kernel, MessageEnvelope};

include!(concat!(env!("OUT_DIR"), "/reduce_kernels.rs"));

/// Flags of a request for the sum of its elements.
pub const OP_SUM: u32 = 0;
/// Flags of a request for the dot product with the weights (buffer 0).
pub const OP_DOT: u32 = 1;

/// Error code (the reply's flags): the payload is not whole `f32`s.
pub const ERR_LEN: u32 = 1;
/// Error code: flags that are no op.
pub const ERR_OP: u32 = 2;
/// Error code: a dot product longer than the weights.
pub const ERR_TOO_LONG: u32 = 3;

/// The longest vector: 64 KiB of `f32`.
pub const MAX_ELEMENTS: usize = 16384;

/// Slot size: a 64 KiB payload plus the 32-byte header, rounded up to a
/// power of two.
pub const SLOT_SIZE: usize = 131_072;

/// A bridge serving the service with `weights` (at most [`MAX_ELEMENTS`]
/// used) in buffer 0: 16 slots of [`SLOT_SIZE`] bytes each way, 256 threads
/// per block on CUDA (the fallback's block is one thread). Pick the backend
/// on the builder it returns.
pub fn bridge_builder(weights: &[f32]) -> BridgeBuilder {
    Bridge::builder()
        .kernel(Kernel::User(reduce_vectors()))
        .slot_size(SLOT_SIZE)
        .capacity(16)
        .block_size(256)
        .buffer(BufferInit::from_pod(weights))
}

/// The result of a reply: its `f64`, or why it is none.
pub fn result_of(m: &MessageEnvelope) -> Result<f64, String> {
    match <[u8; 8]>::try_from(m.payload.as_slice()) {
        Ok(b) if m.is_reply() => Ok(f64::from_le_bytes(b)),
        _ => Err(format!(
            "expected an f64, got {:?} ({} bytes)",
            m.header,
            m.payload.len()
        )),
    }
}

/// The host's answer to a request, in `f64` in index order, and how far
/// the kernel's may be from it: `2 n eps64 sum |terms|`. Both add the same
/// exact terms (an `f32`, or a product of two, is exact in `f64`) in `f64`,
/// in different orders (the kernel by thread share, then a tree). Any order
/// of n additions is within `(n - 1) eps64 / 2 * sum |terms|` (to first
/// order) of the exact sum, so the two are within twice that; the bound
/// doubles it again for room. It is tight enough that a term dropped or
/// counted twice shows (a term is on average `sum |terms| / n`, far above
/// the bound for any length a slot holds) unless that term is itself almost
/// zero.
pub fn reference(x: &[f32], weights: Option<&[f32]>) -> (f64, f64) {
    let term = |i: usize| f64::from(x[i]) * weights.map_or(1.0, |w| f64::from(w[i]));
    let sum: f64 = (0..x.len()).map(term).sum();
    let abs: f64 = (0..x.len()).map(|i| term(i).abs()).sum();
    (sum, 2.0 * x.len() as f64 * f64::EPSILON * abs)
}

/// A small seeded generator (xorshift64*), so runs are reproducible.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// Seeded with `seed` (0 is replaced by a fixed non-zero seed).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `[-1, 1)`, with 24 random bits.
    pub fn f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
    /// `n` values from [`f32`](Self::f32).
    pub fn vector(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}
