//! `kyu serve` / `kyu worker` with command jobs from kyu.toml, as a user runs
//! them: real processes, real signals.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    /// A directory with a kyu.toml (whose database is `kyu.db` in it).
    fn new(toml: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kyu.toml"), toml).unwrap();
        Site { dir }
    }
    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KYU);
        c.current_dir(self.dir.path())
            .args(args)
            .env_remove("KYU_DATABASE_URL")
            .env_remove("KYU_CONFIG")
            // A free port of the system's choosing: tests run many serves at once.
            .env("KYU_HTTP", "127.0.0.1:0");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let o = self.run(&all);
        assert!(
            o.status.success(),
            "kyu {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }
    fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn signal(child: &mut Child, sig: i32) {
    // SAFETY: signalling a child we started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

#[test]
fn config_errors_name_the_file_and_line() {
    let site = Site::new("database = \"sqlite://kyu.db\"\n\n[jobs.sync]\ncomand = [\"true\"]\n");
    let o = site.run(&["config", "check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("kyu.toml:4"), "{err}");
    assert!(err.contains("unknown field `comand`"), "{err}");
    assert!(err.contains("command"), "says what is accepted: {err}");

    let site = Site::new("[jobs.sync]\ncommand = [\"true\"]\ntimeout = \"soon\"\n");
    let err = String::from_utf8_lossy(&site.run(&["config", "check"]).stderr).into_owned();
    assert!(
        err.contains("kyu.toml:3") && err.contains("a number with a unit"),
        "{err}"
    );

    let site = Site::new("[queues.default]\nconcurrency = 0\n");
    let err = String::from_utf8_lossy(&site.run(&["config", "check"]).stderr).into_owned();
    assert!(
        err.contains("kyu.toml:1") && err.contains("1 or more"),
        "{err}"
    );
}

#[test]
fn config_check_prints_what_it_understood() {
    let site = Site::new(
        "[jobs.sync]\ncommand = [\"python3\", \"-u\", \"sync.py\"]\nqueue = \"batch\"\ntimeout = \"1h\"\nmax_attempts = 3\n",
    );
    let o = site.run(&["config", "check"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    // The default database is beside kyu.toml, shown by its absolute path.
    let db = site.dir.path().canonicalize().unwrap().join("kyu.db");
    assert!(
        out.contains(&format!("database   sqlite://{}\n", db.display())),
        "{out}"
    );
    assert!(
        out.contains("job kind   sync")
            && out.contains("queue batch")
            && out.contains("timeout 1h")
            && out.contains("3 attempts"),
        "{out}"
    );
}

#[test]
fn enqueue_uses_the_kinds_defaults_from_kyu_toml() {
    let site = Site::new(
        "[jobs.sync]\ncommand = [\"true\"]\nqueue = \"batch\"\nmax_attempts = 2\npriority = -3\n",
    );
    site.run(&["enqueue", "sync"]);
    let job = site.json(&["jobs", "show", "1"]);
    assert_eq!(job["queue"], "batch");
    assert_eq!(job["max_attempts"], 2);
    assert_eq!(job["priority"], -3);
    // A flag wins over the file.
    site.run(&["enqueue", "sync", "--queue", "other"]);
    assert_eq!(site.json(&["jobs", "show", "2"])["queue"], "other");
}

#[test]
fn serve_runs_a_script_with_progress_and_logs_then_stops_on_sigterm() {
    let toml = format!(
        r#"[jobs.report]
command = ["sh", "-c", "echo start $KYU_JOB_ID; {kyu} progress 40 'step 2 of 5'; echo warn >&2; sleep 0.3; echo done"]
"#,
        kyu = KYU
    );
    let site = Site::new(&toml);
    let mut serve = site.spawn(&["serve"]);
    site.run(&["enqueue", "report", r#"{"n":1}"#]);
    wait_until(Duration::from_secs(30), "the job completes", || {
        site.json(&["jobs", "show", "1"])["state"] == "completed"
    });
    let job = site.json(&["jobs", "show", "1"]);
    assert_eq!(
        job["progress"]["percent"], 40,
        "kyu progress reached the job: {job}"
    );
    assert_eq!(job["progress"]["message"], "step 2 of 5");
    let shown = String::from_utf8_lossy(&site.run(&["jobs", "show", "1"]).stdout).into_owned();
    assert!(shown.contains("progress     40% step 2 of 5"), "{shown}");

    let logs = site.run(&["jobs", "logs", "1"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "start 1\ndone\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "warn\n");

    signal(&mut serve, libc::SIGTERM);
    let status = serve.wait().unwrap();
    assert!(
        status.success(),
        "serve exits cleanly on SIGTERM: {status:?}"
    );
}

#[test]
fn logs_follow_streams_until_the_job_ends() {
    let toml = "[jobs.slow]\ncommand = [\"sh\", \"-c\", \"for i in 1 2 3 4; do echo tick $i; sleep 0.4; done\"]\n";
    let site = Site::new(toml);
    let mut serve = site.spawn(&["serve"]);
    site.run(&["enqueue", "slow"]);
    wait_until(Duration::from_secs(30), "the job starts", || {
        site.json(&["jobs", "show", "1"])["state"] == "running"
    });
    let follow = site.run(&["jobs", "logs", "1", "--follow"]);
    assert!(follow.status.success());
    assert_eq!(
        String::from_utf8_lossy(&follow.stdout),
        "tick 1\ntick 2\ntick 3\ntick 4\n",
        "every line once, in order"
    );
    assert_eq!(site.json(&["jobs", "show", "1"])["state"], "completed");
    signal(&mut serve, libc::SIGTERM);
    serve.wait().unwrap();
}

#[test]
fn a_sigkilled_worker_loses_no_job() {
    let toml = format!(
        r#"[worker]
lease = "2s"

[queues.default]
concurrency = 4

[jobs.work]
command = ["sh", "-c", "echo $KYU_JOB_ID $KYU_ATTEMPT >> {runs}; sleep 0.5; echo $KYU_JOB_ID $KYU_ATTEMPT $(date +%s%N) >> {done}"]
"#,
        runs = "runs.log",
        done = "done.log"
    );
    let site = Site::new(&toml);
    let n = 24;
    for i in 0..n {
        let o = site.run(&["enqueue", "work", &format!("{{\"i\":{i}}}")]);
        assert!(o.status.success());
    }
    let mut first = site.spawn(&["worker"]);
    wait_until(
        Duration::from_secs(30),
        "the first worker has started jobs",
        || lines(&site.path("runs.log")).len() >= 6,
    );
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    signal(&mut first, libc::SIGKILL);
    first.wait().unwrap();

    let running = site.json(&["jobs", "ls", "--state", "running"]);
    assert!(
        !running["jobs"].as_array().unwrap().is_empty(),
        "the killed worker left running jobs behind"
    );

    let mut second = site.spawn(&["worker"]);
    wait_until(Duration::from_secs(60), "every job completes", || {
        site.json(&["queues", "ls"])[0]["counts"]["completed"] == n
    });
    signal(&mut second, libc::SIGTERM);
    second.wait().unwrap();

    let done = lines(&site.path("done.log"));
    for id in 1..=n {
        assert!(
            done.iter()
                .any(|l| l.split(' ').next() == Some(&id.to_string())),
            "job {id} ran to completion"
        );
    }
    let rescued: Vec<serde_json::Value> = (1..=n)
        .map(|id| site.json(&["jobs", "show", &id.to_string()]))
        .filter(|j| j["attempt"] == 2)
        .collect();
    assert!(
        !rescued.is_empty(),
        "some jobs were rescued from the dead worker"
    );
    for j in &rescued {
        let msg = j["errors"][0]["message"].as_str().unwrap();
        assert!(
            msg.contains("lease expired"),
            "the lost attempt is recorded: {msg}"
        );
        // The killed worker's command died with it: its attempt did not go
        // on after the kill. (It may have ended just before the kill, its
        // result not yet written: then it was rescued all the same.)
        let attempt_1 = format!("{} 1 ", j["id"]);
        for line in done.iter().filter(|l| l.starts_with(&attempt_1)) {
            let at: u128 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(
                at < killed_at,
                "attempt 1 of job {} went on after its worker was killed",
                j["id"]
            );
        }
    }
}

/// True while `pid` runs: a zombie (dead, not yet reaped by whoever
/// inherited it) counts as dead.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => !matches!(
            stat.rsplit_once(") ").map(|(_, r)| r.as_bytes()[0]),
            Some(b'Z')
        ),
        Err(_) => true,
    }
}

fn read_pid(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

#[test]
fn a_sigkilled_serve_leaves_nothing_of_its_command_to_run_beside_the_rescue() {
    // The command's child (not exec'd: a grandchild of the worker) writes its
    // attempt number after 5 s.
    let toml = r#"[worker]
lease = "2s"

[jobs.w]
command = ["sh", "-c", "sh -c 'echo $$ > gc.pid; sleep 5; echo $KYU_ATTEMPT >> side.log' & wait"]
"#;
    let site = Site::new(toml);
    let mut first = site.spawn(&["serve"]);
    site.run(&["enqueue", "w"]);
    wait_until(Duration::from_secs(30), "the grandchild starts", || {
        read_pid(&site.path("gc.pid")).is_some()
    });
    let grandchild = read_pid(&site.path("gc.pid")).unwrap();
    signal(&mut first, libc::SIGKILL);
    first.wait().unwrap();
    wait_until(
        Duration::from_secs(2),
        "the grandchild dies with its worker",
        || !alive(grandchild),
    );

    let mut second = site.spawn(&["serve"]);
    wait_until(Duration::from_secs(60), "the rescued job completes", || {
        site.json(&["jobs", "show", "1"])["state"] == "completed"
    });
    signal(&mut second, libc::SIGTERM);
    second.wait().unwrap();
    assert_eq!(
        lines(&site.path("side.log")),
        vec!["2"],
        "only the rescued attempt's grandchild ran to its end"
    );
}

#[test]
fn a_stopped_serve_kills_its_commands_group_before_releasing_the_job() {
    let toml = r#"[worker]
shutdown_grace = "1s"

[jobs.w]
command = ["sh", "-c", "trap '' TERM; sleep 30 & echo $! > gc.pid; wait"]
stop_grace = "1s"
"#;
    let site = Site::new(toml);
    let mut serve = site.spawn(&["serve"]);
    site.run(&["enqueue", "w"]);
    wait_until(Duration::from_secs(30), "the grandchild starts", || {
        read_pid(&site.path("gc.pid")).is_some()
    });
    let grandchild = read_pid(&site.path("gc.pid")).unwrap();
    signal(&mut serve, libc::SIGTERM);
    assert!(serve.wait().unwrap().success());
    // No waiting: the job is released, so nothing of it may still run.
    let still = alive(grandchild);
    if still {
        // SAFETY: the test's own leftover process.
        unsafe { libc::kill(grandchild, libc::SIGKILL) };
    }
    assert!(
        !still,
        "the command's grandchild (ignoring SIGTERM) outlived kyu serve"
    );
    assert_eq!(site.json(&["jobs", "show", "1"])["state"], "available");
}

#[test]
fn logs_follow_shows_non_ascii_and_invalid_utf8_as_plain_logs_does() {
    // Written a byte at a time, so output is recorded mid-character.
    let mut script = String::new();
    for b in "日本語テキスト\n".bytes().chain(*b"ab\xffcd\n") {
        script.push_str(&format!("printf '\\{b:03o}'; sleep 0.06\n"));
    }
    let site = Site::new("[jobs.w]\ncommand = [\"sh\", \"w.sh\"]\n");
    std::fs::write(site.path("w.sh"), script).unwrap();
    let mut serve = site.spawn(&["serve"]);
    site.run(&["enqueue", "w"]);
    wait_until(Duration::from_secs(30), "the job starts", || {
        site.json(&["jobs", "show", "1"])["state"] == "running"
    });
    let follow = site.run(&["jobs", "logs", "1", "--follow"]);
    assert!(follow.status.success());
    let plain = site.run(&["jobs", "logs", "1"]);
    signal(&mut serve, libc::SIGTERM);
    serve.wait().unwrap();
    let expected = "日本語テキスト\nab\u{FFFD}cd\n";
    assert_eq!(String::from_utf8_lossy(&plain.stdout), expected);
    assert_eq!(
        String::from_utf8_lossy(&follow.stdout),
        expected,
        "--follow prints every character once"
    );
}

#[test]
fn jobs_show_states_the_timeout_that_applies() {
    let site =
        Site::new("[jobs.slow]\ncommand = [\"sh\", \"-c\", \"sleep $(cat)\"]\ntimeout = \"1s\"\n");
    let show =
        |id: &str| String::from_utf8_lossy(&site.run(&["jobs", "show", id]).stdout).into_owned();
    // The kind's timeout, when the job gives none.
    site.run(&["enqueue", "slow", "0"]);
    let shown = show("1");
    assert!(shown.contains("timeout      1s\n"), "{shown}");
    // The job's own timeout wins, and it is the one the command gets.
    site.run(&[
        "enqueue",
        "slow",
        "2",
        "--timeout",
        "5s",
        "--max-attempts",
        "1",
    ]);
    let shown = show("2");
    assert!(shown.contains("timeout      5s\n"), "{shown}");
    // A job stored without a timeout (enqueued under another config, or by
    // the library) gets the kind's from kyu.toml, and show says so.
    std::fs::write(
        site.path("bare.toml"),
        "[jobs.slow]\ncommand = [\"true\"]\n",
    )
    .unwrap();
    site.run(&["--config", "bare.toml", "enqueue", "slow", "0"]);
    assert_eq!(
        site.json(&["jobs", "show", "3"])["timeout"],
        serde_json::Value::Null
    );
    let shown = show("3");
    assert!(
        shown.contains("timeout      1s (kind slow in kyu.toml)\n"),
        "{shown}"
    );

    let mut serve = site.spawn(&["serve"]);
    wait_until(Duration::from_secs(30), "job 2 finishes", || {
        let state = site.json(&["jobs", "show", "2"])["state"].clone();
        state == "completed" || state == "failed"
    });
    signal(&mut serve, libc::SIGTERM);
    serve.wait().unwrap();
    let job = site.json(&["jobs", "show", "2"]);
    assert_eq!(
        job["state"], "completed",
        "the job's 5s applied, not the kind's 1s: {job}"
    );
}
