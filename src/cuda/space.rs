//! Bookkeeping of the free bytes of a reserved allocation: first fit, with
//! neighbours merged when given back. Pure arithmetic, no driver call.

/// The free ranges of an allocation of `len` bytes, sorted by offset and
/// never adjacent (adjacent ones are merged).
#[derive(Debug)]
pub(crate) struct FreeSpace {
    free: Vec<(usize, usize)>,
}

impl FreeSpace {
    /// All of `len` bytes free.
    pub(crate) fn new(len: usize) -> Self {
        Self {
            free: if len == 0 { Vec::new() } else { vec![(0, len)] },
        }
    }

    /// Takes `bytes` (> 0) at an offset that is a multiple of `align` (a
    /// power of two), from the first free range that holds them; `None`
    /// when none does.
    pub(crate) fn take(&mut self, bytes: usize, align: usize) -> Option<usize> {
        debug_assert!(bytes > 0 && align.is_power_of_two());
        let (i, start, at) = self
            .free
            .iter()
            .enumerate()
            .find_map(|(i, &(start, len))| {
                let at = start.checked_next_multiple_of(align)?;
                (at.checked_add(bytes)? <= start + len).then_some((i, start, at))
            })?;
        let end = start + self.free[i].1;
        // What is left before and after the taken bytes stays free.
        let mut rest = Vec::with_capacity(2);
        if at > start {
            rest.push((start, at - start));
        }
        if at + bytes < end {
            rest.push((at + bytes, end - at - bytes));
        }
        self.free.splice(i..=i, rest);
        Some(at)
    }

    /// Gives back `bytes` at `offset`, taken earlier with [`Self::take`].
    pub(crate) fn give(&mut self, offset: usize, bytes: usize) {
        let i = self.free.partition_point(|&(start, _)| start < offset);
        self.free.insert(i, (offset, bytes));
        // Merge with the next range, then with the previous one.
        if i + 1 < self.free.len() && offset + bytes == self.free[i + 1].0 {
            self.free[i].1 += self.free.remove(i + 1).1;
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == offset {
            self.free[i - 1].1 += self.free.remove(i).1;
        }
    }

    /// The largest free range, in bytes.
    pub(crate) fn largest(&self) -> usize {
        self.free.iter().map(|&(_, len)| len).max().unwrap_or(0)
    }

    /// Free bytes in all.
    #[cfg(test)]
    pub(crate) fn total(&self) -> usize {
        self.free.iter().map(|&(_, len)| len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_first_fit_aligned_and_refuses_what_does_not_fit() {
        let mut space = FreeSpace::new(1000);
        assert_eq!(space.take(100, 128), Some(0));
        // The next aligned offset is 128: bytes 100..128 stay free.
        assert_eq!(space.take(100, 128), Some(128));
        assert_eq!(space.total(), 800);
        assert_eq!(space.take(28, 4), Some(100));
        assert_eq!(space.take(772, 1), Some(228));
        assert_eq!(space.total(), 0);
        assert_eq!(space.take(1, 1), None);
        assert_eq!(FreeSpace::new(0).take(1, 1), None);
        assert_eq!(FreeSpace::new(10).take(usize::MAX, 1), None);
    }

    #[test]
    fn given_back_ranges_merge_and_are_reused() {
        let mut space = FreeSpace::new(4096);
        let a = space.take(1024, 256).expect("a");
        let b = space.take(1024, 256).expect("b");
        let c = space.take(1024, 256).expect("c");
        assert_eq!((a, b, c), (0, 1024, 2048));
        assert_eq!(space.largest(), 1024);
        // Out of order: b, then a (merges with b's range), then c (merges
        // with both and the tail): one range of everything again.
        space.give(b, 1024);
        assert_eq!(space.largest(), 1024);
        space.give(a, 1024);
        assert_eq!(space.largest(), 2048);
        assert_eq!(space.take(2048, 256), Some(0));
        space.give(0, 2048);
        space.give(c, 1024);
        assert_eq!((space.largest(), space.total()), (4096, 4096));
        assert_eq!(space.free, vec![(0, 4096)]);
    }

    /// Many random takes and gives never hand out overlapping bytes and
    /// always end with the whole allocation free again.
    #[test]
    fn random_takes_and_gives_never_overlap() {
        let mut space = FreeSpace::new(1 << 16);
        let mut held: Vec<(usize, usize)> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            if next() % 3 != 0 || held.is_empty() {
                let bytes = 1 + (next() % 3000) as usize;
                let align = 1 << (next() % 9);
                if let Some(at) = space.take(bytes, align) {
                    assert_eq!(at % align, 0);
                    assert!(at + bytes <= 1 << 16);
                    for &(o, n) in &held {
                        assert!(at + bytes <= o || o + n <= at, "overlap");
                    }
                    held.push((at, bytes));
                }
            } else {
                let (o, n) = held.swap_remove((next() as usize) % held.len());
                space.give(o, n);
            }
            let in_use: usize = held.iter().map(|&(_, n)| n).sum();
            assert_eq!(space.total() + in_use, 1 << 16);
        }
        for (o, n) in held.drain(..) {
            space.give(o, n);
        }
        assert_eq!(space.free, vec![(0, 1 << 16)]);
    }
}
