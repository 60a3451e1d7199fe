//! Atoms used by the NIF, created once at load time.

rustler::atoms! {
    ok,
    error,
    normal,
    data,
    eof,
    eol,
    noeol,
    closed,
    connected,
    badarg,
    notsup,
    edc = "$edc",
    edc_exit = "$edc_exit",
    edc_error = "$edc_error",
    edc_actions = "$edc_actions",
    edc_async = "$edc_async",
    edc_flushing = "$edc_flushing",
    flushing,
    kill,
    edc_down = "$edc_down",
    exit_port,
    deliver,
    start_timer,
    start_created,
    undefined,
    enoent,
    not_elf,
    no_driver_init,
    unsupported_functions,
    open_error,
    copy_error,
    bind_error,
    driver_init_failed,
    badsig,
    bad_value,
    driver_incorrect_version,
    bad_driver_name,
    init_failed,
    inconsistent,
    not_loaded,
    not_loaded_by_this_process,
    unloading,
    permanent,
    locking,
    queue_size,
    parallelism,
    output,
    input,
    id,
    name,
    driver,
    port_level,
    driver_api_misuse,
    select,
    ready_input,
    ready_output,
    unbusy,
    busy,
    edc_busy = "$edc_busy",
    default,
    disabled,
}

/// A cache of the atoms `driver_mk_atom` made, keyed by the name's bytes
/// (never by the pointer: a driver may pass a buffer whose contents
/// change between calls). Natively every `driver_mk_atom` looks the name
/// up in the VM's atom table under its read lock; atoms are never freed,
/// so an atom word, once known, stays valid for the life of the VM.
///
/// The cache is direct-mapped: a name hashes to one slot, which is filled
/// once (the first name that finds it empty) and never changed or freed,
/// so readers need no lock and no reference count; a name whose slot holds
/// another name always goes to the VM. At most [`AtomCache::SLOTS`]
/// entries of 64 bytes, names of up to [`AtomCache::MAX_NAME`] bytes.
pub(crate) struct AtomCache {
    slots: [std::sync::atomic::AtomicPtr<AtomEntry>; AtomCache::SLOTS],
}

/// One cached atom: its word and its name.
struct AtomEntry {
    atom: usize,
    len: usize,
    name: [u8; AtomCache::MAX_NAME],
}

impl AtomCache {
    /// Slots of the table.
    pub(crate) const SLOTS: usize = 256;
    /// Longest name cached (the entry is one cache line).
    pub(crate) const MAX_NAME: usize = 48;

    /// An empty cache.
    pub(crate) const fn new() -> AtomCache {
        AtomCache {
            slots: [const { std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()) };
                AtomCache::SLOTS],
        }
    }

    /// The atom named `name`: from the cache, or made by `make` (0: no
    /// atom, not cached) and cached when its slot is free.
    #[inline]
    pub(crate) fn get(&self, name: &[u8], make: impl FnOnce(&[u8]) -> usize) -> usize {
        use std::sync::atomic::Ordering;
        let slot = &self.slots[Self::slot_of(name)];
        let entry = slot.load(Ordering::Acquire);
        if !entry.is_null() {
            // SAFETY: a non-NULL slot points at an entry published with
            // Release below (this Acquire load sees it whole), never
            // written again and never freed while `self` lives (entries
            // are freed only by Drop, which has `&mut self`).
            let entry = unsafe { &*entry };
            if entry.name.get(..entry.len) == Some(name) {
                return entry.atom;
            }
            return make(name);
        }
        let atom = make(name);
        if atom != 0 && name.len() <= Self::MAX_NAME {
            let mut new = Box::new(AtomEntry {
                atom,
                len: name.len(),
                name: [0; Self::MAX_NAME],
            });
            new.name[..name.len()].copy_from_slice(name);
            let new = Box::into_raw(new);
            let published = slot.compare_exchange(
                std::ptr::null_mut(),
                new,
                Ordering::Release,
                Ordering::Relaxed,
            );
            if published.is_err() {
                // SAFETY: `new` came from Box::into_raw just above and was
                // not published (another thread filled the slot first).
                drop(unsafe { Box::from_raw(new) });
            }
        }
        atom
    }

    /// The slot of `name` (FNV-1a).
    fn slot_of(name: &[u8]) -> usize {
        let mut h: u32 = 0x811c_9dc5;
        for &b in name {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        (h ^ (h >> 16)) as usize % Self::SLOTS
    }
}

impl Drop for AtomCache {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            let entry = *slot.get_mut();
            if !entry.is_null() {
                // SAFETY: published entries come from Box::into_raw and are
                // freed only here, once (`&mut self`: no reader is left).
                drop(unsafe { Box::from_raw(entry) });
            }
        }
    }
}

/// The cache of `driver_mk_atom` (see [`AtomCache`]).
pub(crate) static DRIVER_ATOMS: AtomCache = AtomCache::new();

#[cfg(test)]
mod tests {
    use super::AtomCache;
    use std::cell::Cell;

    /// A fake atom table: each name gets a word derived from its bytes.
    fn word(name: &[u8]) -> usize {
        name.iter()
            .fold(0xB, |w, &b| (w << 8 | usize::from(b)) | 0xB)
    }

    #[test]
    fn a_hit_skips_the_vm_and_a_changed_buffer_gets_its_own_atom() {
        let cache = AtomCache::new();
        let made = Cell::new(0);
        let make = |name: &[u8]| {
            made.set(made.get() + 1);
            word(name)
        };
        // One buffer, as a driver's stack buffer: same pointer, contents
        // changed between calls.
        let mut buf = *b"abc";
        assert_eq!(cache.get(&buf, make), word(b"abc"));
        assert_eq!(cache.get(&buf, make), word(b"abc"));
        assert_eq!(made.get(), 1, "the second call is a hit");
        buf[2] = b'd';
        assert_eq!(cache.get(&buf, make), word(b"abd"));
        buf[2] = b'c';
        assert_eq!(cache.get(&buf, make), word(b"abc"));
        // A prefix or an extension of a cached name is another name.
        assert_eq!(cache.get(b"ab", make), word(b"ab"));
        assert_eq!(cache.get(b"abcd", make), word(b"abcd"));
        assert_eq!(cache.get(b"", make), word(b""));
    }

    /// Threads racing to fill the same slots all get the right atoms (the
    /// losers' entries are dropped, the winners' read whole).
    #[test]
    fn racing_threads_get_the_right_atoms() {
        let cache = AtomCache::new();
        let names: Vec<Vec<u8>> = (0..64).map(|i| format!("r{i}").into_bytes()).collect();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (cache, names) = (&cache, &names);
                s.spawn(move || {
                    for round in 0..3 {
                        for i in 0..names.len() {
                            let name = &names[(i + t * 7 + round) % names.len()];
                            assert_eq!(cache.get(name, word), word(name));
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn failures_long_names_and_collisions_are_not_cached() {
        let cache = AtomCache::new();
        let made = Cell::new(0);
        let count = |w: usize| {
            made.set(made.get() + 1);
            w
        };
        assert_eq!(cache.get(b"bad", |_| count(0)), 0);
        assert_eq!(cache.get(b"bad", |_| count(7)), 7, "0 was not cached");
        let long = [b'x'; AtomCache::MAX_NAME + 1];
        assert_eq!(cache.get(&long, |_| count(9)), 9);
        assert_eq!(cache.get(&long, |_| count(10)), 10, "too long to cache");
        // Many names share slots: every one still gets its own atom.
        let names: Vec<Vec<u8>> = (0..4 * AtomCache::SLOTS)
            .map(|i| format!("n{i}").into_bytes())
            .collect();
        for _ in 0..2 {
            for name in &names {
                assert_eq!(cache.get(name, word), word(name));
            }
        }
    }
}
