//! The dashboard in a real browser: headless Chromium driven through
//! WebDriver (chromedriver, the `fantoccini` crate) against a real `kyu
//! serve`. An operator logs in with a token, sees a failed job on the Jobs
//! page, opens it, retries it and sees it complete (the page updates
//! itself from the live event stream); a read-only token sees
//! no action button and its forced POST is refused.
//!
//! Needs the Debian packages `chromium` and `chromium-driver`
//! (`apt-get install -y chromium chromium-driver`; `.ci/run` installs them).
//! Without them the test says so and passes without running. Screenshots of
//! each page go to `target/dashboard-screenshots/`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(KYU);
    c.current_dir(dir)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .env_remove("KYU_HTTP");
    c
}

/// A child process killed when dropped (a failing assertion leaves no
/// browser or server behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kyu serve` in `dir`: the process, its address and the admin token it printed.
fn serve(dir: &Path) -> (Killed, String, String) {
    let mut child = cmd(dir, &["serve", "--http", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let child = Killed(child);
    let mut all = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "kyu serve ended before its start line:\n{all}"
        );
        all.push_str(&line);
        if line.contains(" started: ") {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stderr.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    let token = all
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("kyu_") && !l.contains(' '))
        .unwrap_or_else(|| panic!("no admin token printed:\n{all}"))
        .to_string();
    let addr = all
        .split("; http ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no http address:\n{all}"))
        .to_string();
    (child, addr, token)
}

fn kyu_out(dir: &Path, args: &[&str]) -> String {
    let o = cmd(dir, args).output().unwrap();
    assert!(
        o.status.success(),
        "kyu {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Starts chromedriver and a headless Chromium session through it.
async fn browser() -> (Killed, Client) {
    let port = free_port();
    let driver = Killed(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // chromedriver answers once it listens: retry the session until then.
    let client = loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no WebDriver session within 30 s: {e}"),
        }
    };
    (driver, client)
}

/// Reloads `url` until the page's source satisfies `ok`, for at most 30 s:
/// the page itself is the condition waited for.
async fn reload_until(c: &Client, url: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.goto(url).await.unwrap();
        let src = c.source().await.unwrap();
        if ok(&src) {
            return src;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: {what} within 30 s; last page:\n{src}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_operator_retries_a_failed_job_and_a_reader_cannot() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED browser_operator_retries_a_failed_job_and_a_reader_cannot: {} not installed; \
             install with `apt-get install -y chromium chromium-driver` (.ci/run does)",
            missing.join(" and ")
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A command that fails until the file `ok` exists, once per job.
    std::fs::write(
        d.join("kyu.toml"),
        r#"[jobs.flaky]
command = ["sh", "-c", "if [ -e ok ]; then echo 'all good'; else echo '<script>document.title=1</script> not yet' >&2; exit 3; fi"]
max_attempts = 1
"#,
    )
    .unwrap();
    let (_serve, addr, admin) = serve(d);
    let base = format!("http://{addr}");
    let out = kyu_out(d, &["enqueue", "flaky", r#"{"n": 1}"#]);
    let id: i64 = out
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("a job id in {out:?}"));
    let reader = kyu_out(
        d,
        &["tokens", "create", "--name", "viewer", "--scope", "read"],
    )
    .trim()
    .to_string();

    let (driver, c) = browser().await;
    // The browser is closed whatever happens: a failed assertion leaves no
    // Chromium behind.
    let run = scenario(&c, d, &base, &admin, &reader, id);
    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run)).await;
    let _ = c.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(c: &Client, d: &Path, base: &str, admin: &str, reader: &str, id: i64) {
    let c = c.clone();
    // Log in through the form.
    c.goto(&format!("{base}/")).await.unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/login", "no session: the login page");
    shot(&c, "login").await;
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(admin)
        .await
        .unwrap();
    c.find(Locator::Css("form[action='/login'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let h1 = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(h1, "Overview");
    shot(&c, "overview").await;

    // The failed job on the Jobs page.
    let failed_tab = format!("{base}/jobs?state=failed");
    let link = format!("a[href='/jobs/{id}']");
    reload_until(&c, &failed_tab, "the failed job listed", |s| {
        s.contains(&format!("href=\"/jobs/{id}\""))
    })
    .await;
    shot(&c, "jobs-failed").await;
    c.find(Locator::Css(&link))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let page = c.source().await.unwrap();
    assert!(page.contains("not yet"), "the attempt's error: {page}");
    assert_ne!(
        c.title().await.unwrap(),
        "1",
        "the <script> in the output did not run"
    );
    shot(&c, "job-failed").await;

    // Retry it, and see it complete.
    std::fs::write(d.join("ok"), "").unwrap();
    c.find(Locator::Css("form[action='/jobs/retry'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The action's page (a redirect) may still be loading when the click
    // returns; the dashboard keeps its notice 5 s before a live reload.
    let notice = c
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(".notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(notice, "Retry: 1 retried.");
    // No reload by the test: the page's live stream reloads it when the job changes.
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("h1 .state.completed"))
        .await
        .unwrap_or_else(|e| panic!("the job page showed the job completed, live: {e}"));
    let page = c.source().await.unwrap();
    assert!(page.contains("all good"), "its output: {page}");
    shot(&c, "job-completed").await;
    for (name, path) in [("queues", "/queues"), ("schedules", "/schedules")] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        shot(&c, name).await;
    }

    // A read-only viewer: no action button anywhere, a forced POST refused.
    c.delete_all_cookies().await.unwrap();
    c.goto(&format!("{base}/login?token={reader}"))
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/");
    for path in [
        "/",
        "/queues",
        "/jobs",
        &format!("/jobs/{id}"),
        "/schedules",
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        let forms = c
            .find_all(Locator::Css("form[method='post']:not([action='/logout'])"))
            .await
            .unwrap();
        assert!(forms.is_empty(), "{path}: a read-only viewer sees a button");
        assert!(
            c.find_all(Locator::Css("input[type=checkbox]"))
                .await
                .unwrap()
                .is_empty(),
            "{path}"
        );
    }
    shot(&c, "job-read-only").await;
    let status = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const body = new URLSearchParams({
               csrf: document.querySelector('input[name=csrf]').value,
               ids: arguments[0],
             });
             fetch('/jobs/cancel', {method: 'POST', body}).then(r => done(r.status), e => done(String(e)));",
            vec![serde_json::json!(id.to_string())],
        )
        .await
        .unwrap();
    assert_eq!(status, serde_json::json!(403), "a forced POST is refused");
}

/// Runs `kyu ARGS` in `dir` with `input` on stdin; its stdout.
fn kyu_stdin(dir: &Path, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = cmd(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "kyu {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The overview's charts, the queues' concurrency form, the Workers and
/// Batches pages, in a real browser against a real `kyu serve` (which runs
/// the workers of its kyu.toml's kinds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_overview_chart_queue_concurrency_workers_and_batches() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED browser_overview_chart_queue_concurrency_workers_and_batches: {} not \
             installed; install with `apt-get install -y chromium chromium-driver` (.ci/run does)",
            missing.join(" and ")
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("kyu.toml"),
        r#"[jobs.quick]
command = ["true"]

[jobs.oops]
command = ["false"]
max_attempts = 1

[jobs.nap]
command = ["sleep", "60"]
"#,
    )
    .unwrap();
    let (_serve, addr, admin) = serve(d);
    let base = format!("http://{addr}");
    for _ in 0..3 {
        kyu_out(d, &["enqueue", "quick", "{}"]);
    }
    kyu_out(d, &["enqueue", "oops", "{}"]);
    let out = kyu_out(d, &["enqueue", "nap", "{}"]);
    let nap: i64 = out
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("a job id in {out:?}"));
    kyu_stdin(d, &["enqueue", "quick", "--batch"], "{}\n{}\n{}\n");

    let (driver, c) = browser().await;
    let run = ops_scenario(&c, &base, &admin, nap);
    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run)).await;
    let _ = c.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn ops_scenario(c: &Client, base: &str, admin: &str, nap: i64) {
    let c = c.clone();
    c.goto(&format!("{base}/login?token={admin}"))
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/");

    // The overview's charts count the 6 quick jobs (3 alone, 3 in the batch) and the failure.
    let src = reload_until(&c, &format!("{base}/"), "6 completions charted", |s| {
        s.contains("data-completed=\"6\" data-failed=\"1\"")
    })
    .await;
    assert!(src.contains("UTC: "), "bar titles: {src}");
    for id in ["chart-hour", "chart-day"] {
        let svg = c
            .find(Locator::Css(&format!("svg#{id}")))
            .await
            .unwrap_or_else(|e| panic!("the {id} SVG: {e}"));
        let rect = svg.rectangle().await.unwrap();
        assert!(rect.2 > 300.0 && rect.3 > 50.0, "{id} drawn: {rect:?}");
    }
    shot(&c, "overview-charts").await;

    // Set queue default's global concurrency through the form.
    c.goto(&format!("{base}/queues")).await.unwrap();
    let input = c
        .find(Locator::Css(
            "form[action='/queues/default/concurrency'] input[name=global_concurrency]",
        ))
        .await
        .unwrap();
    input.clear().await.unwrap();
    input.send_keys("4").await.unwrap();
    c.find(Locator::Css(
        "form[action='/queues/default/concurrency'] button",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let notice = c
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(".notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(notice, "Queue default: global_concurrency 4.");
    reload_until(&c, &format!("{base}/queues"), "the new limit shown", |s| {
        s.contains("data-global-concurrency=\"4\"")
    })
    .await;
    shot(&c, "queues-concurrency").await;

    // The worker kyu serve runs, holding the nap job.
    let src = reload_until(&c, &format!("{base}/workers"), "the nap job held", |s| {
        s.contains(&format!("href=\"/jobs/{nap}\""))
    })
    .await;
    assert!(src.contains("data-worker="), "{src}");
    let rows = c
        .find_all(Locator::Css("table.workers tbody tr"))
        .await
        .unwrap();
    assert!(!rows.is_empty(), "a live worker listed");
    shot(&c, "workers").await;

    // The batch: done, its three jobs succeeded.
    reload_until(&c, &format!("{base}/batches"), "the batch done", |s| {
        s.contains("data-batch=") && s.contains(">done<")
    })
    .await;
    shot(&c, "batches").await;
    c.find(Locator::Css("table.batches tbody a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let src = c.source().await.unwrap();
    for (name, n) in [
        ("total", 3),
        ("succeeded", 3),
        ("pending", 0),
        ("failed", 0),
    ] {
        assert!(
            src.contains(&format!("data-count=\"{name}\">{n}</td>")),
            "{name} {n}: {src}"
        );
    }
    shot(&c, "batch-detail").await;
}
