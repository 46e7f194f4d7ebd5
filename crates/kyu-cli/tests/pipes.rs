//! `kyu … | head`: a reader that closes the pipe early ends kyu quietly, as it
//! does any Unix tool: no panic, no "Broken pipe" message, no exit 101.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

/// Runs kyu with `args` in `dir`, reads the first `take` bytes of its stdout,
/// closes the pipe, and returns how kyu ended and what it wrote on stderr.
fn read_then_close(dir: &std::path::Path, args: &[&str], take: usize) -> (Vec<u8>, String, i32) {
    let mut child = Command::new(KYU)
        .current_dir(dir)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kyu");
    let mut head = vec![0; take];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut head)
        .expect("the first bytes");
    // The read end is closed here; kyu has more to write than a pipe holds.
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = match (out.status.code(), out.status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => -1,
    };
    (head, stderr, code)
}

fn assert_quiet(what: &str, stderr: &str, code: i32) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what}: {stderr}"
    );
    assert!(
        code == 0 || code == 128 + libc::SIGPIPE,
        "{what}: exit {code} (0, or SIGPIPE as `yes | head` has, expected); stderr: {stderr}"
    );
}

#[test]
fn closing_the_output_pipe_ends_kyu_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (head, stderr, code) = read_then_close(
        d,
        &["schedules", "preview", "* * * * * *", "--count", "10000"],
        20,
    );
    assert!(
        head.starts_with(b"UTC"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_quiet("schedules preview | head -1", &stderr, code);

    // A job whose `jobs show` is longer than a pipe holds.
    let big = serde_json::json!({ "blob": "x".repeat(300_000) }).to_string();
    let mut enqueue = Command::new(KYU)
        .current_dir(d)
        .args(["enqueue", "k", "-"])
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("enqueue");
    std::io::Write::write_all(&mut enqueue.stdin.take().expect("stdin"), big.as_bytes())
        .expect("args on stdin");
    let o = enqueue.wait_with_output().expect("enqueue");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (head, stderr, code) = read_then_close(d, &["jobs", "show", "1"], 300);
    assert!(!head.is_empty());
    assert_quiet("jobs show 1 | head -c 300", &stderr, code);
}
