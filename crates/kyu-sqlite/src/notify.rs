//! Waking idle workers: at once in this process, and in other processes that
//! share the database file through Unix datagram sockets.
//!
//! Every store keeps a `tokio::sync::watch` counter that is bumped after each
//! commit that made jobs runnable (enqueue, retry, resume). For other
//! processes, the first [`Notifier::subscribe`] binds `<pid>-<n>.sock` in the
//! directory `<database file>.wake/` and a thread bumps the counter on every
//! datagram it receives. After each waking commit the store sends a 1-byte
//! datagram to every other socket in that directory. The directory listing is
//! cached and read again when the directory changes (or after a second);
//! sockets nobody listens on any more (`ECONNREFUSED`) are removed. A store
//! removes its own socket when it is dropped.
//!
//! Event readers have a channel of their own (sockets `*.events`), woken
//! after every commit that wrote events, so workers are not woken by them.
//!
//! A wake-up that cannot be delivered is not an error: workers also poll.

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

const MAX_LISTING_AGE: Duration = Duration::from_secs(1);

static SOCKET_SEQ: AtomicU64 = AtomicU64::new(0);

struct Listener {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct Peers {
    listed_at: Option<Instant>,
    dir_mtime: Option<SystemTime>,
    paths: Vec<PathBuf>,
}

/// The wake-up side of a store.
pub(crate) struct Notifier {
    /// The extension of this channel's sockets: `sock` for job wake-ups,
    /// `events` for event readers (so a worker is not woken by events).
    ext: &'static str,
    tx: watch::Sender<u64>,
    dir: Option<PathBuf>,
    listener: Mutex<Option<Listener>>,
    sender: Option<UnixDatagram>,
    peers: Mutex<Peers>,
}

impl Notifier {
    /// A notifier; `dir` is the wake directory (None: this process only),
    /// `ext` the extension of the sockets of its channel.
    pub(crate) fn new(dir: Option<PathBuf>, ext: &'static str) -> Notifier {
        let sender = dir.as_ref().and_then(|_| {
            let s = UnixDatagram::unbound().ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        });
        Notifier {
            ext,
            tx: watch::channel(0).0,
            dir,
            listener: Mutex::new(None),
            sender,
            peers: Mutex::new(Peers::default()),
        }
    }

    /// A receiver that changes on every wake-up, local or from another process.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.listen();
        self.tx.subscribe()
    }

    /// Wakes this process's workers and every other listening store.
    pub(crate) fn wake(&self) {
        self.bump();
        self.wake_peers();
    }

    fn bump(&self) {
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Binds this store's socket once and starts the thread that listens on it.
    fn listen(&self) {
        let Some(dir) = &self.dir else { return };
        let mut guard = self.listener.lock().expect("notifier lock poisoned");
        if guard.is_some() {
            return;
        }
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e,
                "kyu-sqlite: cannot create the wake-up directory; other processes' enqueues \
                 will be seen by polling only");
            return;
        }
        let name = format!(
            "{}-{}-{}.{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
            SOCKET_SEQ.fetch_add(1, Ordering::Relaxed),
            self.ext
        );
        let path = dir.join(name);
        let socket = match UnixDatagram::bind(&path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e,
                    "kyu-sqlite: cannot bind the wake-up socket (is the path longer than \
                     107 bytes?); other processes' enqueues will be seen by polling only");
                return;
            }
        };
        let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
        let stop = Arc::new(AtomicBool::new(false));
        let tx = self.tx.clone();
        let thread_stop = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("kyu-sqlite-wake".into())
            .spawn(move || {
                let mut buf = [0u8; 16];
                loop {
                    match socket.recv(&mut buf) {
                        Ok(_) => {
                            if thread_stop.load(Ordering::Acquire) {
                                break;
                            }
                            tx.send_modify(|v| *v = v.wrapping_add(1));
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::WouldBlock
                                    | ErrorKind::TimedOut
                                    | ErrorKind::Interrupted
                            ) =>
                        {
                            if thread_stop.load(Ordering::Acquire) {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "kyu-sqlite: wake-up socket failed");
                            break;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "kyu-sqlite: cannot start the wake-up thread");
            let _ = std::fs::remove_file(&path);
            return;
        }
        // Make sure our own listing is read again so we never wake ourselves.
        self.peers.lock().expect("notifier lock poisoned").listed_at = None;
        *guard = Some(Listener { path, stop });
    }

    fn own_path(&self) -> Option<PathBuf> {
        self.listener
            .lock()
            .expect("notifier lock poisoned")
            .as_ref()
            .map(|l| l.path.clone())
    }

    fn wake_peers(&self) {
        let (Some(dir), Some(sender)) = (&self.dir, &self.sender) else {
            return;
        };
        let own = self.own_path();
        let mut peers = self.peers.lock().expect("notifier lock poisoned");
        refresh(dir, self.ext, &mut peers);
        let mut gone = false;
        for path in &peers.paths {
            if Some(path) == own.as_ref() {
                continue;
            }
            match sender.send_to(&[1], path) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    tracing::debug!(path = %path.display(), "kyu-sqlite: removing a stale wake-up socket");
                    let _ = std::fs::remove_file(path);
                    gone = true;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => gone = true,
                // A full buffer means the peer has wake-ups pending already.
                Err(_) => {}
            }
        }
        if gone {
            peers.listed_at = None;
        }
    }
}

/// Reads the directory again when it changed or the listing is old.
fn refresh(dir: &Path, ext: &str, peers: &mut Peers) {
    let mtime = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
    let fresh = peers
        .listed_at
        .is_some_and(|t| t.elapsed() < MAX_LISTING_AGE)
        && mtime == peers.dir_mtime;
    if fresh {
        return;
    }
    peers.paths.clear();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == ext) {
                peers.paths.push(path);
            }
        }
    }
    peers.listed_at = Some(Instant::now());
    peers.dir_mtime = mtime;
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

impl Notifier {
    /// Stops listening and removes this store's socket.
    pub(crate) fn stop_listening(&self) {
        let listener = self.listener.lock().map(|mut g| g.take()).unwrap_or(None);
        if let Some(l) = listener {
            l.stop.store(true, Ordering::Release);
            if let Some(sender) = &self.sender {
                let _ = sender.send_to(&[0], &l.path);
            }
            let _ = std::fs::remove_file(&l.path);
        }
    }
}
