//! [`InlineVec`]: a vector whose first `N` elements live inside it (on the
//! stack of the API call), so that the usual small specification is
//! checked and built without `malloc`; longer ones move to the heap.

use std::mem::MaybeUninit;

/// A vector of `Copy` elements: the first `N` inline, then all of them in
/// a `Vec` (moved there when the `N + 1`-th is pushed).
pub struct InlineVec<T: Copy, const N: usize> {
    /// Elements while not spilled: `inline[..len]` are initialized.
    len: usize,
    inline: [MaybeUninit<T>; N],
    /// All elements once spilled (`len` is then unused).
    heap: Option<Vec<T>>,
}

impl<T: Copy, const N: usize> InlineVec<T, N> {
    /// An empty vector (no allocation).
    #[inline]
    pub fn new() -> Self {
        InlineVec {
            len: 0,
            inline: [const { MaybeUninit::uninit() }; N],
            heap: None,
        }
    }

    /// Appends `value`.
    #[inline]
    pub fn push(&mut self, value: T) {
        match &mut self.heap {
            None if self.len < N => {
                self.inline[self.len].write(value);
                self.len += 1;
            }
            None => self.spill().push(value),
            Some(heap) => heap.push(value),
        }
    }

    /// Moves the inline elements to the heap.
    #[cold]
    fn spill(&mut self) -> &mut Vec<T> {
        let mut heap = Vec::with_capacity(2 * N.max(4));
        heap.extend_from_slice(self.as_slice());
        self.heap.insert(heap)
    }

    /// The elements.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        match &self.heap {
            Some(heap) => heap,
            // SAFETY: inline[..len] were initialized by push (len <= N),
            // and MaybeUninit<T> has T's layout.
            None => unsafe {
                std::slice::from_raw_parts(self.inline.as_ptr().cast::<T>(), self.len)
            },
        }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.heap {
            Some(heap) => heap.len(),
            None => self.len,
        }
    }

    /// True when there is no element.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the first `len` elements (no-op if there are not more).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        match &mut self.heap {
            Some(heap) => heap.truncate(len),
            None => self.len = self.len.min(len),
        }
    }

    /// Removes and returns the last element.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let last = *self.as_slice().last()?;
        self.truncate(self.len() - 1);
        Some(last)
    }

    /// True once the elements have moved to the heap.
    pub fn spilled(&self) -> bool {
        self.heap.is_some()
    }
}

impl<T: Copy, const N: usize> Default for InlineVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy, const N: usize> std::ops::Deref for InlineVec<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Copy + std::fmt::Debug, const N: usize> std::fmt::Debug for InlineVec<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: Copy + PartialEq, const N: usize> PartialEq for InlineVec<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::InlineVec;

    #[test]
    fn inline_then_heap_keeps_order_pops_and_truncates() {
        let mut v: InlineVec<u32, 4> = InlineVec::new();
        assert!(v.is_empty());
        for i in 0..4 {
            v.push(i);
        }
        assert!(!v.spilled());
        assert_eq!(v.as_slice(), &[0, 1, 2, 3]);
        assert_eq!(v.pop(), Some(3));
        v.push(3);
        v.push(4);
        assert!(v.spilled(), "the fifth element moves all to the heap");
        assert_eq!(v.as_slice(), &[0, 1, 2, 3, 4]);
        for i in 5..100 {
            v.push(i);
        }
        assert_eq!(v.len(), 100);
        assert_eq!(v.as_slice(), (0..100).collect::<Vec<_>>().as_slice());
        v.truncate(2);
        assert_eq!(v.as_slice(), &[0, 1]);
        assert_eq!(v.pop(), Some(1));
        assert_eq!(v.pop(), Some(0));
        assert_eq!(v.pop(), None);
        let mut w: InlineVec<u32, 4> = InlineVec::new();
        w.push(7);
        w.truncate(5);
        assert_eq!(w.as_slice(), &[7]);
    }
}
