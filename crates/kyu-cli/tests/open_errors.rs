//! A database that cannot be opened says what happened and where: a
//! read-only file or directory is "permission denied" (exit 1), not a bad URL;
//! a PostgreSQL URL without a database name is refused before connecting.
//!
//! The tests run as root, for whom file modes do not apply: the read-only
//! cases run the real `kyu` binary as `nobody` with `setpriv` (skipped, with
//! a note, where it is missing).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

fn kyu(url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(KYU);
    c.arg("--database")
        .arg(url)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .current_dir("/");
    c
}

/// Runs kyu as the unprivileged user `nobody`, or `None` without setpriv.
fn as_nobody(url: &str, args: &[&str]) -> Option<Output> {
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let o = Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", KYU])
        .arg("--database")
        .arg(url)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .current_dir("/")
        .output()
        .expect("run setpriv");
    Some(o)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_read_only_database_says_permission_denied_and_where() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    chmod(d, 0o755); // others may enter, not write
    let db = d.join("kyu.db");
    let url = format!("sqlite://{}", db.display());

    // A directory that is not writable: no database can be made in it.
    let Some(o) = as_nobody(&url, &["enqueue", "k"]) else {
        eprintln!("setpriv not found: read-only cases not run");
        return;
    };
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(
        err.contains(&d.display().to_string()),
        "names the directory: {err}"
    );
    assert!(!err.contains("bad database URL"), "{err}");
    assert!(!db.exists());

    // A database file this user may not write.
    let o = kyu(&url, &["enqueue", "k"]).output().expect("enqueue");
    assert!(o.status.success(), "{}", stderr(&o));
    chmod(&db, 0o644);
    let o = as_nobody(&url, &["enqueue", "k"]).expect("setpriv");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(
        err.contains(&db.display().to_string()),
        "names the file: {err}"
    );
    assert!(!err.contains("bad database URL"), "{err}");
}

#[test]
fn a_database_under_a_regular_file_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "not a directory").expect("write");
    let url = format!("sqlite://{}/kyu.db", file.display());
    let o = kyu(&url, &["enqueue", "k"]).output().expect("run");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{} is not a directory", file.display())),
        "{err}"
    );
    assert!(!err.contains("bad database URL"), "{err}");
}

#[test]
fn a_postgres_url_without_a_database_name_is_refused() {
    for url in [
        "postgres://postgres@127.0.0.1:5432",
        "postgres://postgres@127.0.0.1:5432/",
        "postgresql://127.0.0.1/?schema=kyu",
    ] {
        let o = kyu(url, &["queues", "ls"]).output().expect("run");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains("no database name"), "{url}: {err}");
        assert!(
            err.contains("postgres://USER@HOST:PORT/DATABASE"),
            "{url}: {err}"
        );
    }
}
