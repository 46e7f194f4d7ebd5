//! Why a database file could not be opened, in words that name the file or
//! directory at fault: SQLite's own errors ("unable to open database file",
//! "attempt to write a readonly database") say neither what nor where.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kyu_core::StoreError;

/// Whether this process may write `path` (`access(2)`, which also honours
/// read-only mounts and immutable files, for root too).
fn writable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// The directory a database file lives in.
fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn who() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    format!("user id {uid}")
}

/// A permission problem that explains why `path` cannot be used as a
/// read-write database, if there is one.
pub(crate) fn permission_problem(path: &Path) -> Option<String> {
    let dir = dir_of(path);
    if path.exists() {
        if !writable(path) {
            return Some(format!(
                "permission denied: the database file {} is read-only for {}; kyu needs \
                 to write it (make it writable, or run kyu as its owner)",
                path.display(),
                who()
            ));
        }
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        if !writable(&dir) && !wal.exists() {
            return Some(format!(
                "permission denied: the directory {} is not writable for {}; SQLite \
                 needs to create {}-wal and {}-shm beside the database there",
                dir.display(),
                who(),
                path.display(),
                path.display()
            ));
        }
        return None;
    }
    if dir.is_dir() && !writable(&dir) {
        return Some(format!(
            "permission denied: cannot create the database {}: the directory {} is \
             not writable for {}",
            path.display(),
            dir.display(),
            who()
        ));
    }
    None
}

/// The first ancestor of `path` that exists but is not a directory.
fn file_in_the_way(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .find(|a| !a.as_os_str().is_empty() && a.exists())
        .filter(|a| !a.is_dir())
        .map(Path::to_path_buf)
}

/// The error for a directory of the database that could not be created.
pub(crate) fn create_dir_failed(path: &Path, dir: &Path, e: std::io::Error) -> StoreError {
    if let Some(file) = file_in_the_way(path) {
        return StoreError::Database(format!(
            "cannot create the database {}: {} is not a directory",
            path.display(),
            file.display()
        ));
    }
    let problem = match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "permission denied: cannot create the directory {} for the database {} ({})",
            dir.display(),
            path.display(),
            who()
        ),
        _ => format!(
            "cannot create the directory {} for the database {}: {e}",
            dir.display(),
            path.display()
        ),
    };
    StoreError::Database(problem)
}

/// The error for a database file that could not be opened or prepared:
/// a permission problem or a path through a regular file if that is why,
/// else SQLite's error with the file's name.
pub(crate) fn open_failed(path: &Path, e: impl std::fmt::Display) -> StoreError {
    if path.is_dir() {
        return StoreError::Database(format!(
            "cannot open the database {}: it is a directory, not a database file",
            path.display()
        ));
    }
    if let Some(file) = file_in_the_way(path) {
        return StoreError::Database(format!(
            "cannot open the database {}: {} is not a directory",
            path.display(),
            file.display()
        ));
    }
    match permission_problem(path) {
        Some(p) => StoreError::Database(p),
        None => StoreError::Database(format!(
            "cannot open {} as a SQLite database: {e}",
            path.display()
        )),
    }
}
