//! [`Ops`]: where [`super::parse`] puts a checked specification. A
//! specification of up to [`INLINE_OPS`] words (each op takes at least one
//! word) is kept in the buffer itself, on the stack of the API call, so the
//! usual message is checked and built without `malloc`; a longer one gets
//! one `Vec` of its length, never grown.

use std::mem::MaybeUninit;

use super::Op;

/// Specifications of up to this many words keep their ops inline.
pub const INLINE_OPS: usize = 16;

/// The checked specification: its ops, the peak depth of its term stack
/// and its count of `ERL_DRV_EXT2TERM`s.
pub struct Ops {
    /// Ops while inline: `inline[..len]` are initialized.
    inline: [MaybeUninit<Op>; INLINE_OPS],
    len: usize,
    /// All ops when the specification is longer than [`INLINE_OPS`].
    heap: Option<Vec<Op>>,
    /// Most terms on the stack at once while building.
    pub(super) depth: usize,
    /// Number of `ERL_DRV_EXT2TERM` ops.
    pub(super) exts: usize,
}

impl Ops {
    /// No ops (no allocation, nothing written but the counters).
    #[inline]
    pub fn new() -> Ops {
        Ops {
            inline: [const { MaybeUninit::uninit() }; INLINE_OPS],
            len: 0,
            heap: None,
            depth: 0,
            exts: 0,
        }
    }

    /// Empties `self` for a specification of `words` words and returns
    /// room for its ops: at least `words` slots.
    pub(super) fn room(&mut self, words: usize) -> &mut [MaybeUninit<Op>] {
        self.len = 0;
        self.depth = 0;
        self.exts = 0;
        if words <= INLINE_OPS {
            self.heap = None;
            return &mut self.inline;
        }
        let heap = self.heap.insert(Vec::with_capacity(words));
        &mut heap.spare_capacity_mut()[..words]
    }

    /// Records that the first `len` slots of [`room`](Self::room) are
    /// written.
    ///
    /// # Safety
    /// The first `len` slots `room` returned have been initialized, and
    /// `self` was not changed since.
    pub(super) unsafe fn set_len(&mut self, len: usize) {
        match &mut self.heap {
            // SAFETY: the caller initialized the first len slots of the
            // spare capacity of this empty Vec (at least len long).
            Some(heap) => unsafe { heap.set_len(len) },
            None => self.len = len,
        }
    }
}

impl Default for Ops {
    fn default() -> Ops {
        Ops::new()
    }
}

impl std::ops::Deref for Ops {
    type Target = [Op];

    #[inline]
    fn deref(&self) -> &[Op] {
        match &self.heap {
            Some(heap) => heap,
            // SAFETY: inline[..len] were initialized (set_len's contract;
            // len <= INLINE_OPS), and MaybeUninit<Op> has Op's layout.
            None => unsafe {
                std::slice::from_raw_parts(self.inline.as_ptr().cast::<Op>(), self.len)
            },
        }
    }
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
