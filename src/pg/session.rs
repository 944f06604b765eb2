//! A worker's connections and their retries: `Session` is a connection and the server process
//! behind it; `Sessions` keeps a worker's connections from one job to the next and opens them
//! again after a transient failure, ending the old server processes first. Used by the COPY
//! workers, the index workers and compare's checksum workers.

use super::connect::{backend_pid, terminate_backend};
use super::retry::{is_transient, next_wait, RetryPolicy};
use anyhow::Result;
use std::future::Future;
use tokio_postgres::Client;
use tracing::warn;

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
    use std::time::Duration;

    fn transient() -> anyhow::Error {
        crate::pg::transient_error()
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
