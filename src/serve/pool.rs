//! A fixed set of worker threads behind a bounded queue. Generation is CPU-bound and takes a few hundred
//! milliseconds, so it runs off the async runtime; when every worker is busy and the queue is full, a job
//! is refused at once (the server answers 503 with Retry-After) instead of piling up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

type Job = Box<dyn FnOnce() + Send>;

/// Why a job was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every worker is busy and the queue is full.
    Full,
    /// The pool is shutting down.
    Closed,
}

#[derive(Debug, Clone)]
pub struct WorkerPool {
    sender: SyncSender<Job>,
    pending: Arc<AtomicUsize>,
    workers: usize,
    queue: usize,
}

impl WorkerPool {
    /// `workers` threads; up to `queue` jobs wait beyond those running.
    pub fn new(workers: usize, queue: usize) -> WorkerPool {
        let workers = workers.max(1);
        // `pending` enforces the limit (running + waiting); the channel is sized so that it never refuses a
        // job the count allows, even before a worker has picked up the previous one.
        let (sender, receiver) = sync_channel::<Job>(workers + queue);
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let pending = Arc::new(AtomicUsize::new(0));
        for index in 0..workers {
            let receiver = Arc::clone(&receiver);
            let pending = Arc::clone(&pending);
            std::thread::Builder::new()
                .name(format!("storytool-worker-{index}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let receiver = receiver.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                            receiver.recv()
                        };
                        let Ok(job) = job else { break };
                        // A panicking job must not take the worker with it.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        pending.fetch_sub(1, Ordering::SeqCst);
                    }
                })
                .expect("a worker thread starts");
        }
        WorkerPool { sender, pending, workers, queue }
    }

    /// Queues `job`, or refuses it when the pool is saturated.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> Result<(), Refused> {
        // Running jobs are not in the channel: count them so that "full" means workers + queue.
        let pending = self.pending.fetch_add(1, Ordering::SeqCst);
        if pending >= self.workers + self.queue {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(Refused::Full);
        }
        match self.sender.try_send(Box::new(job)) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                Err(match error {
                    TrySendError::Full(_) => Refused::Full,
                    TrySendError::Disconnected(_) => Refused::Closed,
                })
            }
        }
    }

    /// Jobs running or waiting.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn a_saturated_pool_refuses_and_recovers() {
        let pool = WorkerPool::new(1, 1);
        let gate = Arc::new(Barrier::new(2));
        let held = Arc::clone(&gate);
        pool.submit(move || {
            held.wait();
        })
        .unwrap();
        // The worker is busy; one job may wait; the next is refused.
        while pool.pending() != 1 {
            std::thread::yield_now();
        }
        let (done_sender, done) = std::sync::mpsc::channel();
        pool.submit(move || done_sender.send(7).unwrap()).unwrap();
        assert_eq!(pool.submit(|| {}), Err(Refused::Full));
        gate.wait();
        assert_eq!(done.recv().unwrap(), 7);
        while pool.pending() != 0 {
            std::thread::yield_now();
        }
        pool.submit(|| panic!("a job that panics")).unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        pool.submit(move || sender.send(()).unwrap()).unwrap();
        receiver.recv().unwrap();
    }
}
