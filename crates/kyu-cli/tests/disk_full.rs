//! A full disk (issue 14, point 3): the SQLite database on a 16 MiB tmpfs
//! this test mounts (as root; skipped with a message where mounting is not
//! permitted), filled by a file until enqueue fails.
//!
//! Then: enqueue is refused, through the library and through the `kyu`
//! binary, with an error naming the disk's database file; the jobs already
//! stored are run to completion by a worker process started on the full
//! disk; `PRAGMA integrity_check` is `ok`; and once the filler is deleted,
//! enqueue works again in the same processes (no restart) and the worker
//! runs the new jobs.
//!
//! The worker is this test binary run again with `KYU_DISK_ROLE=worker`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kyu::{JobState, Kyu, NewJob, Outcome, Worker};

const STORED: usize = 200;

fn append(path: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(format!("{line}\n").as_bytes())
        .expect("write log");
}

/// The worker process: runs `disk` jobs, logging each run outside the
/// full disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_child() {
    if std::env::var("KYU_DISK_ROLE").is_err() {
        return; // not a child
    }
    let url = std::env::var("KYU_DISK_URL").unwrap();
    let log = std::env::var("KYU_DISK_LOG").unwrap();
    let kyu = Kyu::connect(&url).await.unwrap();
    let _worker = Worker::new(&kyu)
        .handle("disk", move |ctx| {
            let log = log.clone();
            async move {
                append(&log, &ctx.id().to_string());
                Ok(Outcome::Done)
            }
        })
        .queue("default", 4)
        .configure(|c| {
            c.poll_interval = Duration::from_millis(50);
            c.id = format!("disk-worker-{}", std::process::id());
        })
        .start();
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn new(dir: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
        }
        Ok(Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kyu_cli(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kyu"))
        .arg("--database")
        .arg(url)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .output()
        .expect("run kyu")
}

/// Writes `path` until the disk is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = f.sync_all();
    written
}

async fn completed(kyu: &Kyu) -> u64 {
    kyu.queues()
        .await
        .unwrap()
        .iter()
        .map(|q| q.count(JobState::Completed))
        .sum()
}

async fn wait_completed(kyu: &Kyu, n: u64, limit: Duration, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let done = completed(kyu).await;
        if done >= n {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: {done} of {n} jobs completed after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn integrity(db: &Path) -> String {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_enqueues_finishes_stored_jobs_and_recovers_without_restart() {
    if std::env::var("KYU_DISK_ROLE").is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("disk");
    let _mount = match Mount::new(&mnt, "16m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "skipped: cannot mount a 16 MiB tmpfs for the full-disk test (needs root): {e}"
            );
            return;
        }
    };
    let db = mnt.join("kyu.db");
    let url = format!("sqlite://{}", db.display());
    let runs = tmp.path().join("runs.log").display().to_string();
    let kyu = Kyu::connect(&url).await.unwrap();

    // Jobs stored before the disk fills, each with some args.
    let pad = "x".repeat(1000);
    let jobs: Vec<NewJob> = (0..STORED)
        .map(|i| NewJob::new("disk", serde_json::json!({ "n": i, "pad": pad })))
        .collect();
    kyu.enqueue_many(jobs).await.unwrap();
    let reserve = mnt.join("kyu.db.reserve");
    assert!(
        reserve.exists(),
        "the reserve file is made at the first enqueue"
    );

    // Fill the disk, then enqueue until kyu says it is full.
    let filler = mnt.join("filler");
    let filled = fill(&filler);
    let mut extra = 0usize;
    let error = loop {
        let batch: Vec<NewJob> = (0..20)
            .map(|i| NewJob::new("disk", serde_json::json!({ "extra": i, "pad": pad })))
            .collect();
        match kyu.enqueue_many(batch).await {
            Ok(out) => extra += out.len(),
            Err(e) => break e.to_string(),
        }
        assert!(extra < 100_000, "enqueue never failed on a full disk");
    };
    let expected = format!("the disk holding {} is full", db.display());
    assert!(error.contains(&expected), "{error}");
    assert!(error.contains("nothing was written"), "{error}");
    assert!(
        !reserve.exists(),
        "the reserve is released when the disk fills"
    );
    // Refused again, up front, while the disk stays full.
    let again = kyu
        .enqueue(NewJob::new("disk", serde_json::json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains(&expected), "{again}");
    // And through the binary, another process.
    let o = kyu_cli(&url, &["enqueue", "disk", "{}"]);
    let cli_error = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{cli_error}");
    assert!(cli_error.contains(&expected), "{cli_error}");
    let stored = (STORED + extra) as u64;

    // A worker started on the full disk runs every stored job.
    let _worker = Killed(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "disk_full_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KYU_DISK_ROLE", "worker")
            .env("KYU_DISK_URL", &url)
            .env("KYU_DISK_LOG", &runs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the worker"),
    );
    let took = wait_completed(&kyu, stored, Duration::from_secs(60), "on the full disk").await;
    assert!(filler.exists());
    let ran = std::fs::read_to_string(&runs).unwrap().lines().count();
    let integrity_full = integrity(&db);
    assert_eq!(integrity_full, "ok");

    // Space comes back: the same processes carry on.
    std::fs::remove_file(&filler).unwrap();
    let o = kyu_cli(&url, &["enqueue", "disk", "{\"after\": 1}"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let more: Vec<NewJob> = (0..10)
        .map(|i| NewJob::new("disk", serde_json::json!({ "after": i })))
        .collect();
    kyu.enqueue_many(more).await.unwrap();
    assert!(
        reserve.exists(),
        "the reserve is made again once space is back"
    );
    wait_completed(
        &kyu,
        stored + 11,
        Duration::from_secs(60),
        "after the space came back",
    )
    .await;
    drop(_worker);
    drop(kyu);
    let integrity_end = integrity(&db);
    assert_eq!(integrity_end, "ok");
    println!(
        "disk full: 16 MiB tmpfs, filler {} KiB; {STORED} jobs stored before, {extra} more accepted \
         until the disk filled; enqueue refused (library and `kyu enqueue`, exit 1): {cli}; \
         all {stored} stored jobs completed on the full disk in {took:.1?} ({ran} runs) by a \
         worker process started after it filled; integrity_check {integrity_full}; after the \
         filler was deleted 11 more enqueued and completed without a restart; integrity_check \
         {integrity_end}",
        filled / 1024,
        cli = cli_error.trim(),
    );
}
