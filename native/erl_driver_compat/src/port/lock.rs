//! The lock driver callbacks run under ([`PortLock`]): the driver's lock
//! with driver-level locking, the port's own with
//! `ERL_DRV_FLAG_USE_PORT_LOCKING`.
//!
//! A futex word as in Drepper's "Futexes Are Tricky" (mutex 2):
//! `UNLOCKED`, `LOCKED` (held, nobody asleep), `CONTENDED` (held, and a
//! waiter may be asleep on the word), plus `HANDOFF` (released for a
//! waiter that has slept, see below). It differs in one place: the
//! uncontended unlock is a plain release store, not an atomic
//! read-modify-write. On x86 a `lock`ed instruction waits until every
//! store before it has left the store buffer; the callback has just made
//! many (the reply, the context), so the unlock's `lock cmpxchg` was ~10 %
//! of the samples of a `port_control` loop, and a plain store does not
//! wait.
//!
//! # Why it is correct, and the one race it leaves
//!
//! While the lock is held the word is `LOCKED` or `CONTENDED`; only the
//! holder moves it away from those (to `UNLOCKED` or `HANDOFF`); a waiter
//! only moves `LOCKED` to `CONTENDED`, or takes the lock. Mutual
//! exclusion: the lock is taken only by a successful compare-exchange
//! from `UNLOCKED` or `HANDOFF` (one thread wins it), which the holder's
//! release store makes visible only after everything it did under the
//! lock (release/acquire).
//!
//! Fairness: a waiter that has slept on the futex counts as starving
//! (`starving`); while one does, a contended unlock stores `HANDOFF`
//! instead of `UNLOCKED`, which only a thread that has slept may take (a
//! new caller sees the lock taken and waits): so a process that calls
//! again right after each long operation cannot keep a sleeping waiter
//! out (natively the port's tasks run in order). `starving` counts a
//! thread from its first wakeup until it holds the lock, so a `HANDOFF`
//! always has a thread that will take it (at its next wakeup, at most
//! one [`WAIT`] later); no `HANDOFF` is ever overwritten (nobody holds
//! the lock then, and waiters change only `LOCKED`).
//!
//! The unlock reads the word (its own line, so this costs no miss) and,
//! when it is `LOCKED`, stores `UNLOCKED`; when it is `CONTENDED` it swaps
//! in `UNLOCKED` and wakes a sleeper. A waiter marks the word `CONTENDED`
//! (an atomic swap) before it sleeps, and `futex_wait` sleeps only while
//! the word is still `CONTENDED`. The race: a waiter's swap can land
//! between the holder's read of `LOCKED` and the moment its store of
//! `UNLOCKED` becomes visible (x86 lets the store wait in the store
//! buffer; no fence orders the read after the waiter's swap). The store
//! then overwrites `CONTENDED`, nobody is woken, and the waiter, if the
//! kernel read the word before the store reached it, sleeps. So every
//! sleep is bounded ([`WAIT`]): a waiter that times out looks at the word
//! again, and the lost wakeup costs at most one [`WAIT`] of latency,
//! never a deadlock. (The window is a few instructions plus the store's
//! trip to memory; the waiter reaches the kernel's read only after a
//! system call. A fence in the unlock, or a read-modify-write, would
//! close it at the cost this lock exists to avoid.) The waiter also
//! wakes every [`WAIT`] while a callback blocks for long: a few µs of CPU
//! per ms, not a core.
//!
//! Waiting: a contended caller backs off before it looks at the word
//! again: 64 `pause`s (~0.6 µs here), then twice as many each time up to
//! 1024, 8 looks in all (~46 µs), then it sleeps on the futex. Looking
//! rarely matters more than looking soon: each look takes the line from
//! the holder, and a port's operations are short (~45 ns for a
//! `port_control`), so the holder runs several of its callers'
//! operations back to back with the line in its own cache, and the
//! waiter gets its turn at one of its looks (as natively the tasks of a
//! busy port run back to back on one scheduler). Two processes bound to
//! two schedulers doing `port_control` echoes on one port, wall ns per
//! operation (5 rounds, median, over several runs): this schedule 47 to
//! 55, both processes ending within a few ms of each other (native 64
//! to 85); looking after 1, 2, 4 ... 64 `pause`s 88 to 130; after 16 ...
//! 1024, 66 to 75; a `pause` between looks, 102 to 122; the
//! `parking_lot` mutex 109 to 153. The sleep blocks the calling scheduler thread, as
//! the `parking_lot` mutex this replaced did.
//!
//! The word sits alone in its cache line, so that the reads other threads
//! make of what lies near it do not move with every lock and unlock.
//!
//! Tests: `port::lock::tests` (mutual exclusion under many threads, the
//! wakeup of sleepers, a holder that blocks for long, the lost wakeup,
//! the handoff to a sleeping waiter); run them under
//! Miri too (`cargo +nightly miri test --lib port::lock`), which checks
//! the release/acquire pairing and explores interleavings.

use std::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;
/// Released by a holder for a waiter that has slept ("starving"): only
/// such a waiter may take it (see [`PortLock::lock_contended`]).
const HANDOFF: u32 = 3;

/// How long a waiter sleeps before looking at the word again (the bound
/// of a lost wakeup, see the module documentation).
const WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// Looks at the word (each after a growing run of `pause`s, see the
/// module documentation) before sleeping.
const SPINS: u32 = 8;

/// A mutual-exclusion lock without data (see the module documentation).
#[repr(align(64))]
pub struct PortLock {
    state: AtomicU32,
    /// Waiters that have slept at least once and still wait: while there
    /// is one, a contended unlock hands the lock over (`HANDOFF`) instead
    /// of freeing it.
    starving: AtomicU32,
}

impl Default for PortLock {
    fn default() -> PortLock {
        PortLock::new()
    }
}

impl PortLock {
    /// An unlocked lock.
    pub const fn new() -> PortLock {
        PortLock {
            state: AtomicU32::new(UNLOCKED),
            starving: AtomicU32::new(0),
        }
    }

    /// Takes the lock, waiting for it if needed.
    #[inline(always)]
    pub fn lock(&self) {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the lock until the guard drops.
    pub fn guard(&self) -> PortLockGuard<'_> {
        self.lock();
        PortLockGuard(self, std::marker::PhantomData)
    }

    /// True while some thread holds the lock (for tests and assertions).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The calling thread holds the lock (took it with `lock` or a
    /// successful `try_lock`) and releases it once.
    #[inline(always)]
    pub unsafe fn unlock(&self) {
        // Relaxed: only this thread moves the word from LOCKED, so the
        // value read is LOCKED or CONTENDED (set by a waiter).
        if self.state.load(Ordering::Relaxed) == LOCKED {
            // The race with a waiter marking the word now is bounded by
            // WAIT (module documentation).
            self.state.store(UNLOCKED, Ordering::Release);
        } else {
            self.unlock_contended();
        }
    }

    #[cold]
    #[inline(never)]
    fn unlock_contended(&self) {
        // The word is CONTENDED and stays so (waiters only change LOCKED):
        // a store suffices. `starving` is exact here: a waiter leaves it
        // once it holds the lock, before its release, which this thread's
        // acquire saw.
        let next = if self.starving.load(Ordering::Relaxed) > 0 {
            HANDOFF
        } else {
            UNLOCKED
        };
        self.state.store(next, Ordering::Release);
        futex_wake(&self.state);
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        for spin in 0..SPINS {
            for _ in 0..(1u32 << (spin + 6).min(10)) {
                std::hint::spin_loop();
            }
            let seen = self.state.load(Ordering::Relaxed);
            if seen == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            if seen == CONTENDED || seen == HANDOFF {
                // Others sleep already: do not make the line move.
                break;
            }
        }
        self.sleep_until_taken();
    }

    /// The sleeping phase of a contended lock. The lock is taken with
    /// CONTENDED (another waiter may still sleep, so this thread's unlock
    /// must wake it): from UNLOCKED, or from HANDOFF once this thread has
    /// slept. A thread that has slept counts as starving, so that
    /// contended unlocks hand the lock over rather than free it: without
    /// that, a caller that takes the lock again right after its unlock
    /// (a process doing one long `control` after another) would win every
    /// time against a waiter that must first wake up.
    fn sleep_until_taken(&self) {
        let mut starving = false;
        loop {
            let seen = self.state.load(Ordering::Relaxed);
            if seen == UNLOCKED || (seen == HANDOFF && starving) {
                if self
                    .state
                    .compare_exchange(seen, CONTENDED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    break;
                }
                continue;
            }
            let expected = if seen == LOCKED {
                if self
                    .state
                    .compare_exchange(LOCKED, CONTENDED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                CONTENDED
            } else {
                seen
            };
            futex_wait(&self.state, expected, WAIT);
            if !starving {
                starving = true;
                self.starving.fetch_add(1, Ordering::Relaxed);
            }
        }
        if starving {
            // Under the lock: the next holder's acquire sees it.
            self.starving.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Holds a [`PortLock`] until dropped.
pub struct PortLockGuard<'a>(&'a PortLock, std::marker::PhantomData<*const ()>);

impl Drop for PortLockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the guard was made by `PortLock::guard` after taking the
        // lock on this thread (a guard is not Send), and this is the one
        // release.
        unsafe { self.0.unlock() };
    }
}

/// Sleeps while `word` is `expected`, for at most `timeout` (spurious
/// returns are fine: the caller loops).
fn futex_wait(word: &AtomicU32, expected: u32, timeout: std::time::Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT reads the u32 at `word` (a live atomic, aligned)
    // and compares it with `expected` atomically with going to sleep; the
    // timespec is a live local; the other arguments are unused by this op.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &ts as *const libc::timespec,
        )
    };
}

/// Wakes one thread sleeping on `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key (live,
    // aligned) and the count; it touches no memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1u32,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::UnsafeCell;
    use std::sync::Arc;

    /// A counter only ever touched under the lock, without atomics: a
    /// lock that let two threads in would lose increments (and Miri would
    /// report the data race).
    struct Guarded {
        lock: PortLock,
        count: UnsafeCell<u64>,
    }

    // SAFETY: `count` is only touched by the holder of `lock`.
    unsafe impl Sync for Guarded {}

    fn hammer(threads: usize, rounds: u64, long_hold_every: u64) {
        let g = Arc::new(Guarded {
            lock: PortLock::new(),
            count: UnsafeCell::new(0),
        });
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || {
                    for i in 0..rounds {
                        if i % 3 == 0 && g.lock.try_lock() {
                            // SAFETY: locked just above.
                            unsafe { *g.count.get() += 1 };
                            // SAFETY: taken by try_lock on this thread.
                            unsafe { g.lock.unlock() };
                            continue;
                        }
                        let _guard = g.lock.guard();
                        // SAFETY: the guard holds the lock.
                        unsafe { *g.count.get() += 1 };
                        if i % long_hold_every == 0 {
                            // Long enough for the others to sleep.
                            std::thread::sleep(std::time::Duration::from_micros(100));
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // SAFETY: every thread has ended.
        assert_eq!(unsafe { *g.count.get() }, threads as u64 * rounds);
        assert!(!g.lock.is_locked());
    }

    #[test]
    fn many_threads_never_hold_it_at_once() {
        let rounds = if cfg!(miri) { 50 } else { 200_000 };
        hammer(4, rounds, u64::MAX);
    }

    /// As above with a long hold now and then: the waiters sleep, and the
    /// handoff to them (`HANDOFF`, `starving`) runs many times.
    #[test]
    fn sleepers_and_handoffs_keep_mutual_exclusion() {
        let (rounds, every) = if cfg!(miri) { (40, 7) } else { (20_000, 500) };
        hammer(4, rounds, every);
    }

    /// A holder that blocks for long: the waiters sleep (they do not
    /// spin for the whole time) and all get the lock once it is released.
    #[test]
    fn waiters_sleep_through_a_long_hold_and_all_get_in() {
        let lock = Arc::new(PortLock::new());
        lock.lock();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    let _guard = lock.guard();
                })
            })
            .collect();
        // A waiter done spinning marks the word before it sleeps.
        while lock.state.load(Ordering::Relaxed) != CONTENDED {
            std::thread::yield_now();
        }
        // SAFETY: locked above on this thread.
        unsafe { lock.unlock() };
        for w in waiters {
            w.join().unwrap();
        }
        assert!(!lock.is_locked());
    }

    /// A thread that takes the lock again at once after each unlock does
    /// not keep a sleeping waiter out: once the waiter has slept and woken
    /// (starving) and sleeps again, the next unlock hands the lock to it.
    /// The first unlock may free it before the waiter has woken once, so
    /// it gets in at the second unlock at the latest. Without the handoff
    /// the holder wins every round.
    #[test]
    fn a_sleeping_waiter_gets_the_lock_from_a_greedy_holder() {
        use std::sync::atomic::AtomicBool;
        let lock = Arc::new(PortLock::new());
        let got = Arc::new(AtomicBool::new(false));
        lock.lock();
        let waiter = {
            let (lock, got) = (lock.clone(), got.clone());
            std::thread::spawn(move || {
                let _guard = lock.guard();
                got.store(true, Ordering::Relaxed);
            })
        };
        let mut rounds = 0;
        while !got.load(Ordering::Relaxed) && rounds < 20 {
            // Until the waiter sleeps (after its first wakeup, as a
            // starving waiter), or has the lock.
            while !got.load(Ordering::Relaxed)
                && (lock.state.load(Ordering::Relaxed) != CONTENDED
                    || (rounds > 0 && lock.starving.load(Ordering::Relaxed) == 0))
            {
                std::thread::yield_now();
            }
            // SAFETY: this thread holds the lock (taken above or below).
            unsafe { lock.unlock() };
            lock.lock();
            rounds += 1;
        }
        // SAFETY: held since the last lock() above.
        unsafe { lock.unlock() };
        waiter.join().unwrap();
        assert!(rounds <= 2, "the waiter got the lock after {rounds} rounds");
    }

    /// The lost-wakeup race made on purpose: a waiter marks the word
    /// CONTENDED and sleeps, and the holder's unlock overwrites the mark
    /// without waking it (as when the waiter's swap lands between the
    /// unlock's read and its store). The waiter still gets the lock,
    /// after its bounded sleep.
    #[test]
    fn a_lost_wakeup_costs_one_bounded_sleep() {
        let lock = Arc::new(PortLock::new());
        lock.lock();
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                let _guard = lock.guard();
            })
        };
        while lock.state.load(Ordering::Relaxed) != CONTENDED {
            std::thread::yield_now();
        }
        // The racy unlock: a plain store over the waiter's mark.
        lock.state.store(UNLOCKED, Ordering::Release);
        waiter.join().unwrap();
        assert!(!lock.is_locked());
    }
}
