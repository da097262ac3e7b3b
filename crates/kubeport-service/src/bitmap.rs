//! An allocation bitmap with kube's two bands (`randomScanStrategyWithOffset`): automatic
//! allocation picks a random start in the upper band `[offset, max)`, takes the first free
//! item scanning forward with wrap-around, and only when that band is full does the same in
//! the lower band `[0, offset)`. Explicit requests may take any item.
//!
//! A second level of bits marks full 64-bit words, so finding a free item skips full words
//! 64 at a time and stays cheap as the range fills.

use rand::Rng;

#[derive(Clone, Debug)]
pub(crate) struct Bitmap {
    /// Bit i set = item i taken. Padding bits past `max` are set so they are never free.
    words: Vec<u64>,
    /// Bit w set = `words[w]` is all ones.
    full: Vec<u64>,
    max: usize,
    offset: usize,
    count: usize,
    /// Items taken in the upper band.
    upper_count: usize,
}

impl Bitmap {
    /// `max` items, of which `[0, offset)` form the static (lower) band.
    pub(crate) fn new(max: usize, offset: usize) -> Self {
        let nwords = max.div_ceil(64).max(1);
        let mut words = vec![0u64; nwords];
        let used_in_last = max - (nwords - 1) * 64;
        if used_in_last < 64 {
            words[nwords - 1] = !0u64 << used_in_last;
        }
        let mut b = Bitmap {
            words,
            full: vec![0u64; nwords.div_ceil(64)],
            max,
            offset: offset.min(max),
            count: 0,
            upper_count: 0,
        };
        for w in 0..nwords {
            b.update_full(w);
        }
        b
    }

    fn update_full(&mut self, w: usize) {
        let bit = 1u64 << (w % 64);
        if self.words[w] == !0u64 {
            self.full[w / 64] |= bit;
        } else {
            self.full[w / 64] &= !bit;
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn has(&self, i: usize) -> bool {
        i < self.max && self.words[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// Takes item `i`; false if it was already taken or is out of range.
    pub(crate) fn set(&mut self, i: usize) -> bool {
        if i >= self.max || self.has(i) {
            return false;
        }
        self.words[i / 64] |= 1u64 << (i % 64);
        self.update_full(i / 64);
        self.count += 1;
        if i >= self.offset {
            self.upper_count += 1;
        }
        true
    }

    /// Frees item `i`; freeing a free item is a no-op.
    pub(crate) fn clear(&mut self, i: usize) {
        if !self.has(i) {
            return;
        }
        self.words[i / 64] &= !(1u64 << (i % 64));
        self.update_full(i / 64);
        self.count -= 1;
        if i >= self.offset {
            self.upper_count -= 1;
        }
    }

    /// `AllocateNext`: a free item, preferring the upper band; `None` when full.
    pub(crate) fn allocate_next(&mut self, rng: &mut impl Rng) -> Option<usize> {
        if self.count >= self.max {
            return None;
        }
        let upper = self.max - self.offset;
        let mut found = None;
        if self.upper_count < upper {
            let start = self.offset + rng.random_range(0..upper);
            found = self
                .find_free(start, self.max)
                .or_else(|| self.find_free(self.offset, start));
        }
        if found.is_none() && self.offset > 0 && self.count - self.upper_count < self.offset {
            let start = rng.random_range(0..self.offset);
            found = self
                .find_free(start, self.offset)
                .or_else(|| self.find_free(0, start));
        }
        let i = found?;
        self.set(i);
        Some(i)
    }

    /// The first free item in `[lo, hi)`.
    fn find_free(&self, lo: usize, hi: usize) -> Option<usize> {
        if lo >= hi {
            return None;
        }
        let last = (hi - 1) / 64;
        let mut w = lo / 64;
        let mut free = !self.words[w] & (!0u64 << (lo % 64));
        loop {
            if w == last {
                let top = hi - last * 64;
                if top < 64 {
                    free &= (1u64 << top) - 1;
                }
                return (free != 0).then(|| w * 64 + free.trailing_zeros() as usize);
            }
            if free != 0 {
                return Some(w * 64 + free.trailing_zeros() as usize);
            }
            w = self.next_non_full_word(w + 1, last)?;
            free = !self.words[w];
        }
    }

    /// The first word index in `[from, to]` that has a free bit.
    fn next_non_full_word(&self, from: usize, to: usize) -> Option<usize> {
        let mut s = from / 64;
        let mut open = !self.full[s] & (!0u64 << (from % 64));
        loop {
            if open != 0 {
                let w = s * 64 + open.trailing_zeros() as usize;
                return (w <= to).then_some(w);
            }
            s += 1;
            if s * 64 > to {
                return None;
            }
            open = !self.full[s];
        }
    }

    /// Taken items in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(move |(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(w * 64 + b)
            })
            .filter(move |&i| i < self.max)
        })
    }

    /// An empty bitmap of the same shape.
    pub(crate) fn empty_like(&self) -> Self {
        Bitmap::new(self.max, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn upper_band_first_then_lower_then_full() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Bitmap::new(200, 50);
        for _ in 0..150 {
            let i = b.allocate_next(&mut rng).unwrap();
            assert!(
                i >= 50,
                "automatic allocation used the static band while the upper band had room: {i}"
            );
        }
        for _ in 0..50 {
            assert!(b.allocate_next(&mut rng).unwrap() < 50);
        }
        assert_eq!(b.allocate_next(&mut rng), None);
        assert_eq!(b.count(), 200);
        b.clear(123);
        assert_eq!(b.allocate_next(&mut rng), Some(123));
    }

    #[test]
    fn explicit_set_and_iteration() {
        let mut b = Bitmap::new(130, 0);
        assert!(b.set(0) && b.set(64) && b.set(129));
        assert!(!b.set(64) && !b.set(130));
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 64, 129]);
        b.clear(64);
        b.clear(64);
        assert_eq!(b.count(), 2);
    }

    #[test]
    fn finds_the_last_free_item_in_a_large_map() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = Bitmap::new(70_000, 256);
        for i in 0..70_000 {
            if i != 65_537 {
                b.set(i);
            }
        }
        assert_eq!(b.allocate_next(&mut rng), Some(65_537));
        assert_eq!(b.allocate_next(&mut rng), None);
    }
}
