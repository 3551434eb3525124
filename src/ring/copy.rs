//! Copying a payload into or out of ring memory in bulk, without a data
//! race.
//!
//! The host touches memory the other side reads and writes only through
//! atomics, so a misbehaving device (or the fallback's C++ thread) can never
//! make a host access a data race in Rust's sense. Relaxed `AtomicU64` loads
//! and stores keep that promise but are never merged or vectorized: a 4 KiB
//! payload was 512 scalar loads and 512 scratch stores, half of `memcpy`'s
//! rate (docs/perf-host-side.md).
//!
//! On x86-64 the payload moves by `asm!` instead: 16-byte `movdqu` moves
//! (SSE2, in every x86-64) for payloads under [`STRING_MOVE_MIN_BYTES`], one
//! `rep movsb` from there on (the instruction glibc's own `memcpy` uses at
//! such sizes on processors with fast string moves). Why that keeps the
//! promise: an `asm!` block is opaque to the compiler and must behave like
//! *some* Rust code it could not see; these behave like a relaxed
//! `AtomicU8` load of every source byte and a relaxed `AtomicU8` store of
//! every destination byte, in no particular order. That is the "byte-wise
//! atomic memcpy" of RFC 3301 (C++ P1478); relaxed atomic accesses cannot
//! race, whatever the other side does meanwhile. A torn copy (bytes of two
//! different writes) is no worse than what per-word loads can already
//! return when the protocol is broken, and the protocol's own checks (the
//! header's `seq`, the acquire of `head`) are unchanged. Memory order: the
//! caller's acquire load of `head` is sequenced before a load block, and a
//! store block before the caller's release store of `head`, exactly where
//! the relaxed word accesses they replace stood (docs/platform-facts.md,
//! "Reading ring memory in bulk").
//!
//! Miri and loom cannot run `asm!` or model it, and other targets have no
//! such block: there the word loops run. Their contract is the same, and
//! the unit tests compare both paths.

use crate::sync::{AtomicU64, Ordering};

/// Payloads of at least this many bytes move by one `rep movsb`; smaller
/// ones by 16-byte moves. Measured: docs/perf-host-side.md ("Bulk copies
/// out of a slot").
#[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
const STRING_MOVE_MIN_BYTES: usize = 2048;

/// Copies `src` (ring memory the other side may write at any time) into
/// `dst`, without a data race, as relaxed loads would. The caller orders
/// the copy after whatever published the data (an acquire load before it).
#[inline]
pub(crate) fn load_words(src: &[AtomicU64], dst: &mut [u64]) {
    assert_eq!(src.len(), dst.len(), "load_words: lengths differ");
    #[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
    {
        // SAFETY: `src` is `len` valid `AtomicU64`s (same size and
        // alignment as `u64`, interior-mutable, so reading them through a
        // raw pointer from a shared borrow is allowed) and `dst` is `len`
        // words we hold exclusively (`&mut`), so the two cannot overlap.
        // The reads are relaxed byte-wise atomic loads in the sense of the
        // module comment, so the other side's concurrent stores cannot
        // make this a data race.
        unsafe {
            move_bytes(
                src.as_ptr().cast::<u8>(),
                dst.as_mut_ptr().cast::<u8>(),
                src.len() * 8,
            )
        };
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(loom))))]
    for (d, s) in dst.iter_mut().zip(src) {
        // Relaxed: the caller's acquire ordered these after the writes.
        *d = s.load(Ordering::Relaxed);
    }
}

/// Stores `src` into the first `src.len().div_ceil(8)` words of `dst` (ring
/// memory the other side may read at any time), the bytes of a short last
/// word past `src` zeroed, without a data race, as relaxed stores would.
/// The caller orders the copy before whatever publishes it (a release
/// store after it).
#[inline]
pub(crate) fn store_bytes(dst: &[AtomicU64], src: &[u8]) {
    let whole = src.len() / 8;
    assert!(
        src.len().div_ceil(8) <= dst.len(),
        "store_bytes: payload larger than its words"
    );
    let (body, rest) = src.split_at(whole * 8);
    #[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
    {
        // SAFETY: `dst` holds at least `whole` valid `AtomicU64`s (checked
        // above), interior-mutable, so writing them through a raw pointer
        // from a shared borrow is allowed; `body` is `whole * 8` readable
        // bytes of a `&[u8]`, which cannot overlap atomics we were handed
        // as atomics. The writes are relaxed byte-wise atomic stores in the
        // sense of the module comment, so the other side's concurrent loads
        // cannot make this a data race.
        unsafe {
            move_bytes(
                body.as_ptr(),
                dst.as_ptr().cast::<u8>().cast_mut(),
                body.len(),
            )
        };
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(loom))))]
    for (w, chunk) in dst.iter().zip(body.chunks_exact(8)) {
        let v = u64::from_ne_bytes(chunk.try_into().expect("8-byte chunk"));
        // Relaxed: the caller's release store orders these.
        w.store(v, Ordering::Relaxed);
    }
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        // Relaxed: as above.
        dst[whole].store(u64::from_ne_bytes(last), Ordering::Relaxed);
    }
}

/// Moves `n` bytes (a multiple of 8) from `src` to `dst`: 16-byte moves
/// below [`STRING_MOVE_MIN_BYTES`], one `rep movsb` from there on.
///
/// # Safety
/// `src` is valid for `n` bytes of reads and `dst` for `n` bytes of writes,
/// the two do not overlap, and reading `src` and writing `dst` byte by byte
/// with relaxed atomics would be sound (each is either memory we own or
/// atomics the other side may touch concurrently).
#[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
#[inline]
unsafe fn move_bytes(src: *const u8, dst: *mut u8, n: usize) {
    debug_assert_eq!(n % 8, 0);
    if n >= STRING_MOVE_MIN_BYTES {
        // SAFETY: the caller's contract. `rep movsb` moves exactly `n`
        // bytes from `rsi` to `rdi`, touches no other memory and no stack,
        // and needs the direction flag clear, which the ABI guarantees on
        // entry to any code and it leaves so; it changes no flags.
        unsafe {
            std::arch::asm!(
                "rep movsb",
                inout("rcx") n => _,
                inout("rsi") src => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags),
            );
        }
        return;
    }
    // SAFETY: the caller's contract. The block reads `[src, src + n)` and
    // writes `[dst, dst + n)` and nothing else: 64 bytes a turn while at
    // least 64 are left, then 16 at a time, then one 8-byte word if `n` is
    // an odd number of words. No stack; `movdqu` needs no alignment.
    unsafe {
        std::arch::asm!(
            "2:",
            "cmp {n}, 64",
            "jb 3f",
            "movdqu {a}, [{s}]",
            "movdqu {b}, [{s} + 16]",
            "movdqu {c}, [{s} + 32]",
            "movdqu {d}, [{s} + 48]",
            "movdqu [{t}], {a}",
            "movdqu [{t} + 16], {b}",
            "movdqu [{t} + 32], {c}",
            "movdqu [{t} + 48], {d}",
            "add {s}, 64",
            "add {t}, 64",
            "sub {n}, 64",
            "jmp 2b",
            "3:",
            "cmp {n}, 16",
            "jb 4f",
            "movdqu {a}, [{s}]",
            "movdqu [{t}], {a}",
            "add {s}, 16",
            "add {t}, 16",
            "sub {n}, 16",
            "jmp 3b",
            "4:",
            "test {n}, {n}",
            "jz 5f",
            "mov {w}, qword ptr [{s}]",
            "mov qword ptr [{t}], {w}",
            "5:",
            n = inout(reg) n => _,
            s = inout(reg) src => _,
            t = inout(reg) dst => _,
            w = out(reg) _,
            a = out(xmm_reg) _,
            b = out(xmm_reg) _,
            c = out(xmm_reg) _,
            d = out(xmm_reg) _,
            options(nostack),
        );
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn words(len: usize) -> Vec<AtomicU64> {
        (0..len as u64)
            .map(|i| AtomicU64::new(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xff))
            .collect()
    }

    /// Every path (word, 16-byte and 64-byte moves, string move) copies
    /// every word and nothing past the end.
    #[test]
    fn loads_every_word_at_every_size_class() {
        for len in [0, 1, 2, 3, 7, 8, 9, 15, 64, 255, 256, 257, 512] {
            let src = words(len);
            let mut dst = vec![0u64; len + 1];
            load_words(&src, &mut dst[..len]);
            for (i, (d, s)) in dst.iter().zip(&src).enumerate() {
                assert_eq!(*d, s.load(Ordering::Relaxed), "word {i} of {len}");
            }
            assert_eq!(dst[len], 0, "wrote past the end at {len} words");
        }
    }

    /// Every length stores its bytes, a zero-padded short last word, and
    /// leaves the words after it alone.
    #[test]
    fn stores_every_byte_at_every_length() {
        for len in (0usize..300).chain([2047, 2048, 2049, 4096]) {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let dst = words(len.div_ceil(8) + 1);
            let sentinel = dst[len.div_ceil(8)].load(Ordering::Relaxed);
            store_bytes(&dst, &src);
            let got: Vec<u8> = dst[..len.div_ceil(8)]
                .iter()
                .flat_map(|w| w.load(Ordering::Relaxed).to_ne_bytes())
                .collect();
            assert_eq!(&got[..len], &src[..], "payload of {len} bytes");
            assert!(got[len..].iter().all(|&b| b == 0), "padding at {len}");
            assert_eq!(
                dst[len.div_ceil(8)].load(Ordering::Relaxed),
                sentinel,
                "past the end at {len}"
            );
        }
    }
}
