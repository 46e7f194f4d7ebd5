//! Values that would break `kyu serve` or never run are refused where they are
//! written: kyu.toml (with the file and line, by `config check` and every
//! command that reads it) and command-line flags, with the field and what is
//! accepted.

use std::path::Path;
use std::process::{Command, Output};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(KYU)
        .current_dir(dir)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .output()
        .expect("run kyu")
}

/// Writes `toml` as kyu.toml in a fresh directory and runs `args` there;
/// expects exit 2 and returns stderr.
fn refused(toml: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("kyu.toml"), toml).expect("kyu.toml");
    let o = run(dir.path(), args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(2),
        "kyu {args:?} with {toml:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !dir.path().join("kyu.db").exists(),
        "a refused kyu.toml creates no database"
    );
    err
}

#[test]
fn config_check_refuses_zero_leases_zero_timeouts_and_padded_or_empty_queues() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "[worker]\nlease = \"0s\"\n",
            "kyu.toml:2: worker.lease",
            &["at least 1s"],
        ),
        (
            "[jobs.k]\ncommand = [\"true\"]\ntimeout = \"0s\"\n",
            "kyu.toml:3: jobs.k.timeout",
            &["positive"],
        ),
        (
            "[jobs.k]\ncommand = [\"true\"]\nqueue = \"\"\n",
            "kyu.toml:3: jobs.k.queue",
            &["1 to 128 characters"],
        ),
        (
            "[jobs.k]\ncommand = [\"true\"]\n\nqueue = \"default \"\n",
            "kyu.toml:4: jobs.k.queue",
            &["leading or trailing"],
        ),
        (
            "[queues.\" mail\"]\nconcurrency = 2\n",
            "kyu.toml:1: queues",
            &["leading or trailing"],
        ),
        (
            "[jobs.\"k \"]\ncommand = [\"true\"]\n",
            "kyu.toml:1: jobs",
            &["kind", "leading or trailing"],
        ),
    ];
    for (toml, at, words) in cases {
        let err = refused(toml, &["config", "check"]);
        assert!(err.contains(at), "{toml:?}: expected {at:?} in: {err}");
        for w in *words {
            assert!(err.contains(w), "{toml:?}: expected {w:?} in: {err}");
        }
    }
    // `kyu serve` reads the same file the same way: refused before it starts
    // a worker, with no panic.
    let err = refused("[worker]\nlease = \"0s\"\n", &["serve"]);
    assert!(err.contains("kyu.toml:2: worker.lease"), "{err}");
}

#[test]
fn flags_refuse_padded_queue_names_and_zero_timeouts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for args in [
        &["enqueue", "k", "--queue", "default "][..],
        &["enqueue", "k", "--queue", ""],
        &["enqueue", " k"],
        &["enqueue", "k", "--timeout", "0s"],
        &["schedules", "add", "s", "* * * * *", "k", "--queue", " q"],
        &["queues", "pause", "mail "],
    ] {
        let o = run(d, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "kyu {args:?}: {err}");
        assert!(err.contains("accepted"), "kyu {args:?}: {err}");
    }
    assert!(!d.join("kyu.db").exists(), "nothing was written");
}
