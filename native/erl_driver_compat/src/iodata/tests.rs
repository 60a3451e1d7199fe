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

#[test]
fn pieces_of_one_parent_keep_their_distance_up_to_the_gap_limit() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let start = data.as_ptr() as usize;
    let parent = Some(Parent {
        key: 1,
        start,
        end: start + data.len(),
    });
    let piece = |off: usize| {
        Some(Piece::OffHeap {
            ptr: data[off..].as_ptr(),
            len: 100,
            parent,
        })
    };
    let pieces = [piece(1000), piece(0), piece(150_000)];
    let mut owned = Vec::new();
    let shared = SharedBinaries::new(&pieces, &mut owned);
    assert_eq!(owned.len(), 1);
    let place = |off: usize| shared.place(data[off..].as_ptr(), 100, parent, &mut Vec::new());
    let (bin, near) = place(1000);
    let (_, first) = place(0);
    let (_, far) = place(150_000);
    assert_eq!((first, near, far), (0, 1000, 1100));
    assert_eq!(bin.size(), 1200);
    // SAFETY: bin is live (released below, after the comparisons) and
    // not written meanwhile.
    let copied = unsafe { bin.bytes(0, 1200) }.unwrap();
    assert_eq!(&copied[..1100], &data[..1100]);
    assert_eq!(&copied[1100..], &data[150_000..150_100]);
    for b in owned {
        b.release();
    }
}
