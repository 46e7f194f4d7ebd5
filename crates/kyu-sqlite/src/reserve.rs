//! A full disk: the reserve file and the gate on writes that add jobs.
//!
//! When the disk holding the database fills up, SQLite fails the write with
//! `SQLITE_FULL` ("database or disk is full") and rolls it back: nothing is
//! half-written. But finishing a job also needs a little space (its event
//! row, WAL frames), so a disk filled by enqueues would stop the jobs already
//! stored from completing. kyu therefore keeps a reserve file beside the
//! database, `<file>.reserve` ([`RESERVE_BYTES`], allocated with
//! `posix_fallocate`):
//!
//! - The first write that meets `SQLITE_FULL` deletes the reserve (the writer
//!   does it, in any process sharing the file), and that write fails with
//!   [`StoreError::DiskFull`].
//! - While the reserve is missing, writes that add jobs (enqueue, schedule
//!   fires and triggers) are refused before anything is written, with the
//!   same error, so the space released goes to claims, heartbeats, finishes
//!   and deletes: the jobs already stored run to completion.
//! - Each such write first tries to make the reserve again: once twice its
//!   size is free, the file is re-made and writes go on. No restart needed.
//!
//! The missing file is the signal, so every process on the same database
//! sees it at once.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use kyu_core::StoreError;

/// The size of the reserve file: room for the results of many thousands of
/// jobs (each finish writes its row and an event; the WAL is reused after
/// each checkpoint).
pub const RESERVE_BYTES: u64 = 2 << 20;

/// The reserve of one database file.
#[derive(Debug)]
pub(crate) struct Reserve {
    db: PathBuf,
    file: PathBuf,
}

impl Reserve {
    /// The reserve of the database at `db`: `<db>.reserve`.
    pub(crate) fn new(db: &Path) -> Reserve {
        let mut s = db.as_os_str().to_owned();
        s.push(".reserve");
        Reserve {
            db: db.to_path_buf(),
            file: PathBuf::from(s),
        }
    }

    /// The error of a write refused for want of space.
    pub(crate) fn full(&self) -> StoreError {
        full_error(&self.db)
    }

    /// Makes sure the reserve is there before a write that adds jobs: true
    /// if it is (or could be made again), else the disk is full.
    pub(crate) fn ensure(&self) -> Result<(), StoreError> {
        if self.present() {
            return Ok(());
        }
        match free_bytes(&self.file) {
            Some(free) if free >= 2 * RESERVE_BYTES => {}
            Some(free) => {
                tracing::debug!(free, path = %self.db.display(), "kyu-sqlite: still short of space for the reserve");
                return Err(self.full());
            }
            None => {}
        }
        if let Err(e) = self.make() {
            // Another write of this process may have made it meanwhile.
            if self.present() {
                return Ok(());
            }
            tracing::warn!(error = %e, path = %self.file.display(), "kyu-sqlite: could not make the reserve file");
            return Err(self.full());
        }
        tracing::info!(path = %self.db.display(), "kyu-sqlite: space is back; the reserve is made again and jobs may be added");
        Ok(())
    }

    /// Allocates the reserve under a temporary name, then renames it, so a
    /// half-made reserve is never taken for one.
    fn make(&self) -> std::io::Result<()> {
        let mut tmp = self.file.as_os_str().to_owned();
        tmp.push(format!(".{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let made = (|| {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            // SAFETY: `f` is an open file for the duration of the call.
            let rc =
                unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, RESERVE_BYTES as libc::off_t) };
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            std::fs::rename(&tmp, &self.file)
        })();
        if made.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        made
    }

    /// Whether the reserve file is there (a missing one means the disk
    /// filled up and has not been freed since).
    pub(crate) fn present(&self) -> bool {
        self.file.exists()
    }

    /// Deletes the reserve (the writer met `SQLITE_FULL`); true if it was there.
    pub(crate) fn release(&self) -> bool {
        match std::fs::remove_file(&self.file) {
            Ok(()) => {
                tracing::warn!(
                    path = %self.db.display(),
                    "kyu-sqlite: the disk is full; the reserve is released so that stored jobs can finish, \
                     and jobs are refused until space is freed"
                );
                true
            }
            Err(_) => false,
        }
    }
}

/// The writer's watch on the reserve: while it is missing, the WAL is
/// checkpointed after every few pages (`wal_autocheckpoint`), so it is
/// reused from its start instead of growing into the space left.
pub(crate) struct LowSpace {
    reserve: Option<std::sync::Arc<Reserve>>,
    /// `wal_autocheckpoint` while space is not short.
    normal_pages: u32,
    low: bool,
    checked: Option<std::time::Instant>,
}

/// `wal_autocheckpoint` while space is short.
const LOW_SPACE_CHECKPOINT: u32 = 16;
/// How often the writer looks at the reserve file.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl LowSpace {
    /// A watch on `reserve` that sets `wal_autocheckpoint` back to
    /// `normal_pages` once space is no longer short.
    pub(crate) fn new(reserve: Option<std::sync::Arc<Reserve>>, normal_pages: u32) -> LowSpace {
        LowSpace {
            reserve,
            normal_pages,
            low: false,
            checked: None,
        }
    }

    /// Looks at the reserve (at most every [`CHECK_EVERY`], or at once
    /// after a group met a full disk) and sets `wal_autocheckpoint` to match.
    pub(crate) fn check(&mut self, conn: &rusqlite::Connection, met_full: bool) {
        let Some(reserve) = &self.reserve else { return };
        if met_full {
            reserve.release();
        }
        let now = std::time::Instant::now();
        if !met_full
            && self
                .checked
                .is_some_and(|t| now.duration_since(t) < CHECK_EVERY)
        {
            return;
        }
        self.checked = Some(now);
        let low = !reserve.present();
        if low != self.low {
            self.low = low;
            let pages = if low {
                LOW_SPACE_CHECKPOINT
            } else {
                self.normal_pages
            };
            if let Err(e) = conn.pragma_update(None, "wal_autocheckpoint", pages) {
                tracing::warn!(error = %e, "kyu-sqlite: could not set wal_autocheckpoint");
            }
        }
    }
}

/// The error of a write refused for want of space on the disk holding `db`.
pub(crate) fn full_error(db: &Path) -> StoreError {
    StoreError::DiskFull {
        path: db.display().to_string(),
    }
}

/// Whether a SQLite error is `SQLITE_FULL`.
pub(crate) fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

/// Bytes free to an unprivileged user on the file system holding `path`
/// (its directory), if `statvfs` answers.
fn free_bytes(path: &Path) -> Option<u64> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into `st`, which lives for the call; `c` is a
    // valid NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_made_released_and_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reserve::new(&dir.path().join("kyu.db"));
        r.ensure().unwrap();
        let file = dir.path().join("kyu.db.reserve");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), RESERVE_BYTES);
        assert!(r.release());
        assert!(!file.exists());
        assert!(!r.release());
        r.ensure().unwrap();
        assert!(file.exists());
        let e = r.full().to_string();
        assert!(e.contains("kyu.db is full"), "{e}");
    }
}
