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

use sqlx::postgres::{PgConnectOptions, PgListener};
use tokio::sync::watch;

use crate::deadline::Deadlines;

/// The wake-up channel of one store, and its listener task.
pub(crate) struct Notifier {
    tx: Arc<watch::Sender<u64>>,
    /// Event readers' channel: bumped by event notifications, and by job
    /// wake-ups (an enqueue wrote events too).
    events: Arc<watch::Sender<u64>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Notifier {
    pub(crate) fn new() -> Notifier {
        Notifier {
            tx: Arc::new(watch::channel(0).0),
            events: Arc::new(watch::channel(0).0),
            task: std::sync::Mutex::new(None),
        }
    }

    /// A receiver that changes at every wake-up.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// A receiver that changes when events may have been written.
    pub(crate) fn subscribe_events(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Wakes this process's subscribers.
    pub(crate) fn bump(&self) {
        bump(&self.tx);
    }

    /// Wakes this process's event readers.
    pub(crate) fn bump_events(&self) {
        bump(&self.events);
    }

    /// Starts the listener task on its own connection (not from the store's
    /// pool, so a busy pool never delays a wake-up), on the job channel and
    /// the events channel.
    pub(crate) fn listen(
        &self,
        connect: PgConnectOptions,
        channel: String,
        events: String,
        deadlines: Arc<Deadlines>,
    ) {
        let tx = Channels {
            jobs: self.tx.clone(),
            events: self.events.clone(),
            events_channel: events,
        };
        let task = tokio::spawn(async move { listen_loop(connect, channel, tx, deadlines).await });
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

/// Where notifications go.
struct Channels {
    jobs: Arc<watch::Sender<u64>>,
    events: Arc<watch::Sender<u64>>,
    events_channel: String,
}

impl Channels {
    fn both(&self) {
        bump(&self.jobs);
        bump(&self.events);
    }
}

/// How long the listener waits for a notification before it checks that
/// its connection still answers.
const QUIET_CHECK: Duration = Duration::from_secs(10);

async fn listen_loop(
    connect: PgConnectOptions,
    channel: String,
    tx: Channels,
    deadlines: Arc<Deadlines>,
) {
    // Runs until the store drops its Notifier, which aborts this task.
    let mut pause = Duration::from_millis(100);
    loop {
        let e = listen(&connect, &channel, &tx, &mut pause, &deadlines).await;
        tracing::warn!(error = %e, retry_in = ?pause, "kyu-postgres: the wake-up listener lost its connection; workers poll meanwhile");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Listens until the connection fails; returns why. sqlx's listener re-makes
/// a dropped connection by itself (`try_recv` then yields `None`); every
/// (re)connection bumps the channel, since notifications sent meanwhile are
/// lost and workers should look once.
///
/// A network that stops answering sends no error: after [`QUIET_CHECK`]
/// without a notification the listener runs `SELECT 1`, and a connection
/// that does not answer within the store's call limit is given up and made
/// again (connecting within `connect_timeout`).
async fn listen(
    connect: &PgConnectOptions,
    channel: &str,
    tx: &Channels,
    pause: &mut Duration,
    deadlines: &Arc<Deadlines>,
) -> sqlx::Error {
    let timed_out = |what: &str| {
        sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what}: no answer within {:?}", deadlines.call()),
        ))
    };
    let pool = deadlines
        .pool_options()
        .max_connections(1)
        .acquire_timeout(deadlines.connect)
        .connect_lazy_with(connect.clone());
    let mut listener = match tokio::time::timeout(deadlines.call(), async {
        let mut l = PgListener::connect_with(&pool).await?;
        l.listen_all([channel, tx.events_channel.as_str()]).await?;
        Ok::<_, sqlx::Error>(l)
    })
    .await
    {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return e,
        Err(_) => return timed_out("LISTEN"),
    };
    tracing::debug!(channel, "kyu-postgres: listening for wake-ups");
    *pause = Duration::from_millis(100);
    tx.both();
    loop {
        let Ok(received) = tokio::time::timeout(QUIET_CHECK, listener.try_recv()).await else {
            match tokio::time::timeout(
                deadlines.call(),
                sqlx::query("SELECT 1").execute(&mut listener),
            )
            .await
            {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return e,
                Err(_) => return timed_out("the wake-up listener's check"),
            }
        };
        match received {
            Ok(Some(n)) if n.channel() == tx.events_channel => bump(&tx.events),
            Ok(Some(_)) => tx.both(),
            Ok(None) => {
                tracing::debug!("kyu-postgres: listener connection lost, reconnecting");
                tx.both();
            }
            Err(e) => return e,
        }
    }
}
