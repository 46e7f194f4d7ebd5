//! Wake-ups: one `LISTEN` connection per store turns `pg_notify` messages
//! (sent by enqueues, retries and releases, in their own transactions, so
//! only on commit) into changes of the [`Store::subscribe`](kyu_core::Store::subscribe)
//! channel.
//!
//! Debouncing is free: PostgreSQL folds identical notifications of one
//! transaction into one, and a `watch` channel folds a burst of changes into
//! the one a waiting worker sees. When the listener loses its connection it
//! reconnects with backoff and bumps the channel once it is back, so workers
//! look for jobs whose notifications were missed meanwhile.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::watch;

/// The wake-up channel of one store, and its listener task.
pub(crate) struct Notifier {
    tx: Arc<watch::Sender<u64>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Notifier {
    pub(crate) fn new() -> Notifier {
        Notifier {
            tx: Arc::new(watch::channel(0).0),
            task: std::sync::Mutex::new(None),
        }
    }

    /// A receiver that changes at every wake-up.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Wakes this process's subscribers.
    pub(crate) fn bump(&self) {
        bump(&self.tx);
    }

    /// Starts the listener task on its own connection (not from the store's
    /// pool, so a busy pool never delays a wake-up).
    pub(crate) fn listen(&self, connect: PgConnectOptions, channel: String) {
        let tx = self.tx.clone();
        let task = tokio::spawn(async move { listen_loop(connect, channel, tx).await });
        *self.task.lock().expect("notifier lock") = Some(task);
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().expect("notifier lock").take() {
            task.abort();
        }
    }
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

async fn listen_loop(connect: PgConnectOptions, channel: String, tx: Arc<watch::Sender<u64>>) {
    let mut pause = Duration::from_millis(100);
    loop {
        match listen_once(&connect, &channel, &tx).await {
            Ok(()) => return, // every subscriber is gone
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?pause, "kyu-postgres: the wake-up listener lost its connection; workers poll meanwhile");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
        // Back after an outage: whatever was notified meanwhile is lost, so
        // let workers look once.
        bump(&tx);
        if tx.is_closed() && tx.receiver_count() == 0 {
            return;
        }
    }
}

/// Listens until the connection fails (Err) or the channel has no sender
/// users left (Ok). A connection lost and re-made inside sqlx's listener is
/// reported by `try_recv` as `None`; we then bump so nothing waits on a
/// notification that was never delivered.
async fn listen_once(
    connect: &PgConnectOptions,
    channel: &str,
    tx: &watch::Sender<u64>,
) -> Result<(), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(connect.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(channel).await?;
    tracing::debug!(channel, "kyu-postgres: listening for wake-ups");
    // A reconnect may have missed notifications.
    bump(tx);
    loop {
        match listener.try_recv().await? {
            Some(_) => bump(tx),
            None => {
                // The connection dropped; the next try_recv reconnects.
                tracing::debug!("kyu-postgres: listener connection lost, reconnecting");
                bump(tx);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
