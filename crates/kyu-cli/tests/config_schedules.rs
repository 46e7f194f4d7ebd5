//! kyu.toml and the database agree about schedules across restarts of `kyu
//! serve`: an entry removed from kyu.toml is removed from the database (the
//! start line says so); an operator's `kyu schedules disable` survives a
//! restart unless kyu.toml says `enabled` itself.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
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

fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = cmd(dir, &all).output().expect("run kyu");
    assert!(
        o.status.success(),
        "kyu {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json")
}

/// Starts `kyu serve`, returns its start line, stops it with SIGTERM.
fn serve_once(dir: &Path) -> String {
    let mut serve = cmd(dir, &["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kyu serve");
    let mut stderr = BufReader::new(serve.stderr.take().expect("stderr"));
    let start = Instant::now();
    let mut line = String::new();
    while !line.contains("started") {
        line.clear();
        if stderr.read_line(&mut line).expect("read") == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no start line");
    }
    // SAFETY: signalling a child we started.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    serve.wait().expect("wait");
    assert!(line.contains("started"), "no start line: {line}");
    line
}

fn schedule<'a>(all: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    all.as_array()
        .expect("array")
        .iter()
        .find(|s| s["name"] == name)
}

const KIND: &str = "[jobs.ping]\ncommand = [\"true\"]\n";
const A: &str = "[[schedules]]\nname = \"a\"\ncron = \"0 3 * * *\"\nkind = \"ping\"\n";
const B: &str = "[[schedules]]\nname = \"b\"\ncron = \"0 4 * * *\"\nkind = \"ping\"\n";

#[test]
fn kyu_toml_and_the_database_agree_about_schedules_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("kyu.toml"), format!("{KIND}\n{A}\n{B}")).expect("write");
    let line = serve_once(d);
    assert!(
        line.contains("schedules a next") && line.contains("b next"),
        "{line}"
    );

    // A schedule of the operator's own is never touched by kyu.toml.
    let o = cmd(d, &["schedules", "add", "mine", "0 5 * * *", "ping"])
        .output()
        .expect("add");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The operator disables a; b leaves kyu.toml.
    let o = cmd(d, &["schedules", "disable", "a"])
        .output()
        .expect("disable");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(d.join("kyu.toml"), format!("{KIND}\n{A}")).expect("write");

    let line = serve_once(d);
    assert!(
        line.contains("removed b (no longer in kyu.toml)"),
        "the start line says b was removed: {line}"
    );
    assert!(line.contains("a next - (disabled)"), "{line}");
    let all = json(d, &["schedules", "ls"]);
    assert!(schedule(&all, "b").is_none(), "b is gone: {all}");
    assert_eq!(schedule(&all, "a").expect("a")["enabled"], false, "{all}");
    assert_eq!(
        schedule(&all, "a").expect("a")["from_config"],
        true,
        "{all}"
    );
    assert_eq!(schedule(&all, "mine").expect("mine")["from_config"], false);

    // kyu.toml says `enabled = true` itself: it wins at the next start.
    std::fs::write(d.join("kyu.toml"), format!("{KIND}\n{A}enabled = true\n")).expect("write");
    let line = serve_once(d);
    assert!(!line.contains("removed"), "{line}");
    let all = json(d, &["schedules", "ls"]);
    assert_eq!(schedule(&all, "a").expect("a")["enabled"], true, "{all}");
    assert!(schedule(&all, "mine").is_some(), "{all}");

    // No [[schedules]] left: the file's schedules go, the operator's stay.
    std::fs::write(d.join("kyu.toml"), KIND).expect("write");
    let line = serve_once(d);
    assert!(
        line.contains("schedules none (removed a (no longer in kyu.toml))"),
        "{line}"
    );
    let all = json(d, &["schedules", "ls"]);
    assert!(
        schedule(&all, "a").is_none() && schedule(&all, "mine").is_some(),
        "{all}"
    );
}
