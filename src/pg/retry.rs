//! Trying again: which failures are transient, exponential backoff with jitter, and the
//! two ways work is retried: [`with_retries`] for an operation that opens what it needs, and
//! [`Sessions`] for a worker that keeps its connections between jobs and opens them again
//! (ending the server processes of the lost ones) after a transient failure.

use super::PgError;
use std::future::Future;
use std::time::Duration;
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
pub(crate) fn next_wait(
    policy: &RetryPolicy,
    attempt: &mut u32,
    e: &anyhow::Error,
) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn out_of_storage_is_recognised_in_any_wording() {
        let neon = anyhow::anyhow!(
            "ERROR: could not extend file because cluster size limit (10240 MB) has been exceeded"
        )
        .context("copy table public.t: finish COPY on the target");
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
        crate::pg::transient_error()
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
}
