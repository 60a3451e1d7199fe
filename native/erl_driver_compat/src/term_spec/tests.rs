//! Unit tests of checking `ErlDrvTermData` specs before any term is built.

use super::*;

/// Atoms are words ending in 0xB, pids in 0x3 (as the runtime tags
/// them); port 0x103 is a pid that is also an open port.
struct Fake;
const ATOM: usize = 0x40B;
const PID: usize = 0x203;
const PORT: usize = 0x103;

impl Words for Fake {
    fn is_atom(&self, w: TermData) -> bool {
        w & 0x3F == 0x0B
    }
    fn is_pid(&self, w: TermData) -> bool {
        w & 0xF == 0x3
    }
    fn is_port(&self, w: TermData) -> bool {
        w == PORT
    }
}

fn check(spec: &[TermData]) -> Result<Vec<Op>, SpecError> {
    let mut ops = Ops::new();
    // SAFETY: every test spec carries NULL or pointers to live locals
    // of the test (values, strings) that outlive this call.
    unsafe { parse_words(spec, &Fake, &mut ops) }.map(|()| ops.to_vec())
}

fn err(spec: &[TermData]) -> SpecError {
    check(spec).expect_err("must be rejected")
}

#[test]
fn empty_and_null_specs_are_not_one_term() {
    assert_eq!(err(&[]), SpecError::NotOneTerm);
    // SAFETY: NULL with any length is rejected before reading.
    let null = unsafe { parse(std::ptr::null(), 3, &Fake, &mut Ops::new()) };
    assert_eq!(null, Err(SpecError::NotOneTerm));
    let one = [ERL_DRV_NIL];
    // SAFETY: a negative length is rejected before reading.
    let negative = unsafe { parse(one.as_ptr(), -1, &Fake, &mut Ops::new()) };
    assert_eq!(negative, Err(SpecError::NotOneTerm));
    let mut ops = Ops::new();
    // SAFETY: `one` is one readable word, live for the call.
    let nil = unsafe { parse(one.as_ptr(), 1, &Fake, &mut ops) };
    assert_eq!(nil.map(|()| ops.to_vec()), Ok(vec![Op::Nil]));
}

#[test]
fn every_scalar_tag_takes_its_arguments() {
    let i = -5i64;
    let u = u64::MAX;
    let f = 2.5f64;
    let s = b"abc";
    let spec = [
        ERL_DRV_NIL,
        ERL_DRV_ATOM,
        ATOM,
        ERL_DRV_INT,
        -1isize as usize,
        ERL_DRV_UINT,
        usize::MAX,
        ERL_DRV_INT64,
        &i as *const i64 as usize,
        ERL_DRV_UINT64,
        &u as *const u64 as usize,
        ERL_DRV_PORT,
        PORT,
        ERL_DRV_PID,
        PID,
        ERL_DRV_FLOAT,
        &f as *const f64 as usize,
        ERL_DRV_STRING,
        s.as_ptr() as usize,
        3,
        ERL_DRV_STRING_CONS,
        s.as_ptr() as usize,
        2,
        ERL_DRV_BUF2BINARY,
        0,
        0,
        ERL_DRV_EXT2TERM,
        s.as_ptr() as usize,
        3,
        ERL_DRV_TUPLE,
        12,
    ];
    let ops = check(&spec).expect("valid");
    assert_eq!(ops.len(), 14);
    assert_eq!(ops[2], Op::Int(-1));
    assert_eq!(ops[4], Op::Int64(-5));
    assert_eq!(ops[5], Op::Uint64(u64::MAX));
    assert_eq!(ops[8], Op::Float(2.5));
    assert_eq!(ops[13], Op::Tuple(12));
}

#[test]
fn unknown_tags_and_short_arrays() {
    assert_eq!(err(&[0]), SpecError::UnknownTag { at: 0 });
    assert_eq!(err(&[ERL_DRV_NIL, 18]), SpecError::UnknownTag { at: 1 });
    assert_eq!(err(&[ERL_DRV_ATOM]), SpecError::Short { at: 0 });
    assert_eq!(
        err(&[ERL_DRV_NIL, ERL_DRV_BINARY, 1, 2]),
        SpecError::Short { at: 1 }
    );
    assert_eq!(err(&[ERL_DRV_STRING, 1]), SpecError::Short { at: 0 });
}

#[test]
fn counts_must_balance() {
    assert_eq!(err(&[ERL_DRV_NIL, ERL_DRV_NIL]), SpecError::NotOneTerm);
    assert_eq!(
        err(&[ERL_DRV_NIL, ERL_DRV_TUPLE, 2]),
        SpecError::Underflow { at: 1 }
    );
    assert_eq!(
        err(&[ERL_DRV_NIL, ERL_DRV_LIST, 0]),
        SpecError::BadArgument { at: 1 }
    );
    assert_eq!(
        err(&[ERL_DRV_NIL, ERL_DRV_NIL, ERL_DRV_NIL, ERL_DRV_MAP, 2]),
        SpecError::Underflow { at: 3 }
    );
    let s = b"x";
    assert_eq!(
        err(&[ERL_DRV_STRING_CONS, s.as_ptr() as usize, 1]),
        SpecError::Underflow { at: 0 }
    );
    // Counts are C ints: negative or huge words are rejected.
    assert_eq!(
        err(&[ERL_DRV_NIL, ERL_DRV_TUPLE, usize::MAX]),
        SpecError::BadArgument { at: 1 }
    );
    assert_eq!(
        err(&[ERL_DRV_NIL, ERL_DRV_LIST, 1 << 31]),
        SpecError::BadArgument { at: 1 }
    );
    // The empty tuple and map take nothing; a one-element list is its tail.
    assert!(check(&[ERL_DRV_TUPLE, 0]).is_ok());
    assert!(check(&[ERL_DRV_MAP, 0]).is_ok());
    assert!(check(&[ERL_DRV_NIL, ERL_DRV_LIST, 1]).is_ok());
    assert!(check(&[ERL_DRV_NIL, ERL_DRV_NIL, ERL_DRV_MAP, 1]).is_ok());
}

#[test]
fn named_terms_must_be_what_the_tag_says() {
    assert_eq!(err(&[ERL_DRV_ATOM, PID]), SpecError::BadArgument { at: 0 });
    assert_eq!(err(&[ERL_DRV_PID, ATOM]), SpecError::BadArgument { at: 0 });
    // A pid that is not a port's is not a port.
    assert_eq!(err(&[ERL_DRV_PORT, PID]), SpecError::BadArgument { at: 0 });
}

#[test]
fn pointers_and_lengths() {
    let s = b"abc";
    let p = s.as_ptr() as usize;
    assert_eq!(
        err(&[ERL_DRV_STRING, 0, 3]),
        SpecError::BadArgument { at: 0 }
    );
    // Natively a NULL string is rejected even when empty.
    assert_eq!(
        err(&[ERL_DRV_STRING, 0, 0]),
        SpecError::BadArgument { at: 0 }
    );
    assert_eq!(
        err(&[ERL_DRV_STRING, p, usize::MAX]),
        SpecError::BadArgument { at: 0 }
    );
    assert_eq!(
        err(&[ERL_DRV_BUF2BINARY, 0, 5]),
        SpecError::BadArgument { at: 0 }
    );
    assert!(check(&[ERL_DRV_BUF2BINARY, 0, 0]).is_ok());
    assert_eq!(
        err(&[ERL_DRV_EXT2TERM, p, 0]),
        SpecError::BadArgument { at: 0 }
    );
    assert_eq!(
        err(&[ERL_DRV_EXT2TERM, 0, 3]),
        SpecError::BadArgument { at: 0 }
    );
    for tag in [ERL_DRV_INT64, ERL_DRV_UINT64, ERL_DRV_FLOAT] {
        assert_eq!(err(&[tag, 0]), SpecError::BadArgument { at: 0 });
    }
}

#[test]
fn binaries_must_be_driver_binaries_and_in_bounds() {
    let bin = DriverBinary::alloc(100).expect("alloc");
    let b = bin.as_ptr() as usize;
    assert_eq!(
        check(&[ERL_DRV_BINARY, b, 60, 40]),
        Ok(vec![Op::Binary(bin, 40, 60)])
    );
    assert_eq!(
        err(&[ERL_DRV_BINARY, b, 61, 40]),
        SpecError::BadArgument { at: 0 }
    );
    assert_eq!(
        err(&[ERL_DRV_BINARY, b, usize::MAX, 2]),
        SpecError::BadArgument { at: 0 }
    );
    assert_eq!(
        err(&[ERL_DRV_BINARY, 0, 0, 0]),
        SpecError::BadArgument { at: 0 }
    );
    // A pointer into ordinary memory is not a driver binary.
    let plain = vec![0u64; 1024];
    let inside = plain.as_ptr() as usize + 4096;
    assert_eq!(
        err(&[ERL_DRV_BINARY, inside, 0, 0]),
        SpecError::BadArgument { at: 0 }
    );
    bin.release();
}

#[test]
fn deep_nesting_is_iterative() {
    let mut spec = vec![ERL_DRV_NIL];
    for _ in 0..200_000 {
        spec.extend_from_slice(&[ERL_DRV_TUPLE, 1]);
    }
    assert_eq!(check(&spec).map(|ops| ops.len()), Ok(200_001));
}

/// The peak depth `build` sizes its stack by, and the count of
/// `ERL_DRV_EXT2TERM`s `decode_ext` looks for, inline and on the heap.
#[test]
fn parse_records_the_peak_depth_and_the_external_terms() {
    let parsed = |spec: &[TermData]| {
        let mut ops = Ops::new();
        // SAFETY: the specs carry pointers to live locals of this test.
        unsafe { parse_words(spec, &Fake, &mut ops) }.expect("valid");
        (ops.len(), ops.depth, ops.exts)
    };
    // {term, Port, 42}: three terms on the stack, then one.
    let bench = [
        ERL_DRV_ATOM,
        ATOM,
        ERL_DRV_PORT,
        PORT,
        ERL_DRV_INT,
        42,
        ERL_DRV_TUPLE,
        3,
    ];
    assert_eq!(parsed(&bench), (4, 3, 0));
    let e = [131u8, 106];
    let ext = [
        ERL_DRV_EXT2TERM,
        e.as_ptr() as usize,
        2,
        ERL_DRV_NIL,
        ERL_DRV_EXT2TERM,
        e.as_ptr() as usize,
        2,
        ERL_DRV_TUPLE,
        3,
    ];
    assert_eq!(parsed(&ext), (4, 3, 2));
    // Longer than INLINE_OPS words: the ops go to the heap, same result.
    let mut long = vec![ERL_DRV_NIL; 40];
    long.extend_from_slice(&[ERL_DRV_TUPLE, 40]);
    assert!(long.len() > INLINE_OPS);
    assert_eq!(parsed(&long), (41, 40, 0));
    // A rejected spec after an accepted one leaves no op behind.
    let mut ops = Ops::new();
    // SAFETY: no pointers.
    unsafe { parse_words(&long, &Fake, &mut ops) }.expect("valid");
    // SAFETY: no pointers.
    let bad = unsafe { parse_words(&[ERL_DRV_NIL, ERL_DRV_NIL], &Fake, &mut ops) };
    assert_eq!(bad, Err(SpecError::NotOneTerm));
    assert_eq!((ops.len(), ops.exts), (2, 0));
}
