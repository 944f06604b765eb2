//! Trying again: which failures are transient, exponential backoff with jitter, and the
//! two ways work is retried: [`with_retries`] for an operation that opens what it needs, and
//! [`Sessions`] for a worker that keeps its connections between jobs and opens them again
//! (ending the server processes of the lost ones) after a transient failure.

use super::connect::{backend_pid, terminate_backend};
use super::PgError;
use anyhow::Result;
use std::future::Future;
use std::time::Duration;
use tokio_postgres::Client;
use tracing::warn;

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub retries: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 6,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            retries: 0,
            ..Default::default()
        }
    }

    /// The wait before attempt `n` (1-based retry count): doubling, capped, with up to 50%
    /// random jitter so that workers that failed together do not retry together.
    pub fn delay(&self, n: u32) -> Duration {
        let base = self
            .first_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.max_delay);
        let jitter = jitter_fraction();
        base.mul_f64(0.5 + jitter * 0.5)
    }
}

/// A pseudo-random fraction in [0, 1) without a dependency: the clock's nanoseconds, mixed.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % 1_000_000) as f64 / 1_000_000.0
}

/// Whether an error (anywhere in its chain) is worth retrying.
pub fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        if let Some(pg) = cause.downcast_ref::<PgError>() {
            return pg.transient;
        }
        if let Some(tool) = cause.downcast_ref::<super::tools::ToolError>() {
            return tool.transient;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::UnexpectedEof
            );
        }
        false
    })
}

/// The wait before trying again after `e`, counting the attempt; `None` when `e` is not
/// transient or the retries are used up.
fn next_wait(policy: &RetryPolicy, attempt: &mut u32, e: &anyhow::Error) -> Option<Duration> {
    if *attempt >= policy.retries || !is_transient(e) {
        return None;
    }
    *attempt += 1;
    Some(policy.delay(*attempt))
}

/// Runs `op` until it succeeds, fails with an error that is not transient, or runs out of
/// retries. `what` names the operation in the log lines about retries; `on_retry` is told of
/// each failed attempt that will be retried.
pub async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut on_retry: impl FnMut(u32, &anyhow::Error),
    mut op: F,
) -> anyhow::Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut attempt = 0;
    loop {
        let e = match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(wait) = next_wait(policy, &mut attempt, &e) else {
            return Err(e);
        };
        warn!(
            "{what}: {e:#}; retrying in {:.1}s (attempt {} of {})",
            wait.as_secs_f64(),
            attempt + 1,
            policy.retries + 1
        );
        on_retry(attempt, &e);
        tokio::time::sleep(wait).await;
    }
}

/// A connection and the server process behind it.
pub struct Session {
    pub client: Client,
    pub pid: i32,
}

impl Session {
    /// Opens a session; `stale` is the server process of the connection this one replaces,
    /// which is ended first (it may still be running the statement that failed).
    pub async fn open(
        connect: impl Future<Output = Result<Client>>,
        stale: Option<i32>,
    ) -> Result<Session> {
        let client = connect.await?;
        let pid = backend_pid(&client).await?;
        if let Some(old) = stale {
            if let Err(e) = terminate_backend(&client, old).await {
                warn!("{e:#}");
            }
        }
        Ok(Session { client, pid })
    }
}

/// What a worker connects with: one session, two (a source reader and a target writer), or
/// sessions with some state of their own.
pub trait Connections {
    /// The server processes behind the sessions, to end once they are replaced.
    type Pids: Copy;
    fn pids(&self) -> Self::Pids;
}

impl Connections for Session {
    type Pids = i32;
    fn pids(&self) -> i32 {
        self.pid
    }
}

impl Connections for (Session, Session) {
    type Pids = (i32, i32);
    fn pids(&self) -> (i32, i32) {
        (self.0.pid, self.1.pid)
    }
}

/// A worker's connections, kept from one job to the next: opened when first needed and,
/// after a transient failure, dropped and opened again, the new ones ending the server
/// processes of the old (which may still be running the statement that failed).
pub struct Sessions<C: Connections> {
    policy: RetryPolicy,
    open: Option<C>,
    /// The server processes of connections dropped and not replaced yet.
    stale: Option<C::Pids>,
}

impl<C: Connections> Sessions<C> {
    pub fn new(policy: RetryPolicy) -> Sessions<C> {
        Sessions {
            policy,
            open: None,
            stale: None,
        }
    }

    /// The connections, opened by `connect` if there are none; `connect` gets the server
    /// processes of the connections they replace, to end them.
    pub async fn get<F, Fut>(&mut self, connect: F) -> Result<&mut C>
    where
        F: FnOnce(Option<C::Pids>) -> Fut,
        Fut: Future<Output = Result<C>>,
    {
        if self.open.is_none() {
            self.open = Some(connect(self.stale).await?);
            self.stale = None;
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not transient, or runs
    /// out of retries. Each attempt is lent the sessions (and told its number, 0 first) and
    /// gives them back with its result. After a transient failure the connections are
    /// dropped (they may be dead, and a transaction rolls back with them) and, unless the
    /// retries are used up, a warning says what happens next (`then`, e.g. "trying again")
    /// and `attempt` runs again, whole, after the policy's wait. (Lent rather than borrowed:
    /// a closure given `&mut Sessions` could not return a future that also borrows the
    /// caller's data.)
    pub async fn run<T, F, Fut>(&mut self, then: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut(Sessions<C>, u32) -> Fut,
        Fut: Future<Output = (Sessions<C>, Result<T>)>,
    {
        let mut n = 0;
        loop {
            let lent = Sessions {
                policy: self.policy,
                open: self.open.take(),
                stale: self.stale.take(),
            };
            let (back, result) = attempt(lent, n).await;
            (self.open, self.stale) = (back.open, back.stale);
            let e = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if is_transient(&e) {
                self.stale = self.open.take().map(|c| c.pids()).or(self.stale);
            }
            let Some(wait) = next_wait(&self.policy, &mut n, &e) else {
                return Err(e);
            };
            warn!(
                "{e:#}; {then} in {:.1}s (attempt {} of {})",
                wait.as_secs_f64(),
                n + 1,
                self.policy.retries + 1
            );
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn out_of_storage_is_recognised_in_any_wording() {
        let neon = anyhow::anyhow!(
            "ERROR: could not extend file because cluster size limit (10240 MB) has been exceeded"
        )
        .context("copy table public.t: finish COPY on target");
        assert!(crate::pg::out_of_storage(&neon));
        let restore = anyhow::anyhow!(
            "pg_restore: error: could not execute query: ERROR: could not extend file \"base/1/2\": No space left on device"
        );
        assert!(crate::pg::out_of_storage(&restore));
        let other = anyhow::anyhow!("ERROR: duplicate key value violates unique constraint");
        assert!(!crate::pg::out_of_storage(&other));
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy {
            retries: 10,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for n in 1..12 {
            let d = p.delay(n);
            let base = (100u64 << (n - 1).min(16)).min(1000);
            assert!(
                d.as_millis() as u64 >= base / 2 && d.as_millis() as u64 <= base,
                "{n}: {d:?}"
            );
        }
    }

    fn transient() -> anyhow::Error {
        PgError {
            message: "connection reset".into(),
            transient: true,
            from_server: false,
            code: None,
        }
        .into()
    }

    #[tokio::test]
    async fn retries_transient_errors_only() {
        let p = RetryPolicy {
            retries: 3,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let calls = AtomicU32::new(0);
        let out = with_retries(
            &p,
            "test",
            |_, _| {},
            |_| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(transient())
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(out, 2);

        calls.store(0, Ordering::SeqCst);
        let err = with_retries(
            &p,
            "test",
            |_, _| {},
            |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(anyhow::anyhow!("syntax error")) }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(err.to_string().contains("syntax error"));

        calls.store(0, Ordering::SeqCst);
        let err = with_retries(
            &p,
            "test",
            |_, _| {},
            |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(transient().context("copy table t")) }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "first try and three retries"
        );
        assert!(is_transient(&err));
    }

    /// Connections that are only a number, their server process.
    struct Fake(i32);

    impl Connections for Fake {
        type Pids = i32;
        fn pids(&self) -> i32 {
            self.0
        }
    }

    /// Runs one job on `sessions`: attempts that fail as `fail(attempt)` says, each opening
    /// the connections if needed (as the process `pid + attempt`); returns the process the
    /// job ran on. `opened` records what each opening was told to end.
    async fn job(
        sessions: &mut Sessions<Fake>,
        opened: &std::sync::Mutex<Vec<Option<i32>>>,
        pid: i32,
        fail: impl Fn(u32) -> Option<anyhow::Error>,
    ) -> anyhow::Result<i32> {
        let fail = &fail;
        sessions
            .run("trying again", |mut s, n| async move {
                let connect = |stale| async move {
                    opened.lock().unwrap().push(stale);
                    Ok(Fake(pid + n as i32))
                };
                let result = match s.get(connect).await {
                    Ok(c) => fail(n).map_or(Ok(c.0), Err),
                    Err(e) => Err(e),
                };
                (s, result)
            })
            .await
    }

    #[tokio::test]
    async fn sessions_are_opened_again_after_a_transient_failure() {
        let p = RetryPolicy {
            retries: 3,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let mut sessions = Sessions::new(p);
        let opened = std::sync::Mutex::new(Vec::new());
        // Two transient failures: each attempt on new connections, ending the last ones.
        let ran_on = job(&mut sessions, &opened, 10, |n| (n < 2).then(transient)).await;
        assert_eq!(ran_on.unwrap(), 12);
        assert_eq!(*opened.lock().unwrap(), [None, Some(10), Some(11)]);
        // The next job runs on the same connections.
        assert_eq!(job(&mut sessions, &opened, 20, |_| None).await.unwrap(), 12);
        assert_eq!(opened.lock().unwrap().len(), 3);
        // An error that is not transient is not retried, and keeps the connections.
        let err = job(&mut sessions, &opened, 30, |_| Some(anyhow::anyhow!("bad")))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "bad");
        assert_eq!(job(&mut sessions, &opened, 40, |_| None).await.unwrap(), 12);
        // Out of retries: the last error, the connections dropped; the next job opens new
        // ones, ending the lost ones.
        let err = job(&mut sessions, &opened, 50, |_| Some(transient()))
            .await
            .unwrap_err();
        assert!(is_transient(&err));
        assert_eq!(job(&mut sessions, &opened, 60, |_| None).await.unwrap(), 60);
        assert_eq!(
            *opened.lock().unwrap(),
            [
                None,
                Some(10),
                Some(11),
                Some(12),
                Some(51),
                Some(52),
                Some(53)
            ]
        );
    }
}
