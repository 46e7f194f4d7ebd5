//! SQLite-specific behaviour: several stores on one file (as several processes
//! would open it), cross-store wake-ups, reopening, URLs and schema versions.

use std::collections::HashSet;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kyu_core::{AttemptLogs, Claim, FinishOutcome, JobState, LogStore, NewJob, Store, StoreError};
use kyu_sqlite::{SqliteOptions, SqliteStore};

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("kyu.db")
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(
        &format!("sqlite://{}", path.display()),
        SqliteOptions::default(),
    )
    .expect("open")
}

fn wake_dir(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.wake", path.display()))
}

fn sockets(path: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(wake_dir(path)) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn claim(worker: &str, limit: usize) -> Claim {
    Claim {
        worker: worker.into(),
        queues: vec!["default".into()],
        kinds: None,
        limit,
        lease: Duration::from_secs(60),
        unstarted: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_never_claim_the_same_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = Arc::new(open(&path));
    let b = Arc::new(open(&path));
    let jobs: Vec<NewJob> = (0..600)
        .map(|i| NewJob::new("k", serde_json::json!({ "i": i })))
        .collect();
    let ids: HashSet<i64> = a
        .enqueue(jobs)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let mut tasks = Vec::new();
    for (n, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim(claim(&format!("w{n}"), 9)).await.unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got.iter().map(|j| j.id));
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut per_task = Vec::new();
    for t in tasks {
        let mine = t.await.unwrap();
        per_task.push(mine.len());
        for id in mine {
            assert!(seen.insert(id), "job {id} claimed twice");
        }
    }
    assert_eq!(seen, ids, "every job claimed exactly once: {per_task:?}");
    // Both stores see the same state.
    let any = *ids.iter().next().unwrap();
    assert_eq!(b.get(any).await.unwrap().unwrap().state, JobState::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_in_one_store_wakes_another_on_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let worker = open(&path);
    let producer = open(&path);
    let mut rx = worker.subscribe();
    rx.borrow_and_update();
    assert_eq!(sockets(&path).len(), 1, "subscribe binds one socket");
    producer
        .enqueue(vec![NewJob::new("k", serde_json::json!({}))])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("the other store's enqueue woke this one")
        .unwrap();
    // A retry wakes too.
    let id = producer
        .enqueue(vec![NewJob::new("k", serde_json::json!({})).max_attempts(1)])
        .await
        .unwrap()[0]
        .id;
    let got = producer.claim(claim("w", 10)).await.unwrap();
    let lease = got.iter().find(|j| j.id == id).unwrap().lease();
    producer
        .finish(vec![kyu_core::Finish {
            lease,
            worker: "w".into(),
            outcome: FinishOutcome::Errored {
                message: "x".into(),
                retry_at: chrono::Utc::now(),
                permanent: true,
            },
        }])
        .await
        .unwrap();
    rx.borrow_and_update();
    producer.retry(&[id]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("the other store's retry woke this one")
        .unwrap();
    drop(worker);
    assert!(
        sockets(&path).is_empty(),
        "a dropped store removes its socket: {:?}",
        sockets(&path)
    );
}

#[tokio::test]
async fn stale_sockets_are_removed_and_do_not_break_enqueue() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    let _rx = store.subscribe();
    // A socket left behind by a process that died: bound once, nobody listening.
    let stale = wake_dir(&path).join("999999-0-0.sock");
    drop(UnixDatagram::bind(&stale).unwrap());
    assert!(stale.exists());
    store
        .enqueue(vec![NewJob::new("k", serde_json::json!({}))])
        .await
        .unwrap();
    assert!(!stale.exists(), "the stale socket was removed");
    assert_eq!(sockets(&path).len(), 1, "our own socket stays");
}

#[tokio::test]
async fn reopening_keeps_jobs_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir).parent().unwrap().join("nested/dir/kyu.db");
    let id = {
        let store = open(&path);
        let id = store
            .enqueue(vec![
                NewJob::new("k", serde_json::json!({"keep": true})).tag("t")
            ])
            .await
            .unwrap()[0]
            .id;
        store.pause_queue("paused").await.unwrap();
        id
    };
    for _ in 0..2 {
        let store = open(&path);
        let job = store.get(id).await.unwrap().expect("the job survived");
        assert_eq!(job.args, r#"{"keep":true}"#);
        assert_eq!(job.tags, vec!["t".to_string()]);
        let stats = store.queue_stats().await.unwrap();
        assert!(stats.iter().any(|s| s.queue == "paused" && s.paused));
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version, 11,
        "migrations: 1 jobs, 2 schedules, 3 schedules declared by config, 4 claim by kind and workers, 5 API tokens, 6 events, 7 queue limits, 8 batches, 9 jobs claimed ahead and not started, 10 rate keys, 11 failed and cancelled jobs by id"
    );
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    drop(open(&path));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("version 99") && msg.contains("upgrade kyu"),
        "{msg}"
    );
}

#[test]
fn bad_urls_say_what_is_accepted() {
    for url in [
        "mysql://localhost/kyu",
        "",
        "sqlite://",
        "sqlite://x.db?mode=ro",
    ] {
        match SqliteStore::open(url, SqliteOptions::default()) {
            Err(StoreError::BadUrl { url: u, problem }) => {
                assert_eq!(u, url);
                let accepted = if url.contains('?') {
                    "accepted: synchronous=normal or synchronous=full"
                } else {
                    "accepted: sqlite://"
                };
                assert!(problem.contains(accepted), "{problem}");
            }
            other => panic!("{url:?} should be a bad URL, got {other:?}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    // A directory is not a database file: the URL is well formed, the file
    // system says no (not a bad URL).
    match SqliteStore::open(dir.path().to_str().unwrap(), SqliteOptions::default()) {
        Err(StoreError::Database(problem)) => {
            assert!(problem.contains("is a directory"), "{problem}")
        }
        other => panic!("a directory should be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn url_forms_open_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let abs = format!("sqlite://{}", path.display());
    assert!(abs.starts_with("sqlite:///"));
    let a = SqliteStore::open(&abs, SqliteOptions::default()).unwrap();
    let id = a
        .enqueue(vec![NewJob::new("k", serde_json::json!({}))])
        .await
        .unwrap()[0]
        .id;
    let b = SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default()).unwrap();
    assert!(b.get(id).await.unwrap().is_some());
    let c = SqliteStore::open(
        &format!("sqlite:{}", path.display()),
        SqliteOptions::default(),
    )
    .unwrap();
    assert!(c.get(id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_in_a_group_does_not_undo_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&db_path(&dir)));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 3 == 0 {
                // Fails inside the writer: no job 1_000_000.
                let r = store.set_logs(1_000_000, AttemptLogs::default()).await;
                assert!(matches!(r, Err(StoreError::NotFound(1_000_000))), "{r:?}");
                None
            } else {
                Some(
                    store
                        .enqueue(vec![NewJob::new("k", serde_json::json!({ "i": i }))])
                        .await
                        .unwrap()[0]
                        .id,
                )
            }
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    assert_eq!(ids.len(), 133);
    for id in ids {
        assert!(store.get(id).await.unwrap().is_some(), "job {id} was kept");
    }
}

/// Checkpoints are not left to the commit that crosses SQLite's threshold:
/// while the store stays open and nobody else touches the file, its own
/// checkpoint thread copies the WAL into the database file soon after the
/// writes, far below the writer's backstop (10,000 pages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_off_the_write_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    let db_size = || std::fs::metadata(&path).unwrap().len();
    let wal_size = || {
        std::fs::metadata(format!("{}-wal", path.display()))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let before = db_size();
    // About 1 MB of jobs: a few hundred pages, under the writer's backstop
    // and under SQLite's own threshold (1,000 pages).
    let big = "x".repeat(2_000);
    for _ in 0..5 {
        let jobs = (0..100)
            .map(|i| NewJob::new("k", serde_json::json!({ "i": i, "pad": big })))
            .collect();
        store.enqueue(jobs).await.unwrap();
    }
    assert!(wal_size() > 500_000, "the writes went to the WAL");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while db_size() < before + 500_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file is still {} bytes (WAL {} bytes): nothing checkpointed it",
            db_size(),
            wal_size()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
