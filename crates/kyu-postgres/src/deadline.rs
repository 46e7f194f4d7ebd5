//! Time limits, so that no call waits forever on a network that stopped
//! answering (a failed-over server, a dropped NAT entry: no reset ever
//! comes, and a read on the socket would wait for hours).
//!
//! - **Connecting** takes at most `connect_timeout` (URL parameter, libpq's
//!   name and unit; default 10 s).
//! - **Every store call** takes at most `statement_timeout + 2 s`
//!   ([`CALL_GRACE`]). `statement_timeout` (default 30 s) is also set on
//!   each connection, so a slow statement on a healthy network is cancelled
//!   by the server with a clear error first. A call that hits kyu's own
//!   limit fails with [`StoreError::Database`] ("no answer from PostgreSQL
//!   within …"), and its connection is closed, not reused: for a while after
//!   such a call, connections coming back to the pool must answer a ping
//!   within [`PING_LIMIT`] or are dropped without a word to the server (sqlx
//!   would otherwise ping them with no time limit, holding a pool slot until
//!   the kernel gives up on the socket, about 15 minutes later).
//! - **TCP keepalive** is set on the server's side of every session
//!   (`tcp_keepalives_idle` 10 s, `_interval` 5 s, `_count` 3), so the server
//!   ends a session whose client vanished and frees its locks. sqlx 0.8 does
//!   not expose the client's socket, so the client side relies on the limits
//!   above; the wake-up listener pings its connection when quiet (module
//!   `notify`).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kyu_core::StoreError;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor};

pub use crate::url::{CALL_GRACE, DEFAULT_CONNECT_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT};

/// How long a connection back from a timed-out call may take to answer a ping.
pub(crate) const PING_LIMIT: Duration = Duration::from_secs(2);

/// For how long after a timed-out call released connections are pinged.
const WARY_FOR: Duration = Duration::from_secs(60);

/// The time limits of one store, and when a call last ran out of time.
#[derive(Debug)]
pub(crate) struct Deadlines {
    pub(crate) connect: Duration,
    pub(crate) statement: Duration,
    start: Instant,
    /// Milliseconds after `start` when a call last timed out, plus one (0: never).
    stalled_at: AtomicU64,
}

impl Deadlines {
    pub(crate) fn new(connect: Option<Duration>, statement: Option<Duration>) -> Arc<Deadlines> {
        Arc::new(Deadlines {
            connect: connect.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            statement: statement.unwrap_or(DEFAULT_STATEMENT_TIMEOUT),
            start: Instant::now(),
            stalled_at: AtomicU64::new(0),
        })
    }

    /// The most one store call may take.
    pub(crate) fn call(&self) -> Duration {
        self.statement + CALL_GRACE
    }

    fn note_stall(&self) {
        let ms = self.start.elapsed().as_millis() as u64 + 1;
        self.stalled_at.store(ms, Ordering::Relaxed);
    }

    fn stalled_recently(&self) -> bool {
        match self.stalled_at.load(Ordering::Relaxed) {
            0 => false,
            at => {
                let now = self.start.elapsed().as_millis() as u64 + 1;
                now.saturating_sub(at) < WARY_FOR.as_millis() as u64
            }
        }
    }

    /// Runs `call` within [`Deadlines::call`]; past it, the call is dropped
    /// (its connection with it) and fails.
    pub(crate) async fn limit<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.call();
        tokio::select! {
            biased;
            r = call => r,
            // Noted before the call is dropped, so the connection it
            // releases is already met with a wary ping.
            _ = async { tokio::time::sleep(limit).await; self.note_stall(); } => {
                tracing::warn!(?limit, "kyu-postgres: no answer from PostgreSQL in time; the call is abandoned and its connection closed");
                Err(StoreError::Database(format!(
                    "no answer from PostgreSQL within {} (statement_timeout {} + {} s); the \
                     network or the server stopped answering; the call was abandoned and \
                     may be retried (raise statement_timeout in the database URL if \
                     statements are merely slow)",
                    secs(limit),
                    secs(self.statement),
                    CALL_GRACE.as_secs()
                )))
            }
        }
    }

    /// The statements run on every new connection.
    fn session_sql(&self) -> String {
        format!(
            "SET statement_timeout = {}; SET tcp_keepalives_idle = 10; \
             SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3",
            self.statement.as_millis()
        )
    }

    /// Pool options that set the session limits on each new connection and
    /// drop, after a timed-out call, connections that do not answer.
    pub(crate) fn pool_options(self: &Arc<Self>) -> PgPoolOptions {
        let on_connect = self.clone();
        let on_release = self.clone();
        PgPoolOptions::new()
            .after_connect(move |conn, _| {
                let sql = on_connect.session_sql();
                Box::pin(async move {
                    conn.execute(sqlx::raw_sql(&sql)).await?;
                    Ok(())
                })
            })
            .after_release(move |conn, _| {
                let wary = on_release.stalled_recently();
                Box::pin(async move {
                    if !wary {
                        return Ok(true);
                    }
                    match tokio::time::timeout(PING_LIMIT, conn.ping()).await {
                        Ok(Ok(())) => Ok(true),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the connection did not answer a ping",
                        ))),
                    }
                })
            })
    }
}

/// A duration in seconds, as `7s` or `2.5s`.
fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_past_its_limit_fails_and_makes_the_pool_wary() {
        let d = Deadlines::new(None, Some(Duration::from_secs(1)));
        assert!(!d.stalled_recently());
        let ok = d.limit(async { Ok::<_, StoreError>(7) }).await.unwrap();
        assert_eq!(ok, 7);
        let e = d
            .limit(std::future::pending::<Result<(), StoreError>>())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no answer from PostgreSQL within 3s"), "{e}");
        assert!(e.contains("statement_timeout 1s + 2 s"), "{e}");
        assert!(d.stalled_recently());
    }
}
