//! The dashboard in a real browser: headless Chromium driven through
//! WebDriver (chromedriver, the `fantoccini` crate) against a real `kyu
//! serve`. An operator logs in with a token, sees a failed job on the Jobs
//! page, opens it, retries it and sees it complete (the page updates
//! itself from the live event stream); a read-only token sees
//! no action button and its forced POST is refused. A second scenario
//! covers the Jobs side: a job enqueued through the API appears live, its
//! progress and command output update live, cancel, retry, bulk retry of
//! "all matching" with the count confirmed, pause / resume, trigger a
//! schedule, `<script>` in args and errors shown as text, and a read-only
//! token's forged POSTs refused.
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

/// The API's answer to `METHOD path` with the admin's bearer token and a JSON body.
async fn api(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("an answer within 20 s")
        .expect("a response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

/// Enqueues a job through the API: its id.
async fn enqueue(base: &str, token: &str, job: serde_json::Value) -> i64 {
    let (status, r) = api(base, "POST", "/v1/jobs", token, Some(job)).await;
    assert_eq!(status, 201, "enqueue: {r}");
    r["id"].as_i64().unwrap()
}

/// Waits (at most 30 s) for an element the page gets by itself: the test
/// never reloads it.
async fn wait_for(
    c: &Client,
    css_or_xpath: Locator<'_>,
    what: &str,
) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(css_or_xpath)
        .await
    {
        Ok(e) => e,
        Err(e) => panic!(
            "{what} within 30 s: {e}; page:\n{}",
            c.source().await.unwrap_or_default()
        ),
    }
}

/// The Jobs side of the dashboard in a browser: a job enqueued through the
/// API appears on the Jobs page without a reload; its page shows its
/// progress and appends its command output while it runs; cancel a running
/// job; retry a failed one; bulk-retry "all failed in queue bulkq" with the
/// count confirmed; pause and resume a queue; trigger a schedule; `<script>`
/// in args and in an error renders as text; a bad or unknown job id gets an
/// HTML page; a read-only token sees no button and its forged POSTs get 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_jobs_live_output_cancel_bulk_queues_schedules() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED browser_jobs_live_output_cancel_bulk_queues_schedules: {} not installed; \
             install with `apt-get install -y chromium chromium-driver` (.ci/run does)",
            missing.join(" and ")
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("kyu.toml"),
        r#"# Reports progress and output, then waits for the file `go`, writes
# more, and waits for `end`.
[jobs.watch]
command = ["sh", "-c", "echo '::kyu-progress 40 warming up'; echo 'first line'; while [ ! -e go ]; do sleep 0.1; done; echo 'second line'; while [ ! -e end ]; do sleep 0.1; done"]
max_attempts = 1

# Runs until cancelled.
[jobs.hang]
command = ["sh", "-c", "echo hanging; exec sleep 600"]
max_attempts = 1
stop_grace = "1s"

# Fails until the file `ok` exists; its error is attacker-controlled text.
[jobs.flaky]
command = ["sh", "-c", "if [ -e ok ]; then echo 'all good'; else echo '<script>document.title=1</script> not yet' >&2; exit 3; fi"]
max_attempts = 1

# Fails every time, in queue bulkq.
[jobs.broken]
command = ["sh", "-c", "echo broken >&2; exit 1"]
queue = "bulkq"
max_attempts = 1
"#,
    )
    .unwrap();
    let (_serve, addr, admin) = serve(d);
    let base = format!("http://{addr}");
    let reader = kyu_out(
        d,
        &["tokens", "create", "--name", "viewer", "--scope", "read"],
    )
    .trim()
    .to_string();
    let (driver, c) = browser().await;
    let run = jobs_side(&c, d, &base, &admin, &reader);
    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run)).await;
    let _ = c.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    eprintln!(
        "screenshots: {}",
        screenshots().canonicalize().unwrap().display()
    );
}

async fn jobs_side(c: &Client, d: &Path, base: &str, admin: &str, reader: &str) {
    let c = c.clone();
    c.goto(&format!("{base}/login?token={admin}"))
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/");

    // A job enqueued through the API appears on the open Jobs page by itself.
    c.goto(&format!("{base}/jobs")).await.unwrap();
    let watch = enqueue(base, admin, serde_json::json!({"kind": "watch"})).await;
    wait_for(
        &c,
        Locator::Css(&format!("a[href='/jobs/{watch}']")),
        "the API's job listed without a reload",
    )
    .await;
    shot(&c, "jobs-live").await;

    // Its page: progress, then output appended while it runs.
    c.find(Locator::Css(&format!("a[href='/jobs/{watch}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &c,
        Locator::Css("progress[value='40']"),
        "the progress, live",
    )
    .await;
    wait_for(
        &c,
        Locator::XPath("//pre[@data-stream='stdout'][contains(., 'first line')]"),
        "the first output line",
    )
    .await;
    assert!(c.source().await.unwrap().contains("warming up"));
    shot(&c, "job-running").await;
    // A mark on the page: still there after the next line shows it was
    // appended to this page, not shown by a reload.
    c.execute("window.kyuMark = 1; return null;", vec![])
        .await
        .unwrap();
    std::fs::write(d.join("go"), "").unwrap();
    wait_for(
        &c,
        Locator::XPath("//pre[@data-stream='stdout'][contains(., 'second line')]"),
        "the second output line, tailed",
    )
    .await;
    let mark = c
        .execute("return window.kyuMark === 1;", vec![])
        .await
        .unwrap();
    assert_eq!(mark, serde_json::json!(true), "appended without a reload");
    c.execute(
        "document.getElementById('output').scrollIntoView(); return null;",
        vec![],
    )
    .await
    .unwrap();
    shot(&c, "job-output-tailed").await;
    std::fs::write(d.join("end"), "").unwrap();
    wait_for(
        &c,
        Locator::Css("h1 .state.completed"),
        "the job completed, live",
    )
    .await;

    // Cancel a running job from its page.
    let hang = enqueue(base, admin, serde_json::json!({"kind": "hang"})).await;
    c.goto(&format!("{base}/jobs/{hang}")).await.unwrap();
    wait_for(&c, Locator::Css("h1 .state.running"), "the job running").await;
    c.find(Locator::Css("form[action='/jobs/cancel'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, Locator::Css("h1 .state.cancelled"), "the job cancelled").await;
    shot(&c, "job-cancelled").await;

    // A failed job: its error (a <script>) is text; retry it.
    let flaky = enqueue(
        base,
        admin,
        serde_json::json!({"kind": "flaky", "args": {"html": "<script>document.title='args'</script>"}}),
    )
    .await;
    c.goto(&format!("{base}/jobs/{flaky}")).await.unwrap();
    wait_for(&c, Locator::Css("h1 .state.failed"), "the job failed").await;
    let args = c
        .find(Locator::Css("pre.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        args.contains("<script>document.title='args'</script>"),
        "{args}"
    );
    let error = c
        .find(Locator::Css("pre.error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        error.contains("<script>document.title=1</script>"),
        "{error}"
    );
    let title = c.title().await.unwrap();
    assert!(title.starts_with("Job "), "no script ran: {title}");
    shot(&c, "job-failed").await;
    std::fs::write(d.join("ok"), "").unwrap();
    c.find(Locator::Css("form[action='/jobs/retry'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &c,
        Locator::Css("h1 .state.completed"),
        "the retried job completed",
    )
    .await;

    // Bulk: "retry all failed in queue bulkq", the count confirmed.
    for _ in 0..3 {
        enqueue(base, admin, serde_json::json!({"kind": "broken"})).await;
    }
    let failed = format!("{base}/jobs?state=failed&queue=bulkq");
    reload_until(&c, &failed, "3 failed jobs in bulkq", |s| {
        s.matches("<tr data-job=").count() == 3
    })
    .await;
    c.find(Locator::Css("button[name='action'][value='retry']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let count = wait_for(&c, Locator::Css(".confirm .count"), "the confirmation")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(count, "3");
    let page = c.source().await.unwrap();
    assert!(
        page.contains("queue <strong>bulkq</strong>"),
        "names the filter"
    );
    shot(&c, "bulk-confirm").await;
    c.find(Locator::Css("form[action='/jobs/bulk'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let result = wait_for(&c, Locator::Css(".bulk-result"), "the bulk action's result")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(result, "Retry: 3 retried.");
    shot(&c, "bulk-done").await;

    // Pause and resume a queue.
    c.goto(&format!("{base}/queues")).await.unwrap();
    c.find(Locator::Css("form[action='/queues/bulkq/pause'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = wait_for(&c, Locator::Css(".notice"), "the pause notice")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(notice, "Queue bulkq paused.");
    shot(&c, "queue-paused").await;
    c.find(Locator::Css("form[action='/queues/bulkq/resume'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &c,
        Locator::XPath("//p[contains(@class,'notice')][text()='Queue bulkq resumed.']"),
        "the resume notice",
    )
    .await;

    // Trigger a schedule.
    let (status, r) = api(
        base,
        "PUT",
        "/v1/schedules/nightly",
        admin,
        Some(serde_json::json!({"cron": "0 3 * * *", "zone": "Asia/Tokyo", "job": {"kind": "flaky"}})),
    )
    .await;
    assert!(status == 200 || status == 201, "schedule: {status} {r}");
    c.goto(&format!("{base}/schedules")).await.unwrap();
    c.find(Locator::Css(
        "form[action='/schedules/nightly/trigger'] button",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let notice = wait_for(&c, Locator::Css(".notice"), "the trigger notice")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        notice.starts_with("Schedule nightly triggered: job "),
        "{notice}"
    );
    shot(&c, "schedule-triggered").await;

    // A bad id and an unknown one: an HTML page in the layout saying what is accepted.
    for (path, title, words) in [
        (
            "/jobs/xyz",
            "400 Bad Request",
            "accepted: a positive integer",
        ),
        (
            "/jobs/999999999",
            "404 Not Found",
            "job 999999999 not found",
        ),
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        assert_eq!(c.title().await.unwrap(), format!("{title} · kyu"), "{path}");
        let alert = c
            .find(Locator::Css("main [role=alert]"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(alert.contains(words), "{path}: {alert}");
        c.find(Locator::Css("nav[aria-label=Main]")).await.unwrap();
    }
    shot(&c, "job-not-found").await;

    // A read-only token: no buttons; its forged POSTs are refused.
    c.delete_all_cookies().await.unwrap();
    c.goto(&format!("{base}/login?token={reader}"))
        .await
        .unwrap();
    for path in [
        "/jobs".to_string(),
        "/jobs?state=failed&queue=bulkq".into(),
        format!("/jobs/{flaky}"),
        "/queues".into(),
        "/schedules".into(),
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        let forms = c
            .find_all(Locator::Css(
                "form[method='post']:not([action='/logout']), form[action='/jobs/bulk'], input[type=checkbox]",
            ))
            .await
            .unwrap();
        assert!(forms.is_empty(), "{path}: a read-only viewer sees a button");
    }
    shot(&c, "jobs-read-only").await;
    for (action, fields) in [
        ("/jobs/delete", vec![("ids", flaky.to_string())]),
        (
            "/jobs/bulk",
            vec![
                ("action", "delete".to_string()),
                ("queue", "bulkq".into()),
                ("max_id", "999999".into()),
                ("at", "2100-01-01T00:00:00Z".into()),
            ],
        ),
        ("/queues/bulkq/pause", vec![]),
        ("/schedules/nightly/trigger", vec![]),
    ] {
        let fields: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
            .collect();
        let status = c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 const body = new URLSearchParams(arguments[1]);
                 body.set('csrf', document.querySelector('input[name=csrf]').value);
                 fetch(arguments[0], {method: 'POST', body}).then(r => done(r.status), e => done(String(e)));",
                vec![serde_json::json!(action), serde_json::Value::Object(fields)],
            )
            .await
            .unwrap();
        assert_eq!(
            status,
            serde_json::json!(403),
            "{action}: a forged POST is refused"
        );
    }
    let (_, job) = api(base, "GET", &format!("/v1/jobs/{flaky}"), admin, None).await;
    assert_eq!(job["state"], "completed", "untouched by the reader");
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

/// The Live page: a job enqueued through the API shows up in the event
/// list without a reload (the page prepends it from its stream), with its
/// job link; a filter for another queue keeps it out. The Schedules page
/// shows the next fire times in the browser's local time too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_live_events_and_local_schedule_times() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED browser_live_events_and_local_schedule_times: {} not installed; \
             install with `apt-get install -y chromium chromium-driver` (.ci/run does)",
            missing.join(" and ")
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("kyu.toml"), "[jobs.quick]\ncommand = [\"true\"]\n").unwrap();
    let (_serve, addr, admin) = serve(d);
    let base = format!("http://{addr}");
    let (driver, c) = browser().await;
    let run = live_scenario(&c, &base, &admin);
    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run)).await;
    let _ = c.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn live_scenario(c: &Client, base: &str, admin: &str) {
    let c = c.clone();
    c.goto(&format!("{base}/login?token={admin}"))
        .await
        .unwrap();
    c.goto(&format!("{base}/live")).await.unwrap();
    wait_for(&c, Locator::Css("#live[data-events]"), "the Live page").await;
    // A mark on this document: gone if the page reloaded.
    c.execute("window.kyuStayed = true; return null;", vec![])
        .await
        .unwrap();
    let id = enqueue(base, admin, serde_json::json!({"kind": "quick"})).await;
    let row = wait_for(
        &c,
        Locator::Css(&format!("#events tr[data-event] a[href='/jobs/{id}']")),
        "the new job's events on the Live page",
    )
    .await;
    assert_eq!(row.text().await.unwrap(), id.to_string());
    let stayed = c
        .execute("return window.kyuStayed === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        stayed,
        serde_json::json!(true),
        "prepended without a reload"
    );
    // Its completion follows on the same page.
    wait_for(
        &c,
        Locator::XPath(&format!(
            "//tbody[@id='events']/tr[.//a[@href='/jobs/{id}']]/td/span[text()='completed']"
        )),
        "the job's completed event",
    )
    .await;
    shot(&c, "live").await;

    // Filtered to another queue: the next job stays out.
    c.goto(&format!("{base}/live?queue=elsewhere"))
        .await
        .unwrap();
    wait_for(
        &c,
        Locator::Css("#live[data-events]"),
        "the filtered Live page",
    )
    .await;
    let other = enqueue(base, admin, serde_json::json!({"kind": "quick"})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let src = c.source().await.unwrap();
    assert!(!src.contains(&format!("/jobs/{other}\"")), "{src}");

    // Schedules: the next fires in the viewer's local time beside the zone's.
    let (status, r) = api(
        base,
        "PUT",
        "/v1/schedules/hourly",
        admin,
        Some(serde_json::json!({"cron": "0 * * * *", "zone": "Asia/Tokyo", "job": {"kind": "quick"}})),
    )
    .await;
    assert!(status == 200 || status == 201, "schedule: {status} {r}");
    c.goto(&format!("{base}/schedules")).await.unwrap();
    let local = wait_for(
        &c,
        Locator::Css("time[data-local] + span.local"),
        "local time",
    )
    .await;
    let text = local.text().await.unwrap();
    assert!(text.contains("your time"), "{text}");
    shot(&c, "schedules-local").await;
}
