//! Copying a payload out of ring memory in bulk, without a data race.
//!
//! The host reads memory the other side writes only through atomics, so a
//! misbehaving device (or the fallback's C++ thread) can never make a host
//! read a data race in Rust's sense. Relaxed `AtomicU64` loads keep that
//! promise but are never vectorized: a 4 KiB payload was 512 scalar loads
//! and 512 scratch stores, half of `memcpy`'s rate (docs/perf-host-side.md).
//!
//! [`load_words`] copies large payloads with one `rep movsb` instead, the
//! instruction glibc's own `memcpy` uses at these sizes on processors with
//! fast string moves. Why that keeps the promise: an `asm!` block is
//! opaque to the compiler and must behave like *some* Rust code it could
//! not see; this one behaves like a relaxed `AtomicU8` load of every source
//! byte, in no particular order, each stored into `dst`, which we own. That
//! is the "byte-wise atomic memcpy" of RFC 3301 (C++ P1478), and relaxed
//! atomic loads cannot race, whatever the other side stores meanwhile. A
//! torn copy (bytes from two different writes) is no worse than what
//! per-word loads can already return when the protocol is broken, and the
//! protocol's own checks (the header's `seq`, the acquire of `head`) are
//! unchanged: with a well-behaved producer the slot does not change while
//! it is read. Memory order: the caller's acquire load of `head` is
//! sequenced before the block, so (as for the relaxed loads it replaces)
//! the bytes read are at least as new as that `head` publishes.
//!
//! Small payloads keep the word loop (a string move's start-up costs more
//! than eight loads), and so do Miri and loom, which cannot run `asm!` or
//! model it: they check the word loop, whose contract is the same.

use crate::sync::{AtomicU64, Ordering};

/// Payloads of at least this many 8-byte words are copied with one string
/// move; smaller ones word by word. Measured: docs/perf-host-side.md
/// ("Bulk copies out of a slot").
pub(crate) const BULK_MIN_WORDS: usize = 128;

/// Copies `src` (ring memory the other side may write at any time) into
/// `dst`, without a data race, as relaxed loads would. The caller orders
/// the copy after whatever published the data (an acquire load before it).
#[inline]
pub(crate) fn load_words(src: &[AtomicU64], dst: &mut [u64]) {
    debug_assert_eq!(src.len(), dst.len());
    #[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
    if src.len() >= BULK_MIN_WORDS && src.len() == dst.len() {
        // SAFETY: `src` is `len` valid `AtomicU64`s (same size and alignment
        // as `u64`, interior-mutable, so reading them through a raw pointer
        // from a shared borrow is allowed) and `dst` is `len` words we hold
        // exclusively; they cannot overlap (`dst` is `&mut`). `rep movsb`
        // reads exactly `len * 8` bytes from `rsi` and writes as many to
        // `rdi`, touches no other memory, no stack, and leaves the
        // direction flag clear as it found it (the ABI guarantees DF = 0 on
        // entry to any code). The reads are relaxed byte-wise atomic loads
        // in the sense of the module comment, so the other side's
        // concurrent stores cannot make this a data race.
        unsafe {
            std::arch::asm!(
                "rep movsb",
                inout("rcx") src.len() * 8 => _,
                inout("rsi") src.as_ptr() => _,
                inout("rdi") dst.as_mut_ptr() => _,
                options(nostack, preserves_flags),
            );
        }
        return;
    }
    for (d, s) in dst.iter_mut().zip(src) {
        // Relaxed: the caller's acquire ordered these after the writes.
        *d = s.load(Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Both paths (word loop below [`BULK_MIN_WORDS`], string move from it
    /// on) copy every word, at the sizes around the switch and a 4 KiB slot.
    #[test]
    fn copies_every_word_on_both_sides_of_the_switch() {
        for len in [
            0,
            1,
            7,
            BULK_MIN_WORDS - 1,
            BULK_MIN_WORDS,
            BULK_MIN_WORDS + 1,
            512,
        ] {
            let src: Vec<AtomicU64> = (0..len as u64)
                .map(|i| AtomicU64::new(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xff))
                .collect();
            let mut dst = vec![0u64; len + 1];
            load_words(&src, &mut dst[..len]);
            for (i, (d, s)) in dst.iter().zip(&src).enumerate() {
                assert_eq!(*d, s.load(Ordering::Relaxed), "word {i} of {len}");
            }
            assert_eq!(dst[len], 0, "wrote past the end at {len} words");
        }
    }
}
