//! Which database a command opens: a relative `database` in kyu.toml is
//! relative to the file (as `command` and `cwd` are), whatever directory kyu
//! runs in; the start line shows the absolute path; commands that only read
//! never create a database.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(KYU);
    c.current_dir(dir)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        // A free port of the system's choosing: tests run many serves at once.
        .env("KYU_HTTP", "127.0.0.1:0");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir, args).output().expect("run kyu")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    assert!(
        o.status.success(),
        "kyu {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `serve --config etc/kyu.toml` from one directory and `enqueue --config
/// ../etc/kyu.toml` from another open the same database: the one beside
/// kyu.toml. The start line names it by its absolute path.
#[test]
fn relative_database_in_kyu_toml_is_relative_to_the_file() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path().canonicalize().expect("canonical tempdir");
    let etc = root.join("etc");
    let other = root.join("other");
    std::fs::create_dir_all(&etc).expect("etc");
    std::fs::create_dir_all(&other).expect("other");
    std::fs::write(
        etc.join("kyu.toml"),
        "database = \"sqlite://data/kyu.db\"\n\n[jobs.ping]\ncommand = [\"true\"]\n",
    )
    .expect("kyu.toml");

    ok(&other, &["enqueue", "ping", "--config", "../etc/kyu.toml"]);
    let db = etc.join("data").join("kyu.db");
    assert!(
        db.exists(),
        "the database is beside kyu.toml: {}",
        db.display()
    );
    assert!(
        !other.join("data").exists(),
        "nothing made in the current directory"
    );

    let listed = ok(&root, &["--json", "jobs", "ls", "--config", "etc/kyu.toml"]);
    let v: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(v["jobs"][0]["kind"], "ping", "{v}");

    let mut serve = cmd(&root, &["serve", "--config", "etc/kyu.toml"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kyu serve");
    let mut stderr = BufReader::new(serve.stderr.take().expect("stderr"));
    let start = Instant::now();
    let mut line = String::new();
    while !line.contains("started") {
        line.clear();
        if stderr.read_line(&mut line).expect("read stderr") == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no start line");
    }
    // SAFETY: signalling a child we started.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    serve.wait().expect("wait");
    assert!(
        line.contains(&format!("database sqlite://{};", db.display())),
        "the start line names the absolute path: {line}"
    );
    assert!(!root.join("data").exists(), "serve made no second database");
}

/// `jobs ls`, `jobs show`, `queues ls`, `schedules ls` where there is no
/// database say so, naming the absolute path, and create none.
#[test]
fn read_only_commands_refuse_to_create_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().canonicalize().expect("canonical tempdir");
    let expected = format!("no kyu database at {}", d.join("kyu.db").display());
    for args in [
        &["jobs", "ls"][..],
        &["jobs", "show", "1"],
        &["queues", "ls"],
        &["schedules", "ls"],
    ] {
        let o = run(&d, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "kyu {args:?}: {err}");
        assert!(err.contains(&expected), "kyu {args:?}: {err}");
        assert!(
            std::fs::read_dir(&d).expect("dir").next().is_none(),
            "kyu {args:?} created a file"
        );
    }
}
