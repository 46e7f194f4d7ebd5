//! The HTTP listener of `kyu serve` and `kyu worker`, as a user meets it:
//! a real process, a real HTTP client (`/healthz`, `/readyz`, `/metrics`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(KYU);
    c.current_dir(dir)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .env_remove("KYU_HTTP");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir, args).output().unwrap()
}

/// Starts `kyu ARGS` and returns it with what it wrote to stderr up to and
/// including its start line (`kyu … started: …`, after any warning or the
/// first admin token).
fn start(dir: &Path, args: &[&str]) -> (Child, String) {
    let mut child = cmd(dir, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut before = String::new();
    while !line.contains(" started: ") {
        before.push_str(&line);
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "kyu {args:?} ended before its start line"
        );
    }
    before.push_str(&line);
    let line = before;
    // Keep reading so the process never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stderr.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    (child, line)
}

/// The address after "http " on the start line.
fn http_addr(start_line: &str) -> String {
    let rest = start_line
        .split("; http ")
        .nth(1)
        .unwrap_or_else(|| panic!("no http address on the start line: {start_line}"));
    rest.split_whitespace().next().unwrap().to_string()
}

fn stop(mut child: Child) {
    // SAFETY: signalling a child we started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "exits cleanly on SIGTERM: {status:?}");
}

/// The admin token the first `kyu serve` printed.
fn admin_token(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("kyu_") && !l.contains(' '))
        .unwrap_or_else(|| panic!("no admin token printed:\n{stderr}"))
        .to_string()
}

/// GET http://ADDR/PATH: the status and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    call(addr, "GET", path, None, None)
}

/// METHOD http://ADDR/PATH with a bearer token and a JSON body: the status and the body.
fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
            .await
            .expect("an answer within 10 s")
            .expect("a response");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    })
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

/// The value of the sample line `name{labels} value` in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn serve_exposes_health_readiness_and_metrics_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("kyu.toml"),
        "[jobs.ok]\ncommand = [\"true\"]\n\n[jobs.bad]\ncommand = [\"sh\", \"-c\", \"exit 65\"]\n",
    )
    .unwrap();
    let (serve, line) = start(d, &["serve", "--http", "127.0.0.1:0"]);
    let addr = http_addr(&line);
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{line}"
    );

    for kind in ["ok", "ok", "ok", "bad"] {
        assert!(run(d, &["enqueue", kind]).status.success());
    }
    wait_until(Duration::from_secs(30), "4 jobs finish", || {
        let o = run(d, &["--json", "jobs", "ls"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["jobs"].as_array().is_some_and(|js| {
            js.len() == 4
                && js
                    .iter()
                    .all(|j| j["state"] != "available" && j["state"] != "running")
        })
    });

    assert_eq!(get(&addr, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(&addr, "/readyz"), (200, "ok\n".to_string()));
    assert_eq!(get(&addr, "/metrics").0, 401, "/metrics needs a token");
    let token = admin_token(&line);
    let (status, text) = call(&addr, "GET", "/metrics", Some(&token), None);
    assert_eq!(status, 200);
    let at =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert_eq!(
        at(r#"kyu_job_attempts_total{queue="default",kind="ok",outcome="success"}"#),
        3.0
    );
    assert_eq!(
        at(r#"kyu_job_attempts_total{queue="default",kind="bad",outcome="failure"}"#),
        1.0
    );
    assert_eq!(
        at(r#"kyu_jobs_dead_total{queue="default",kind="bad"}"#),
        1.0
    );
    assert_eq!(at(r#"kyu_jobs{queue="default",state="completed"}"#), 3.0);
    assert_eq!(at(r#"kyu_jobs{queue="default",state="failed"}"#), 1.0);
    assert_eq!(
        at(r#"kyu_worker_slots{queue="default",state="free"}"#),
        10.0
    );
    assert_eq!(at("kyu_store_up"), 1.0);
    stop(serve);
}

#[test]
fn a_port_in_use_is_an_error_naming_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = run(dir.path(), &["serve", "--http", &addr]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("could not listen on {addr}")) && err.contains("already in use"),
        "{err}"
    );
    assert!(err.contains("--http"), "says how to choose another: {err}");
}

#[test]
fn worker_listens_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // kyu.toml's [http] listen is kyu serve's: a worker beside it must not take it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    std::fs::write(d.join("kyu.toml"), format!("[http]\nlisten = \"{addr}\"\n")).unwrap();

    let (worker, line) = start(d, &["worker"]);
    assert!(line.contains("; http off"), "{line}");
    stop(worker);

    let (worker, line) = start(d, &["worker", "--http", "127.0.0.1:0"]);
    let addr = http_addr(&line);
    assert_eq!(get(&addr, "/healthz").0, 200);
    assert_eq!(get(&addr, "/readyz").0, 200);
    stop(worker);
}

#[test]
fn http_listen_in_kyu_toml_is_checked_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("kyu.toml"), "[http]\nlisten = \"localhost\"\n").unwrap();
    let o = run(d, &["config", "check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("kyu.toml:2")
            && err.contains("\"localhost\"")
            && err.contains("127.0.0.1:7070"),
        "names the file, the line, the value and what is accepted: {err}"
    );

    std::fs::write(d.join("kyu.toml"), "[http]\nlisten = \"0.0.0.0:9100\"\n").unwrap();
    let o = run(d, &["config", "check"]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("http       0.0.0.0:9100"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn first_serve_prints_an_admin_token_and_the_api_enqueues_and_waits_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("kyu.toml"), "[jobs.ok]\ncommand = [\"true\"]\n").unwrap();
    let (serve, line) = start(d, &["serve", "--http", "127.0.0.1:0"]);
    let addr = http_addr(&line);
    let token = admin_token(&line);
    assert!(
        line.contains(&format!("http://{addr}/v1/queues")),
        "a ready command: {line}"
    );
    // And the dashboard's login link: opened directly, it logs in.
    let link = format!("/login?token={token}");
    assert!(
        line.contains(&format!("http://{addr}{link}")),
        "the dashboard's login link: {line}"
    );
    assert_eq!(get(&addr, &link).0, 303, "the link logs in and goes to /");
    assert_eq!(
        get(&addr, "/").0,
        303,
        "no cookie: the dashboard asks to log in"
    );

    let (status, body) = call(
        &addr,
        "POST",
        "/v1/jobs",
        None,
        Some(serde_json::json!({"kind": "ok"})),
    );
    assert_eq!(status, 401, "no token, no API: {body}");
    let (status, body) = call(
        &addr,
        "POST",
        "/v1/jobs",
        Some(&token),
        Some(serde_json::json!({"kind": "ok"})),
    );
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, body) = call(
        &addr,
        "GET",
        &format!("/v1/jobs/{id}?wait=20s"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let job: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(job["state"], "completed", "{body}");
    let (status, body) = call(
        &addr,
        "POST",
        "/v1/jobs",
        Some(&token),
        Some(serde_json::json!({"kind": "ok", "queue": ""})),
    );
    assert_eq!(status, 400);
    assert!(body.contains("\"field\":\"queue\""), "{body}");
    stop(serve);

    // The second start of the same database makes no new token.
    let (serve, line) = start(d, &["serve", "--http", "127.0.0.1:0"]);
    assert!(!line.contains("kyu_"), "no second admin token: {line}");
    let addr = http_addr(&line);
    assert_eq!(
        call(&addr, "GET", "/v1/queues", Some(&token), None).0,
        200,
        "the first token still works"
    );
    stop(serve);
}

#[test]
fn tokens_create_prints_the_secret_once_ls_hides_it_and_revoke_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = run(
        d,
        &[
            "tokens",
            "create",
            "--name",
            "web-app",
            "--scope",
            "produce",
            "--scope",
            "read",
            "--queues",
            "tenant-a.*",
            "--expires",
            "90d",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let secret = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert!(
        secret.starts_with("kyu_") && secret.len() >= 4 + 32,
        "at least 128 random bits: {secret}"
    );
    let o = run(d, &["tokens", "ls"]);
    let ls = String::from_utf8(o.stdout).unwrap();
    assert!(
        ls.contains("web-app") && ls.contains("read,produce") && ls.contains("tenant-a.*"),
        "{ls}"
    );
    assert!(
        !ls.contains(&secret[4..]),
        "ls never shows the secret: {ls}"
    );
    let o = run(
        d,
        &["tokens", "create", "--name", "web-app", "--scope", "read"],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("a token named \"web-app\" exists"));
    let o = run(d, &["tokens", "create", "--name", "x", "--scope", "root"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("accepted: admin, operate, read"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(d, &["tokens", "revoke", "web-app"]);
    assert!(o.status.success());
    let o = run(d, &["tokens", "revoke", "web-app"]);
    assert!(!o.status.success(), "a second revoke finds nothing");
}

/// `kyu serve` gives its HTTP API the `[jobs.KIND]` defaults of its kyu.toml:
/// a job enqueued over HTTP without a queue lands in the kind's queue with
/// the kind's attempts, as `kyu enqueue` would put it.
#[test]
fn serve_stamps_the_kinds_defaults_on_jobs_enqueued_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("kyu.toml"),
        "[jobs.report]\ncommand = [\"true\"]\nqueue = \"reports\"\nmax_attempts = 2\npriority = -3\n",
    )
    .unwrap();
    let (serve, line) = start(d, &["serve", "--http", "127.0.0.1:0"]);
    let addr = http_addr(&line);
    let token = admin_token(&line);
    let (status, body) = call(
        &addr,
        "POST",
        "/v1/jobs",
        Some(&token),
        Some(serde_json::json!({"kind": "report"})),
    );
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, body) = call(&addr, "GET", &format!("/v1/jobs/{id}"), Some(&token), None);
    assert_eq!(status, 200, "{body}");
    let job: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&job["queue"], &job["max_attempts"], &job["priority"]),
        (
            &serde_json::json!("reports"),
            &serde_json::json!(2),
            &serde_json::json!(-3)
        ),
        "{job}"
    );
    stop(serve);
}
