//! `kyu schedules …` and the scheduler in `kyu serve`, as a user runs them.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

fn kyu(dir: &Path, args: &[&str]) -> Output {
    Command::new(KYU)
        .current_dir(dir)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .output()
        .expect("run kyu")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = kyu(dir, args);
    assert!(
        o.status.success(),
        "kyu {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8")
}

fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(dir, &all)).expect("JSON output")
}

fn fails(dir: &Path, args: &[&str], code: i32) -> String {
    let o = kyu(dir, args);
    assert_eq!(o.status.code(), Some(code), "kyu {args:?}");
    String::from_utf8(o.stderr).expect("utf-8")
}

#[test]
fn preview_prints_fire_times_without_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ok(
        dir.path(),
        &[
            "schedules",
            "preview",
            "30 2 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-03-07T00:00:00Z",
            "--count",
            "3",
        ],
    );
    // 02:30 does not exist on 2026-03-08: it fires at 03:00 EDT.
    assert!(out.contains("2026-03-07 07:30:00Z"), "{out}");
    assert!(out.contains("2026-03-08 07:00:00Z"), "{out}");
    assert!(out.contains("2026-03-09 06:30:00Z"), "{out}");
    let v = json(
        dir.path(),
        &[
            "schedules",
            "preview",
            "@daily",
            "--tz",
            "Asia/Tokyo",
            "--after",
            "2030-01-01T00:00:00Z",
            "-n",
            "2",
        ],
    );
    assert_eq!(v["fire_times"][0]["utc"], "2030-01-01T15:00:00Z");
    assert_eq!(v["fire_times"][1]["local"], "2030-01-03T00:00:00+09:00");
    let e = fails(dir.path(), &["schedules", "preview", "0 0 * * FOO"], 2);
    assert!(e.contains("day-of-week") && e.contains("accepted"), "{e}");
    let e = fails(
        dir.path(),
        &["schedules", "preview", "* * * * *", "--tz", "asia/tokyo"],
        2,
    );
    assert!(e.contains("did you mean Asia/Tokyo"), "{e}");
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
        "preview created no file"
    );
}

#[test]
fn add_ls_trigger_disable_enable_rm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Bad input is refused before a database is made.
    let e = fails(
        d,
        &[
            "schedules",
            "add",
            "s",
            "* * * * *",
            "k",
            "--overlap",
            "never",
        ],
        2,
    );
    assert!(e.contains("allow, skip, buffer_one"), "{e}");
    let e = fails(d, &["schedules", "add", "s", "* * * * *", "k", "{"], 2);
    assert!(e.contains("job.args"), "{e}");
    assert!(!d.join("kyu.db").exists());

    let out = ok(
        d,
        &[
            "schedules",
            "add",
            "nightly",
            "0 3 * * *",
            "report",
            r#"{"format":"pdf"}"#,
            "--tz",
            "Asia/Tokyo",
            "--misfire",
            "run_once",
            "--queue",
            "reports",
        ],
    );
    assert!(out.contains("schedule nightly saved"), "{out}");
    let ls = json(d, &["schedules", "ls"]);
    let s = &ls[0];
    assert_eq!(s["name"], "nightly");
    assert_eq!(s["zone"], "Asia/Tokyo");
    assert_eq!(s["misfire"], "run_once");
    assert_eq!(s["overlap"], "skip");
    assert_eq!(s["job"]["queue"], "reports");
    assert!(s["next_fire_at"]
        .as_str()
        .expect("next")
        .ends_with("T18:00:00Z"));

    let t = json(d, &["schedules", "trigger", "nightly"]);
    let id = t["job"].as_i64().expect("job id");
    let ls = ok(d, &["schedules", "ls"]);
    assert!(ls.contains("NEXT FIRE") && ls.contains("available"), "{ls}");
    assert!(ls.contains(&format!(" {id} ")), "{ls}");

    ok(d, &["schedules", "disable", "nightly"]);
    assert!(ok(d, &["schedules", "ls"]).contains("disabled"));
    ok(d, &["schedules", "enable", "nightly"]);
    assert_eq!(json(d, &["schedules", "ls"])[0]["enabled"], true);
    let e = fails(d, &["schedules", "trigger", "nope"], 3);
    assert!(e.contains("\"nope\" not found"), "{e}");
    fails(d, &["schedules", "enable", "nope"], 3);
    ok(d, &["schedules", "rm", "nightly"]);
    fails(d, &["schedules", "rm", "nightly"], 3);
    assert_eq!(json(d, &["schedules", "ls"]), serde_json::json!([]));
}

#[test]
fn config_check_names_the_line_of_a_bad_schedule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join("kyu.toml"),
        "[[schedules]]\nname = \"a\"\nkind = \"k\"\ncron = \"* * * * *\"\n\n\
         [[schedules]]\nname = \"b\"\nkind = \"k\"\ncron = \"61 * * * *\"\n",
    )
    .expect("write");
    let e = fails(d, &["config", "check"], 2);
    assert!(
        e.contains("kyu.toml:9: schedules.b: cron: minute field \"61\""),
        "{e}"
    );
    std::fs::write(
        d.join("kyu.toml"),
        "[[schedules]]\nname = \"a\"\nkind = \"k\"\ncron = \"* * * * *\"\nzone = \"Mars/Base\"\n",
    )
    .expect("write");
    let e = fails(d, &["config", "check"], 2);
    assert!(e.contains("kyu.toml:5: schedules.a: timezone"), "{e}");
}

/// `kyu serve` declares the schedules of kyu.toml, says when they fire next,
/// and fires them; a second `kyu serve` on the same database does not fire
/// any second twice.
#[test]
fn serve_runs_the_schedules_of_kyu_toml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join("kyu.toml"),
        r#"database = "sqlite://kyu.db"

[jobs.ping]
command = ["sh", "-c", "echo pong"]

[[schedules]]
name = "every-second"
cron = "* * * * * *"
kind = "ping"
overlap = "allow"

[[schedules]]
name = "tokyo-morning"
cron = "0 9 * * *"
zone = "Asia/Tokyo"
kind = "ping"
args = { user = 42 }
"#,
    )
    .expect("write");
    let spawn = || {
        Command::new(KYU)
            .current_dir(d)
            .arg("serve")
            .env_remove("KYU_DATABASE_URL")
            .env_remove("KYU_CONFIG")
            // A free port of the system's choosing: two serves run at once.
            .env("KYU_HTTP", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kyu serve")
    };
    let mut a = spawn();
    let mut b = spawn();
    let start = Instant::now();
    // `jobs ls` never creates the database: wait for serve to.
    while !d.join("kyu.db").exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "no database");
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        let jobs = json(d, &["jobs", "ls", "--kind", "ping", "--state", "completed"]);
        if jobs["jobs"].as_array().map_or(0, |j| j.len()) >= 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no jobs in 20 s: {jobs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for child in [&mut a, &mut b] {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    let out_a = a.wait_with_output().expect("wait");
    let out_b = b.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out_a.stderr);
    assert!(
        err.contains("schedules every-second next") && err.contains("JST Asia/Tokyo"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out_b.stderr).contains("kyu stopped"));
    let jobs = json(d, &["jobs", "ls", "--kind", "ping"]);
    let mut keys: Vec<String> = jobs["jobs"]
        .as_array()
        .expect("array")
        .iter()
        .map(|j| j["unique_key"].as_str().expect("key").to_string())
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "one job per fire time");
}
