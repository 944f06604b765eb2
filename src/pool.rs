//! The worker pool every parallel step uses: a [`Queue`] of jobs that workers take one at a
//! time (and may add to), and [`Workers`], the tasks that run them, stopped together on the
//! first error.
//!
//! A worker is an async function that loops over `queue.next()`. The queue ends (`next` gives
//! `None`) once it is empty and nobody can add to it any more: no worker is working on a job
//! it took, and no [`Feeder`] (a handle for workers of another pool that push jobs here) is
//! left. Waiting for a job holds no lock.

use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Jobs waiting for a worker.
pub struct Queue<J> {
    state: Mutex<State<J>>,
    /// Told of every new job, and of the queue ending.
    changed: Notify,
}

struct State<J> {
    jobs: VecDeque<J>,
    /// Who may still add jobs: jobs taken and not done yet, and live feeders.
    adders: usize,
}

impl<J> Queue<J> {
    pub fn new(jobs: impl IntoIterator<Item = J>) -> Arc<Queue<J>> {
        Arc::new(Queue {
            state: Mutex::new(State {
                jobs: jobs.into_iter().collect(),
                adders: 0,
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State<J>> {
        self.state.lock().expect("job queue")
    }

    /// Adds a job. Only whoever holds a job taken from this queue, or a [`Feeder`] of it, may
    /// add one: after the queue has ended a job added would never run.
    pub fn push(&self, job: J) {
        self.state().jobs.push_back(job);
        self.changed.notify_waiters();
    }

    /// The next job, waiting for one while somebody may still add one; `None` once the queue
    /// has ended. The job counts as being worked on until the [`Taken`] is dropped.
    pub async fn next(&self) -> Option<Taken<'_, J>> {
        loop {
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before looking, so that no change between the look and the wait is
            // missed.
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(job) = state.jobs.pop_front() {
                    state.adders += 1;
                    return Some(Taken { queue: self, job });
                }
                if state.adders == 0 {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Takes more jobs at once, without waiting: `take` gets the waiting jobs and removes
    /// those it wants. They count as part of a job the caller already holds.
    pub fn take_more<R>(&self, take: impl FnOnce(&mut VecDeque<J>) -> R) -> R {
        take(&mut self.state().jobs)
    }

    /// A handle that keeps the queue open while it lives (see [`Feeder`]).
    pub fn feeder(self: &Arc<Self>) -> Feeder<J> {
        self.state().adders += 1;
        Feeder {
            queue: self.clone(),
        }
    }

    /// One fewer who may add jobs; the queue may have ended.
    fn release(&self) {
        let ended = {
            let mut state = self.state();
            state.adders -= 1;
            state.adders == 0 && state.jobs.is_empty()
        };
        if ended {
            self.changed.notify_waiters();
        }
    }
}

/// A job taken from a queue, being worked on until dropped.
pub struct Taken<'a, J> {
    queue: &'a Queue<J>,
    job: J,
}

impl<J> std::ops::Deref for Taken<'_, J> {
    type Target = J;
    fn deref(&self) -> &J {
        &self.job
    }
}

impl<J> Drop for Taken<'_, J> {
    fn drop(&mut self) {
        self.queue.release();
    }
}

/// Adds jobs to a queue from outside its workers (the workers of another pool): the queue
/// does not end while a feeder lives.
pub struct Feeder<J> {
    queue: Arc<Queue<J>>,
}

impl<J> Feeder<J> {
    pub fn push(&self, job: J) {
        self.queue.push(job);
    }
}

impl<J> Drop for Feeder<J> {
    fn drop(&mut self) {
        self.queue.release();
    }
}

/// Worker tasks run together: the first to fail stops the others, and dropping the pool (or
/// the future of [`Workers::join`]) stops them all.
pub struct Workers {
    set: JoinSet<Result<()>>,
    /// What the workers are, for the error of one that panicked ("data", "compare").
    what: &'static str,
}

impl Workers {
    pub fn new(what: &'static str) -> Workers {
        Workers {
            set: JoinSet::new(),
            what,
        }
    }

    /// Starts `n` workers, `worker(i)` for i in 0..n.
    pub fn spawn<F, Fut>(&mut self, n: usize, mut worker: F)
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        for i in 0..n {
            self.set.spawn(worker(i));
        }
    }

    /// Waits for every worker to end; on the first error, stops the others and returns it.
    pub async fn join(mut self) -> Result<()> {
        while let Some(joined) = self.set.join_next().await {
            let what = self.what;
            let result = joined.with_context(|| format!("a {what} worker stopped unexpectedly"))?;
            if let Err(e) = result {
                self.set.abort_all();
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    /// Runs `n` workers over `queue`, each calling `work` on every job it takes.
    async fn run<J, F, Fut>(queue: Arc<Queue<J>>, n: usize, work: F) -> Result<()>
    where
        J: Send + Sync + 'static,
        F: Fn(Arc<Queue<J>>, &J) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send,
    {
        let mut workers = Workers::new("test");
        workers.spawn(n, |_| {
            let (queue, work) = (queue.clone(), work.clone());
            async move {
                while let Some(job) = queue.next().await {
                    work(queue.clone(), &job).await?;
                }
                Ok(())
            }
        });
        tokio::time::timeout(Duration::from_secs(10), workers.join())
            .await
            .expect("the pool ended")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_job_runs_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        run(Queue::new(0..200), 5, move |_, job: &usize| {
            let (s, job) = (s.clone(), *job);
            async move {
                tokio::task::yield_now().await;
                s.lock().unwrap().push(job);
                Ok(())
            }
        })
        .await
        .unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_first_error_stops_the_others_and_is_returned() {
        // Workers that never finish a job, and one that fails: the failure is returned, the
        // others are stopped, and the jobs still waiting never start.
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let err = run(Queue::new(0..100), 4, move |_, job: &usize| {
            let (s, job) = (s.clone(), *job);
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                if job == 3 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    anyhow::bail!("job {job} failed");
                }
                std::future::pending::<()>().await;
                Ok(())
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "job 3 failed");
        assert_eq!(started.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_panic_is_an_error() {
        let err = run(Queue::new([1]), 1, |_, _: &i32| async {
            panic!("boom");
        })
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "a test worker stopped unexpectedly");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn workers_add_jobs_while_running() {
        // Job n adds jobs 2n+1 and 2n+2 below 500: a tree from one job, run by workers that
        // would find the queue empty now and then.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        run(Queue::new([0usize]), 4, move |queue, job: &usize| {
            let (s, job) = (s.clone(), *job);
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                for child in [2 * job + 1, 2 * job + 2].into_iter().filter(|c| *c < 500) {
                    queue.push(child);
                }
                s.lock().unwrap().push(job);
                Ok(())
            }
        })
        .await
        .unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_queue_ends_when_empty_and_nobody_can_add() {
        // Idle workers wait while one job is still running (it may add more), then take what
        // it added; they all end once it is done.
        let queue = Queue::new([0u32]);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        run(queue.clone(), 3, move |queue, job: &u32| {
            let (s, job) = (s.clone(), *job);
            async move {
                if job == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    queue.push(1);
                    queue.push(2);
                }
                s.lock().unwrap().push(job);
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 3);
        // An ended queue stays ended.
        assert!(queue.next().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_feeder_keeps_the_queue_open() {
        let queue: Arc<Queue<u32>> = Queue::new([]);
        let feeder = queue.feeder();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let pool = tokio::spawn(run(queue.clone(), 2, move |_, job: &u32| {
            let (s, job) = (s.clone(), *job);
            async move {
                s.lock().unwrap().push(job);
                Ok(())
            }
        }));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!pool.is_finished(), "the workers wait for the feeder");
        feeder.push(7);
        feeder.push(8);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!pool.is_finished());
        drop(feeder);
        pool.await.unwrap().unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, [7, 8]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn dropping_the_pool_stops_its_workers() {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let stopped = Arc::new(AtomicBool::new(false));
        let mut workers = Workers::new("test");
        let s = stopped.clone();
        workers.spawn(1, move |_| {
            let flag = Flag(s.clone());
            async move {
                std::future::pending::<()>().await;
                drop(flag);
                Ok(())
            }
        });
        let join = workers.join();
        assert!(tokio::time::timeout(Duration::from_millis(20), join)
            .await
            .is_err());
        // The timeout dropped the join's future, and with it the workers.
        for _ in 0..100 {
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the worker was not stopped");
    }

    #[tokio::test]
    async fn take_more_takes_without_waiting() {
        let queue = Queue::new([1, 2, 3, 10, 4]);
        let first = queue.next().await.unwrap();
        let more: Vec<i32> = queue.take_more(|q| {
            let mut out = Vec::new();
            while let Some(j) = q.front().copied().filter(|j| *j < 10) {
                q.pop_front();
                out.push(j);
            }
            out
        });
        assert_eq!((*first, more), (1, vec![2, 3]));
        drop(first);
        assert_eq!(*queue.next().await.unwrap(), 10);
    }
}
