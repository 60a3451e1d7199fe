//! The async thread pool behind `driver_async`: our own OS threads, one
//! queue per thread, sized like the VM's `+A`.
//!
//! # How jobs are placed (as erts's `erl_async.c` does)
//!
//! Each job gets an id from one counter (1, 2, ...; 31 bits, wrapping past
//! 0x7fffffff to 1, as the seed runtimes did, so that the id fits the
//! `unsigned int` of `driver_async_cancel`). A job with a key goes to
//! queue `key % threads`, and `key` is overwritten with that index (the
//! runtime does the same: a driver may read it back); a job without a key
//! goes to queue `id % threads` (round robin). Each queue is served by one
//! thread in FIFO order, so jobs with equal keys run one after another, in
//! the order they were submitted.
//!
//! # Cancellation
//!
//! [`Pool::cancel`] removes a job that no thread has taken yet and hands it
//! back ([`Work::cancel`]: the driver's `async_free`); a job already
//! running or done cannot be cancelled. This is the seed runtime's
//! `async_del` (see `api::async_job` for why we keep it).
//!
//! # Completions of a port
//!
//! [`Completions`] holds, per port, the jobs whose `async_invoke` has
//! returned and whose `ready_async` the port process has not run yet, and
//! knows which ports have closed: a job finishing for a closed port is
//! freed at once (in the pool thread), and closing a port frees the jobs
//! waiting for it. So every job ends exactly once, in `ready_async` or in
//! `async_free`, and `ready_async` never runs for a closed port.
//!
//! Nothing here touches the VM: the pool runs any [`Work`], which keeps it
//! testable without a BEAM.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// The most threads the VM allows for `+A` (`ERTS_MAX_NO_OF_ASYNC_THREADS`).
pub const MAX_THREADS: usize = 1024;

/// Largest job id (31 bits, as the seed runtimes).
const MAX_ID: u32 = 0x7fff_ffff;

/// A job the pool runs.
pub trait Work: Send {
    /// Runs the job, whose id is `id`, on a pool thread (`async_invoke`,
    /// then completion).
    fn run(self: Box<Self>, id: u32);
    /// The job was cancelled before it ran (`async_free`).
    fn cancel(self: Box<Self>);
}

struct Queued {
    id: u32,
    work: Box<dyn Work>,
}

#[derive(Default)]
struct Queue {
    jobs: Mutex<VecDeque<Queued>>,
    wake: Condvar,
}

impl Queue {
    fn push(&self, job: Queued) {
        lock(&self.jobs).push_back(job);
        self.wake.notify_one();
    }

    fn pop(&self) -> Queued {
        let mut jobs = lock(&self.jobs);
        loop {
            if let Some(job) = jobs.pop_front() {
                return job;
            }
            jobs = self.wake.wait(jobs).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn remove(&self, id: u32) -> Option<Queued> {
        let mut jobs = lock(&self.jobs);
        let at = jobs.iter().position(|j| j.id == id)?;
        jobs.remove(at)
    }
}

/// Jobs submitted to any [`Completions`] and not ended (queued, running,
/// or finished and waiting for `ready_async`), for
/// `erl_driver_compat:info/0`. Each job ends once: withdrawn, taken, freed
/// by its port's close, or freed when it finishes after that close.
/// Relaxed: statistics only.
static JOBS: AtomicUsize = AtomicUsize::new(0);

/// The number of async jobs pending right now (see [`JOBS`]).
pub fn stats() -> usize {
    JOBS.load(Ordering::Relaxed)
}

/// Locks `m`, also when a panicking thread poisoned it (the data of these
/// mutexes stays consistent: every critical section is a push or a pop).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pool: `threads` threads, each serving its own queue.
pub struct Pool {
    queues: Vec<Arc<Queue>>,
    last_id: AtomicU32,
}

impl Pool {
    /// Starts `threads` threads (clamped to 1..=[`MAX_THREADS`], as OTP 25
    /// clamps `+A`: `+A 0` gives one thread), named `edc_async_N`. A thread
    /// that cannot be started leaves its queue to the next one.
    pub fn new(threads: usize) -> Pool {
        let threads = threads.clamp(1, MAX_THREADS);
        let mut queues = Vec::with_capacity(threads);
        for i in 0..threads {
            let queue = Arc::new(Queue::default());
            let served = queue.clone();
            let started = std::thread::Builder::new()
                .name(format!("edc_async_{}", i + 1))
                .spawn(move || serve(&served));
            if started.is_ok() {
                queues.push(queue);
            }
        }
        if queues.is_empty() {
            // Not even one thread: run jobs in a thread of their own rather
            // than never (cannot happen short of resource exhaustion).
            let queue = Arc::new(Queue::default());
            let served = queue.clone();
            std::thread::spawn(move || serve(&served));
            queues.push(queue);
        }
        Pool {
            queues,
            last_id: AtomicU32::new(0),
        }
    }

    /// The number of threads.
    pub fn threads(&self) -> usize {
        self.queues.len()
    }

    /// The next job id: 1, 2, ..., `MAX_ID`, 1, ...
    fn next_id(&self) -> u32 {
        let mut id = 0;
        // fetch_update never fails with a closure returning Some.
        let _ = self
            .last_id
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                id = if last >= MAX_ID { 1 } else { last + 1 };
                Some(id)
            });
        id
    }

    /// Queues `work`; with a `key`, on queue `key % threads`, writing that
    /// index back to `key`. Returns the job's id (positive).
    pub fn submit(&self, key: Option<&mut u32>, work: Box<dyn Work>) -> u32 {
        let id = self.next_id();
        let n = self.queues.len() as u32;
        let index = match key {
            Some(key) => {
                *key %= n;
                *key
            }
            None => id % n,
        };
        self.queues[index as usize].push(Queued { id, work });
        id
    }

    /// Removes the job `id` if no thread has taken it yet and cancels it
    /// ([`Work::cancel`], in the calling thread). True when it was removed.
    pub fn cancel(&self, id: u32) -> bool {
        for queue in &self.queues {
            if let Some(job) = queue.remove(id) {
                job.work.cancel();
                return true;
            }
        }
        false
    }
}

/// A pool thread: runs the jobs of `queue` in order, forever. A panic in
/// a job (our code around the driver's, never the driver's C) ends only
/// that job.
fn serve(queue: &Queue) {
    loop {
        let job = queue.pop();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.work.run(job.id)));
    }
}

/// The jobs of open ports that finished but whose `ready_async` has not
/// run yet, and the closed ports (see the module documentation). `T` is
/// what a finished job carries (its data and `async_free`).
pub struct Completions<T> {
    ports: Mutex<HashMap<u64, PortJobs<T>>>,
}

struct PortJobs<T> {
    /// Jobs submitted and not ended (queued, running or finished).
    pending: usize,
    /// Finished jobs by id, waiting for the port process.
    finished: HashMap<u32, T>,
}

/// What became of a job that finished.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished<T> {
    /// The port is open: the port process must run `ready_async` for the
    /// job (the id it was finished under).
    Wait(u32),
    /// The port has closed: free the job now.
    Free(T),
}

impl<T> Default for Completions<T> {
    fn default() -> Self {
        Completions {
            ports: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Completions<T> {
    /// A job is being submitted for the open port `port` (called under the
    /// port's lock, so the port cannot close meanwhile).
    pub fn submitted(&self, port: u64) {
        let mut ports = lock(&self.ports);
        let jobs = ports.entry(port).or_insert_with(|| PortJobs {
            pending: 0,
            finished: HashMap::new(),
        });
        jobs.pending += 1;
        JOBS.fetch_add(1, Ordering::Relaxed);
    }

    /// A submitted job was not queued after all (the submission failed)
    /// or was cancelled: it ends without finishing.
    pub fn withdrawn(&self, port: u64) {
        JOBS.fetch_sub(1, Ordering::Relaxed);
        let mut ports = lock(&self.ports);
        if let Some(jobs) = ports.get_mut(&port) {
            jobs.pending = jobs.pending.saturating_sub(1);
            if jobs.pending == 0 {
                ports.remove(&port);
            }
        }
    }

    /// The job `id` of `port` has run: keep it for `ready_async`, or hand
    /// it back to be freed when the port has closed.
    pub fn finished(&self, port: u64, id: u32, job: T) -> Finished<T> {
        let mut ports = lock(&self.ports);
        match ports.get_mut(&port) {
            Some(jobs) => {
                jobs.finished.insert(id, job);
                Finished::Wait(id)
            }
            None => {
                JOBS.fetch_sub(1, Ordering::Relaxed);
                Finished::Free(job)
            }
        }
    }

    /// Takes the finished job `id` of `port` for its `ready_async` (or for
    /// freeing it when its message could not be delivered); `None` when
    /// the port's close took it already.
    pub fn take(&self, port: u64, id: u32) -> Option<T> {
        let mut ports = lock(&self.ports);
        let jobs = ports.get_mut(&port)?;
        let job = jobs.finished.remove(&id)?;
        JOBS.fetch_sub(1, Ordering::Relaxed);
        jobs.pending = jobs.pending.saturating_sub(1);
        if jobs.pending == 0 {
            ports.remove(&port);
        }
        Some(job)
    }

    /// `port` has closed: from now on its jobs are freed when they finish;
    /// returns the finished ones still waiting, to be freed now.
    pub fn closed(&self, port: u64) -> Vec<T> {
        let jobs = lock(&self.ports).remove(&port);
        let done: Vec<T> = jobs
            .map(|j| j.finished.into_values().collect())
            .unwrap_or_default();
        JOBS.fetch_sub(done.len(), Ordering::Relaxed);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread::ThreadId;

    /// A job that reports (key, seq, thread) when it runs, or that it was
    /// cancelled; it can wait for a gate first.
    struct Probe {
        key: u32,
        seq: u32,
        gate: Option<mpsc::Receiver<()>>,
        out: mpsc::Sender<(u32, u32, Option<ThreadId>)>,
    }

    impl Work for Probe {
        fn run(self: Box<Self>, _id: u32) {
            if let Some(gate) = &self.gate {
                let _ = gate.recv();
            }
            let _ = self
                .out
                .send((self.key, self.seq, Some(std::thread::current().id())));
        }
        fn cancel(self: Box<Self>) {
            let _ = self.out.send((self.key, self.seq, None));
        }
    }

    fn probe(key: u32, seq: u32, out: &mpsc::Sender<(u32, u32, Option<ThreadId>)>) -> Box<Probe> {
        Box::new(Probe {
            key,
            seq,
            gate: None,
            out: out.clone(),
        })
    }

    #[test]
    fn same_key_same_thread_in_order() {
        let pool = Pool::new(4);
        assert_eq!(pool.threads(), 4);
        let (tx, rx) = mpsc::channel();
        let keys = [0u32, 1, 2, 3, 5, 6, 7, 13];
        for seq in 0..50 {
            for &k in &keys {
                let mut key = k;
                pool.submit(Some(&mut key), probe(k, seq, &tx));
                assert_eq!(key, k % 4, "the key is rewritten to its queue");
            }
        }
        let mut seen: HashMap<u32, Vec<(u32, ThreadId)>> = HashMap::new();
        for _ in 0..50 * keys.len() {
            let (k, seq, thread) = rx.recv().expect("a job ran");
            seen.entry(k).or_default().push((seq, thread.expect("ran")));
        }
        let mut thread_of_queue: HashMap<u32, ThreadId> = HashMap::new();
        for (k, runs) in &seen {
            let seqs: Vec<u32> = runs.iter().map(|r| r.0).collect();
            assert_eq!(seqs, (0..50).collect::<Vec<_>>(), "key {k} in order");
            let thread = runs[0].1;
            assert!(runs.iter().all(|r| r.1 == thread), "key {k} on one thread");
            // Keys of one queue share its thread; other queues have others.
            let queue_thread = *thread_of_queue.entry(k % 4).or_insert(thread);
            assert_eq!(queue_thread, thread);
        }
        let distinct: std::collections::HashSet<_> = thread_of_queue.values().collect();
        assert_eq!(distinct.len(), 4);
    }

    #[test]
    fn ids_are_positive_increasing_and_wrap_to_one() {
        let pool = Pool::new(2);
        let (tx, rx) = mpsc::channel();
        let a = pool.submit(None, probe(0, 0, &tx));
        let b = pool.submit(None, probe(0, 1, &tx));
        assert_eq!((a, b), (1, 2));
        pool.last_id.store(MAX_ID - 1, Ordering::Relaxed);
        assert_eq!(pool.submit(None, probe(0, 2, &tx)), MAX_ID);
        assert_eq!(pool.submit(None, probe(0, 3, &tx)), 1);
        for _ in 0..4 {
            rx.recv().expect("ran");
        }
    }

    #[test]
    fn threads_are_clamped_like_plus_a() {
        assert_eq!(Pool::new(0).threads(), 1);
    }

    #[test]
    fn cancel_removes_only_a_queued_job() {
        let pool = Pool::new(1);
        let (tx, rx) = mpsc::channel();
        let (open, gate) = mpsc::channel();
        let blocked = pool.submit(
            None,
            Box::new(Probe {
                key: 0,
                seq: 0,
                gate: Some(gate),
                out: tx.clone(),
            }),
        );
        let queued = pool.submit(None, probe(0, 1, &tx));
        let last = pool.submit(None, probe(0, 2, &tx));
        assert!(pool.cancel(queued));
        assert_eq!(rx.recv().expect("cancelled"), (0, 1, None));
        assert!(!pool.cancel(queued), "already gone");
        assert!(!pool.cancel(12345), "unknown");
        open.send(()).expect("gate");
        assert_eq!(rx.recv().expect("ran").1, 0);
        assert_eq!(rx.recv().expect("ran").1, 2);
        // Done: too late to cancel.
        assert!(!pool.cancel(blocked));
        assert!(!pool.cancel(last));
    }

    #[test]
    fn completions_of_an_open_port_wait_for_ready_async() {
        let c: Completions<&str> = Completions::default();
        c.submitted(7);
        c.submitted(7);
        assert_eq!(c.finished(7, 1, "a"), Finished::Wait(1));
        assert_eq!(c.take(7, 1), Some("a"));
        assert_eq!(c.take(7, 1), None, "taken once");
        assert_eq!(c.finished(7, 2, "b"), Finished::Wait(2));
        assert_eq!(c.take(7, 2), Some("b"));
        // All ended: the port is forgotten, and a closed port is not told
        // apart from a forgotten one (no job can finish for it any more).
        assert!(lock(&c.ports).is_empty());
    }

    #[test]
    fn closing_frees_waiting_jobs_and_later_ones() {
        let c: Completions<&str> = Completions::default();
        c.submitted(3);
        c.submitted(3);
        c.submitted(3);
        assert_eq!(c.finished(3, 1, "waiting"), Finished::Wait(1));
        assert_eq!(c.closed(3), vec!["waiting"]);
        // The message for job 1 arrives after the close: nothing to run.
        assert_eq!(c.take(3, 1), None);
        // Jobs still running when the port closed are freed as they end.
        assert_eq!(c.finished(3, 2, "late"), Finished::Free("late"));
        c.withdrawn(3);
        assert!(lock(&c.ports).is_empty());
    }

    #[test]
    fn a_withdrawn_job_keeps_the_others() {
        let c: Completions<&str> = Completions::default();
        c.submitted(1);
        c.submitted(1);
        c.withdrawn(1);
        assert_eq!(c.finished(1, 9, "x"), Finished::Wait(9));
    }
}
