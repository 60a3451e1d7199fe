//! Unit tests of how iodata is cut into I/O vector segments.

use super::*;

fn bin(b: &'static [u8], kind: BinKind) -> Item {
    Item::Bin(b.as_ptr(), b.len(), kind)
}

fn shape(items: &[Item], limit: usize) -> Vec<(bool, usize)> {
    segment(items, limit)
        .1
        .iter()
        .map(|p| match p {
            Piece::Copied { len, .. } => (true, *len),
            Piece::OffHeap { len, .. } => (false, *len),
        })
        .collect()
}

#[test]
fn small_off_heap_binaries_are_own_segments_unless_packed() {
    let off = BinKind::OffHeap(None);
    let items = [
        Item::Byte(b'a'),
        bin(b"xyz", off),
        bin(b"hb", BinKind::Copied),
    ];
    assert_eq!(shape(&items, 0), vec![(true, 1), (false, 3), (true, 2)]);
    assert_eq!(shape(&items, SMALL_IO_BIN_LIMIT), vec![(true, 6)]);
}

#[test]
fn empty_heap_binaries_count_as_runs() {
    let off = BinKind::OffHeap(None);
    let mut items = Vec::new();
    for _ in 0..8 {
        items.push(bin(b"0123456789", off));
        items.push(bin(b"", BinKind::Copied));
    }
    assert_eq!(native_segment_count(&items), 16);
    assert_eq!(shape(&items, 0).len(), 8);
}

/// Pieces of a known `Binary` are lent (the `Binary` itself, at their
/// own offsets: no copy, no reference taken); a piece of an unknown one is
/// copied once into a driver binary of its own.
#[test]
fn known_parents_are_lent_and_unknown_pieces_copied() {
    let parent_bin = DriverBinary::alloc(1000).unwrap();
    let start = parent_bin.data() as usize;
    let parent = Some(Parent {
        key: parent_bin.vm_addr(),
        start,
        end: start + 1000,
    });
    let other: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    let pieces = [
        Some(Piece::OffHeap {
            ptr: (start + 700) as *const u8,
            len: 100,
            parent,
        }),
        Some(Piece::OffHeap {
            ptr: other.as_ptr(),
            len: 300,
            parent: None,
        }),
    ];
    let mut owned = Vec::new();
    let shared = SharedBinaries::new(&pieces, &mut owned);
    assert_eq!(owned.len(), 1);
    let (lent, offset) = shared.place((start + 700) as *const u8, 100, parent, &mut owned);
    assert_eq!((lent, offset), (parent_bin, 700));
    assert_eq!(parent_bin.refc(), 1);
    let (copy, at) = shared.place(other.as_ptr(), 300, None, &mut owned);
    assert_eq!((copy, at, owned.len()), (owned[0], 0, 1));
    // SAFETY: copy is live (released below) and not written meanwhile.
    assert_eq!(unsafe { copy.bytes(0, 300) }, Some(&other[..]));
    for b in owned {
        b.release();
    }
    parent_bin.release();
}
