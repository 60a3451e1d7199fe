//! The references drivers hold to driver binaries, and their bytes, for
//! `erl_driver_compat:info/0`: `driver_alloc_binary` and
//! `driver_binary_inc_refc` add one, `driver_free_binary`,
//! `driver_binary_dec_refc` and a binary-mode control reply (which hands
//! the driver's reference to the reply) take one away. References held by
//! Erlang terms are the VM's (`erlang:memory(binary)`): the VM frees a
//! binary without telling us.
//!
//! Counted per thread, with a plain load and store of the thread's own
//! counters (no locked instruction on the driver's path: two global atomic
//! counters cost ~13 ns per control call with a binary reply); reading
//! sums the threads' counters under a lock. A thread's counts move to
//! [`RETIRED`] when it ends.

use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// One thread's counts (may be negative: a reference taken on one thread
/// can be given up on another).
struct Slot {
    refs: AtomicIsize,
    bytes: AtomicIsize,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            refs: AtomicIsize::new(0),
            bytes: AtomicIsize::new(0),
        }
    }
}

/// The counters of the running threads.
static SLOTS: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());
/// The counts of threads that ended (and of updates made while a thread's
/// own counters were being torn down).
static RETIRED: Slot = Slot::new();

/// This thread's registration in [`SLOTS`].
struct Mine(Arc<Slot>);

impl Mine {
    fn register() -> Mine {
        let slot = Arc::new(Slot::new());
        SLOTS.lock().push(Arc::clone(&slot));
        Mine(slot)
    }
}

impl Drop for Mine {
    fn drop(&mut self) {
        // Under the lock: a reader never sees the counts twice or not at all.
        let mut slots = SLOTS.lock();
        RETIRED
            .refs
            .fetch_add(self.0.refs.load(Ordering::Relaxed), Ordering::Relaxed);
        RETIRED
            .bytes
            .fetch_add(self.0.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
        slots.retain(|s| !Arc::ptr_eq(s, &self.0));
    }
}

thread_local! {
    static MINE: Mine = Mine::register();
}

/// Adds `refs` references of `bytes` bytes in all (negative: removes).
pub fn add(refs: isize, bytes: isize) {
    let done = MINE.try_with(|m| {
        // Only this thread writes its slot: load and store lose nothing.
        let slot = &m.0;
        slot.refs
            .store(slot.refs.load(Ordering::Relaxed) + refs, Ordering::Relaxed);
        slot.bytes.store(
            slot.bytes.load(Ordering::Relaxed) + bytes,
            Ordering::Relaxed,
        );
    });
    if done.is_err() {
        RETIRED.refs.fetch_add(refs, Ordering::Relaxed);
        RETIRED.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// `(references, bytes)` over all threads (0 when a driver gave up more
/// references than it took).
pub fn totals() -> (usize, usize) {
    let slots = SLOTS.lock();
    let mut refs = RETIRED.refs.load(Ordering::Relaxed);
    let mut bytes = RETIRED.bytes.load(Ordering::Relaxed);
    for s in slots.iter() {
        refs += s.refs.load(Ordering::Relaxed);
        bytes += s.bytes.load(Ordering::Relaxed);
    }
    (
        usize::try_from(refs).unwrap_or(0),
        usize::try_from(bytes).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts made on a thread that ended are kept. (Other tests may
    /// count meanwhile, by one reference at a time: the 1000 here stand
    /// out.)
    #[test]
    fn counts_survive_their_thread() {
        std::thread::spawn(|| add(1000, 1000 * 64)).join().unwrap();
        let (refs, bytes) = totals();
        add(-1000, -1000 * 64);
        assert!(refs >= 999, "{refs}");
        assert!(bytes >= 999 * 64, "{bytes}");
    }
}
