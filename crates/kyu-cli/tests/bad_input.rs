//! Bad input never writes: every command and every kyu.toml field, given an
//! invalid value, exits 2 with a message naming the value and what is
//! accepted, and leaves the database byte for byte as it was.
//!
//! One database is made with jobs, a schedule and a paused queue; its files
//! are read after a read-only command has run (so SQLite's WAL is
//! checkpointed), then each case runs against it and the files are compared.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn db(&self) -> PathBuf {
        self.dir.path().join("kyu.db")
    }
    fn url(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }
    /// Runs `kyu --database URL ARGS` (or, with `toml`, from a directory
    /// whose kyu.toml is `toml` and names the database), with a time limit:
    /// a command that should have been refused and runs on instead fails.
    fn run(&self, toml: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new(KYU);
        c.env_remove("KYU_DATABASE_URL").env_remove("KYU_CONFIG");
        let conf_dir = self.dir.path().join("conf");
        match toml {
            Some(t) => {
                std::fs::create_dir_all(&conf_dir).unwrap();
                let text = t.replace("$DB", &self.url());
                std::fs::write(conf_dir.join("kyu.toml"), text).unwrap();
                c.current_dir(&conf_dir);
            }
            None => {
                c.current_dir(self.dir.path());
                if !args.contains(&"--database") {
                    c.arg("--database").arg(self.url());
                }
            }
        }
        let mut child = c
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > end {
                let _ = child.kill();
                let o = child.wait_with_output().unwrap();
                panic!(
                    "kyu {args:?} (kyu.toml {toml:?}) was not refused and ran on: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }
    fn ok(&self, args: &[&str]) {
        let o = self.run(None, args);
        assert!(
            o.status.success(),
            "kyu {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    /// The database's files, byte for byte.
    fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("kyu.db"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }
}

/// A database with two jobs (one with a unique key), a schedule and a paused queue.
fn site() -> Site {
    let site = Site {
        dir: tempfile::tempdir().unwrap(),
    };
    site.ok(&["enqueue", "k", r#"{"n":1}"#, "--queue", "mail"]);
    site.ok(&["enqueue", "k", r#"{"n":2}"#, "--unique-key", "u1"]);
    site.ok(&[
        "schedules",
        "add",
        "nightly",
        "0 2 * * *",
        "k",
        "--tz",
        "Asia/Tokyo",
    ]);
    site.ok(&["queues", "pause", "mail"]);
    // A read-only command: after it, the WAL is checkpointed and the files
    // are at rest, so any later difference is a write.
    site.ok(&["jobs", "ls"]);
    site
}

/// Runs each case; each must exit 2, say every expected word (the value and
/// what is accepted), and leave the database unchanged.
fn check_refused(
    site: &Site,
    toml: Option<&str>,
    args: &[&str],
    expect: &[&str],
) -> Option<String> {
    let before = site.snapshot();
    let o = site.run(toml, args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let after = site.snapshot();
    let mut problems = Vec::new();
    if o.status.code() != Some(2) {
        problems.push(format!("exit {:?}, not 2", o.status.code()));
    }
    if err.contains("panicked") {
        problems.push("panicked".into());
    }
    for w in expect {
        if !err.contains(w) {
            problems.push(format!("no {w:?} in the message"));
        }
    }
    if before != after {
        let names = |s: &[(String, Vec<u8>)]| {
            s.iter()
                .map(|(n, b)| format!("{n} ({} bytes)", b.len()))
                .collect::<Vec<_>>()
        };
        problems.push(format!(
            "the database changed: {:?} -> {:?}",
            names(&before),
            names(&after)
        ));
    }
    (!problems.is_empty()).then(|| {
        format!(
            "kyu {args:?}{}: {}\n    stderr: {}",
            toml.map(|t| format!(" with kyu.toml {t:?}"))
                .unwrap_or_default(),
            problems.join("; "),
            err.trim()
        )
    })
}

#[test]
fn every_command_refuses_bad_values_without_writing() {
    let site = site();
    #[rustfmt::skip]
    let cases: &[(&[&str], &[&str])] = &[
        // enqueue
        (&["enqueue", "k", "{not json"], &["not valid JSON", "line 1 column 2"]),
        (&["enqueue", "", "{}"], &["kind", "1 to 128 characters"]),
        (&["enqueue", "k\u{7}", "{}"], &["kind", "control"]),
        (&["enqueue", "k", "{}", "--queue", ""], &["queue", "1 to 128 characters"]),
        (&["enqueue", "k", "{}", "--queue", " mail"], &["queue", "leading or trailing"]),
        (&["enqueue", "k", "{}", "--priority", "high"], &["'high'", "--priority"]),
        (&["enqueue", "k", "{}", "--max-attempts", "0"], &["max_attempts", "0 is not accepted"]),
        (&["enqueue", "k", "{}", "--max-attempts", "-1"], &["\"-1\"", "--max-attempts", "accepted: a whole number"]),
        (&["enqueue", "k", "{}", "--retry", "linear:1s"], &["\"linear:1s\"", "accepted: exponential:INITIAL:CAP"]),
        (&["enqueue", "k", "{}", "--retry", "exponential:5s:1s"], &["cap 1000 ms", "at least the initial delay"]),
        (&["enqueue", "k", "{}", "--timeout", "0s"], &["timeout", "positive"]),
        (&["enqueue", "k", "{}", "--timeout", "soon"], &["\"soon\"", "accepted: a number with a unit"]),
        (&["enqueue", "k", "{}", "--delay", "-5m"], &["\"-5m\"", "accepted: a number with a unit"]),
        (&["enqueue", "k", "{}", "--run-at", "tomorrow"], &["\"tomorrow\"", "RFC 3339"]),
        (&["enqueue", "k", "{}", "--unique-key", ""], &["unique_key", "1 to 512 bytes"]),
        (&["enqueue", "k", "{}", "--unique-for", "5m"], &["--unique-key"]),
        (&["enqueue", "k", "{}", "--tag", ""], &["tag \"\"", "1 to 128 bytes"]),
        (&["enqueue", "k", "--jsonl"], &[]),
        // jobs
        (&["jobs", "ls", "--state", "done"], &["\"done\"", "accepted: scheduled, available"]),
        (&["jobs", "ls", "--limit", "0"], &["'0'", "1..=10000"]),
        (&["jobs", "show", "abc"], &["'abc'"]),
        (&["jobs", "cancel", "x1"], &["'x1'"]),
        (&["jobs", "retry", "--queue", "mail"], &["--all-failed"]),
        (&["jobs", "logs", "-1"], &["'-1'"]),
        // queues
        (&["queues", "pause", ""], &["queue", "1 to 128 characters"]),
        (&["queues", "resume", " mail"], &["queue", "leading or trailing"]),
        // schedules
        (&["schedules", "add", "s", "61 * * * *", "k"], &["minute field \"61\"", "accepted"]),
        (&["schedules", "add", "s", "0 2 * * *", "k", "--tz", "Mars/Olympus"], &["\"Mars/Olympus\"", "IANA"]),
        (&["schedules", "add", "s", "0 2 * * *", "k", "--overlap", "sometimes"], &["\"sometimes\"", "allow"]),
        (&["schedules", "add", "s", "0 2 * * *", "k", "--misfire", "later"], &["\"later\"", "run_once"]),
        (&["schedules", "add", "s", "0 2 * * *", "k", "{bad"], &["not valid JSON"]),
        (&["schedules", "add", "", "0 2 * * *", "k"], &["name", "1 to 128"]),
        (&["schedules", "add", "s", "0 2 * * *", ""], &["kind", "1 to 128 characters"]),
        (&["schedules", "add", "s", "0 2 * * *", "k", "--max-attempts", "0"], &["max_attempts", "0 is not accepted"]),
        (&["schedules", "preview", "* * *"], &["has 3 fields", "accepted: 5 fields"]),
        (&["schedules", "preview", "* * * * *", "--count", "0"], &["--count 0", "1 to 10000"]),
        (&["schedules", "preview", "* * * * *", "--after", "noon"], &["\"noon\"", "RFC 3339"]),
        // serve and worker
        (&["serve", "--queue", "default=0"], &["\"default=0\"", "at least 1"]),
        (&["worker", "--queue", "=3"], &["queue", "1 to 128 characters"]),
        (&["worker", "--queue", "mail"], &["\"mail\"", "NAME=N"]),
        // progress (the command a job runs)
        (&["progress", "101"], &["101", "0..=100"]),
        // the database URL itself
        (&["--database", "mysql://x", "jobs", "ls"], &["mysql://x", "accepted: sqlite://PATH"]),
        (&["--database", "sqlite://kyu.db?mode=ro", "jobs", "ls"], &["\"mode=ro\"", "synchronous=normal"]),
        (&["--database", "postgres://u@127.0.0.1:1/d?sslmode=bogus", "jobs", "ls"], &["bogus", "disable"]),
        (&["--database", "postgres://u@127.0.0.1:1/d?statement_timeout=soon", "jobs", "ls"], &["\"soon\"", "statement_timeout"]),
        (&["--database", "postgres://u@127.0.0.1:1/d?connect_timeout=-1", "jobs", "ls"], &["\"-1\"", "connect_timeout"]),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(args, expect)| check_refused(&site, None, args, expect))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} bad commands were not refused as they should be:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}

#[test]
fn every_kyu_toml_field_refuses_bad_values_without_writing() {
    let site = site();
    let job = "[jobs.k]\ncommand = [\"true\"]\n";
    let sched = "[jobs.k]\ncommand = [\"true\"]\n\n[[schedules]]\nname = \"s\"\ncron = \"0 2 * * *\"\nkind = \"k\"\n";
    #[rustfmt::skip]
    let cases: Vec<(String, &[&str])> = vec![
        ("database = \"mysql://x\"\n".into(), &["mysql://x", "accepted"]),
        ("database = 5\n".into(), &["kyu.toml:1", "string"]),
        ("databse = \"$DB\"\n".into(), &["kyu.toml:1", "`databse`", "expected one of"]),
        ("database = \"$DB\"\n[queues.mail]\nconcurrency = 0\n".into(), &["kyu.toml:2", "concurrency: 0 is not accepted", "1 or more"]),
        ("database = \"$DB\"\n[queues.mail]\nconcurrency = -1\n".into(), &["kyu.toml:3", "-1"]),
        ("database = \"$DB\"\n[queues.mail]\npaused = \"yes\"\n".into(), &["kyu.toml:3", "\"yes\"", "boolean"]),
        ("database = \"$DB\"\n[queues.\" mail\"]\n".into(), &["kyu.toml:2", "leading or trailing"]),
        ("database = \"$DB\"\n[worker]\nlease = \"0s\"\n".into(), &["kyu.toml:3", "worker.lease", "at least 1s"]),
        ("database = \"$DB\"\n[worker]\nlease = \"soon\"\n".into(), &["kyu.toml:3", "\"soon\"", "a number with a unit"]),
        ("database = \"$DB\"\n[worker]\nshutdown_grace = \"-1s\"\n".into(), &["kyu.toml:3", "\"-1s\""]),
        ("database = \"$DB\"\n[retention]\nevery = \"0s\"\n".into(), &["kyu.toml:3", "retention.every", "positive"]),
        ("database = \"$DB\"\n[retention]\ncompleted = \"a week\"\n".into(), &["kyu.toml:3", "\"a week\"", "a number with a unit"]),
        (format!("database = \"$DB\"\n{job}timeout = \"0s\"\n"), &["kyu.toml:4", "jobs.k.timeout", "positive"]),
        (format!("database = \"$DB\"\n{job}max_attempts = 0\n"), &["jobs.k.max_attempts: 0 is not accepted", "1 or more"]),
        (format!("database = \"$DB\"\n{job}retry = \"linear\"\n"), &["kyu.toml:4", "\"linear\"", "exponential:INITIAL:CAP"]),
        (format!("database = \"$DB\"\n{job}priority = \"high\"\n"), &["kyu.toml:4", "\"high\"", "expected i32"]),
        (format!("database = \"$DB\"\n{job}stop_grace = \"x\"\n"), &["kyu.toml:4", "\"x\"", "a number with a unit"]),
        (format!("database = \"$DB\"\n{job}log_limit = -1\n"), &["kyu.toml:4", "-1"]),
        (format!("database = \"$DB\"\n{job}result_from_stdout = \"yes\"\n"), &["kyu.toml:4", "\"yes\"", "boolean"]),
        (format!("database = \"$DB\"\n{job}permanent_exit_codes = [\"x\"]\n"), &["kyu.toml:4", "\"x\"", "i32"]),
        (format!("database = \"$DB\"\n{job}queue = \"\"\n"), &["kyu.toml:4", "jobs.k.queue", "1 to 128 characters"]),
        (format!("database = \"$DB\"\n{job}cwd = 5\n"), &["kyu.toml:4", "5"]),
        (format!("database = \"$DB\"\n{job}env = {{ A = 1 }}\n"), &["kyu.toml:4", "string"]),
        ("database = \"$DB\"\n[jobs.k]\ncommand = []\n".into(), &["jobs.k.command: empty", "give the program"]),
        ("database = \"$DB\"\n[jobs.k]\nqueue = \"q\"\n".into(), &["kyu.toml:2", "`command`"]),
        (format!("database = \"$DB\"\n{sched}cron = \"x\"\n").replace("cron = \"0 2 * * *\"\n", ""), &["\"x\"", "accepted"]),
        (format!("database = \"$DB\"\n{sched}zone = \"Mars/Olympus\"\n"), &["\"Mars/Olympus\"", "IANA"]),
        (format!("database = \"$DB\"\n{sched}overlap = \"sometimes\"\n"), &["\"sometimes\"", "accepted: allow, skip, buffer_one"]),
        (format!("database = \"$DB\"\n{sched}misfire = \"later\"\n"), &["\"later\"", "accepted: skip, run_once"]),
        (format!("database = \"$DB\"\n{sched}enabled = \"yes\"\n"), &["\"yes\"", "boolean"]),
        (format!("database = \"$DB\"\n{sched}priority = 1.5\n"), &["1.5", "expected i32"]),
        (format!("database = \"$DB\"\n{sched}max_attempts = 0\n"), &["max_attempts", "0 is not accepted"]),
        (format!("database = \"$DB\"\n{sched}retry = \"fixed\"\n"), &["\"fixed\"", "fixed:DELAY"]),
        (format!("database = \"$DB\"\n{sched}timeout = \"0s\"\n"), &["timeout", "positive"]),
        (format!("database = \"$DB\"\n{sched}tags = [\"\"]\n"), &["tag \"\"", "1 to 128 bytes"]),
        (format!("database = \"$DB\"\n{sched}queue = \" q\"\n"), &["queue", "leading or trailing"]),
        (format!("database = \"$DB\"\n{sched}\n[[schedules]]\nname = \"s\"\ncron = \"0 3 * * *\"\nkind = \"k\"\n"), &["\"s\" is used twice", "unique"]),
        (format!("database = \"$DB\"\n{sched}").replace("kind = \"k\"\n", ""), &["`kind`"]),
        (format!("database = \"$DB\"\n{sched}nme = 1\n"), &["`nme`", "expected one of"]),
    ];
    // `kyu serve` reads every field (and would apply the schedules);
    // `enqueue` is the command that writes a job with the kind's settings.
    let mut failures = Vec::new();
    for (toml, expect) in &cases {
        for args in [&["serve"][..], &["enqueue", "k", "{}"][..]] {
            if let Some(f) = check_refused(&site, Some(toml), args, expect) {
                failures.push(f);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} runs with a bad kyu.toml were not refused as they should be:\n  {}",
        failures.len(),
        cases.len() * 2,
        failures.join("\n  ")
    );
}
