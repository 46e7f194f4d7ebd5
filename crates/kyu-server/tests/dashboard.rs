//! The web dashboard through the real router (`tower::ServiceExt::oneshot`):
//! login and the session cookie, the first-run login link, the page matrix
//! generated from the dashboard's table (every page × scope, and × tenant),
//! CSRF and cross-site refusals, a read-only viewer's pages without
//! buttons, escaping of attacker-controlled text, and the operator actions.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use kyu::tokens::TokenSpec;
use kyu::{Job, JobContext, JobError, JobResult, JobState, Kyu, Scope, Worker};
use kyu_server::dashboard::{self, session, Access, PageInfo};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower::ServiceExt;

struct T {
    kyu: Kyu,
    app: axum::Router,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The action forms of the page (every POST form but logout's).
    fn action_forms(&self) -> Vec<&str> {
        self.body
            .match_indices("method=\"post\" action=\"")
            .map(|(i, m)| {
                let rest = &self.body[i + m.len()..];
                &rest[..rest.find('"').unwrap()]
            })
            .filter(|a| *a != "/logout")
            .collect()
    }
}

/// A job that fails for good with an attacker-controlled message.
#[derive(Serialize, Deserialize)]
struct Boom {
    note: String,
}

impl Job for Boom {
    const KIND: &'static str = "boom";
    async fn run(self, _ctx: JobContext) -> JobResult {
        Err(JobError::permanent(format!(
            "<script>alert('err')</script> {}",
            self.note
        )))
    }
}

impl T {
    async fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kyu.db", dir.path().display());
        let kyu = Kyu::connect(&url).await.unwrap();
        T::over(kyu, dir)
    }

    /// A store whose clock the test moves.
    async fn with_clock(clock: kyu::ManualClock) -> T {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kyu.db", dir.path().display());
        let store = kyu_sqlite::SqliteStore::open(
            &url,
            kyu_sqlite::SqliteOptions {
                clock: std::sync::Arc::new(clock),
                ..Default::default()
            },
        )
        .unwrap();
        T::over(Kyu::from_store(std::sync::Arc::new(store)), dir)
    }

    /// A PostgreSQL store (a fresh schema of KYU_TEST_POSTGRES_URL) whose
    /// clock the test moves; `None` when that variable is not set.
    async fn postgres_with_clock(clock: kyu::ManualClock, name: &str) -> Option<T> {
        let Ok(base) = std::env::var("KYU_TEST_POSTGRES_URL") else {
            eprintln!("KYU_TEST_POSTGRES_URL is not set: {name} on PostgreSQL skipped");
            return None;
        };
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}schema=t_dash_{name}_{}", std::process::id());
        let store = kyu::postgres::PgStore::connect(
            &url,
            kyu::postgres::PgOptions::with_clock(std::sync::Arc::new(clock)),
        )
        .await
        .expect("connect to KYU_TEST_POSTGRES_URL");
        Some(T::over(
            Kyu::from_store(std::sync::Arc::new(store)),
            tempfile::tempdir().unwrap(),
        ))
    }

    fn over(kyu: Kyu, dir: tempfile::TempDir) -> T {
        let app = kyu_server::router(kyu.clone(), kyu_server::Options::default());
        T {
            kyu,
            app,
            _dir: dir,
        }
    }

    async fn token(&self, name: &str, scopes: &[Scope], queues: &[&str]) -> String {
        self.kyu
            .create_token(TokenSpec {
                name: name.into(),
                scopes: scopes.to_vec(),
                queues: queues.iter().map(|q| q.parse().unwrap()).collect(),
                expires_in: None,
            })
            .await
            .unwrap()
            .secret
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        if headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| t == "text/event-stream")
        {
            // A live stream never ends: its status and headers are the answer.
            return Answer {
                status,
                headers,
                body: String::new(),
            };
        }
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).to_string(),
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        // A page asked for before the store's first count is in (it waits
        // at most 250 ms for it, which a loaded CI machine can exceed) says
        // so and reloads itself; as a browser would, ask again.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut req = Request::get(path).header(header::HOST, "kyu.test");
            if let Some(c) = cookie {
                req = req.header(header::COOKIE, c);
            }
            let a = self.send(req.body(Body::empty()).unwrap()).await;
            if !a
                .body
                .contains("Counting the jobs in the store for the first time")
                || std::time::Instant::now() > deadline
            {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A form POST from this site's own page (as a browser sends it).
    async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
        self.post_with(path, cookie, form, &[("origin", "http://kyu.test")])
            .await
    }

    async fn post_with(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::post(path)
            .header(header::HOST, "kyu.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let body = serde_urlencoded::to_string(form).unwrap();
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    /// Logs in with `token`: the `Cookie` header value of the session.
    async fn login(&self, token: &str) -> String {
        let a = self.post("/login", None, &[("token", token)]).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "login: {}", a.body);
        let c = a
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("kyu_session="))
            .expect("a session cookie");
        c.split(';').next().unwrap().to_string()
    }

    /// A failed job of kind `boom` in `queue`, its error carrying `note`.
    async fn failed_job(&self, queue: &str, note: &str) -> i64 {
        let job = self
            .kyu
            .enqueue_with(Boom { note: note.into() }, |o| o.queue(queue))
            .await
            .unwrap();
        let worker = Worker::new(&self.kyu)
            .queue(queue, 1)
            .register::<Boom>()
            .start();
        let done = self
            .kyu
            .wait(job.id)
            .timeout(Duration::from_secs(30))
            .await
            .unwrap();
        worker.shutdown().await;
        assert_eq!(done.state, JobState::Failed);
        job.id
    }
}

fn csrf_of(cookie: &str) -> String {
    session::csrf_token(cookie.strip_prefix("kyu_session=").unwrap()).unwrap()
}

#[tokio::test]
async fn login_sets_an_httponly_samesite_strict_cookie_and_every_page_needs_it() {
    let t = T::new().await;
    let admin = t.token("admin", &[Scope::Admin], &[]).await;

    let a = t.get("/jobs?state=failed", None).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/login?next=%2Fjobs%3Fstate%3Dfailed");

    let a = t.get("/login", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("name=\"token\""), "{}", a.body);

    let a = t
        .post("/login", None, &[("token", "kyu_wrong"), ("next", "/jobs")])
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.set_cookies().is_empty());
    assert!(a.body.contains("unknown, revoked or expired"), "{}", a.body);

    let a = t
        .post("/login", None, &[("token", &admin), ("next", "/jobs")])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/jobs");
    let set = a.set_cookies().join("\n");
    assert!(set.contains("kyu_session="), "{set}");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/"), "{set}");

    // A login never sends the browser to another site.
    let a = t
        .post(
            "/login",
            None,
            &[("token", &admin), ("next", "//evil.example/")],
        )
        .await;
    assert_eq!(a.location(), "/");

    let cookie = t.login(&admin).await;
    let a = t.get("/", Some(&cookie)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("<h1>Overview</h1>"), "{}", a.body);
    let csp = a.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    // No inline script: every script element loads a file of the dashboard.
    for (i, _) in a.body.match_indices("<script") {
        assert!(
            a.body[i..].starts_with("<script src=\"/assets/"),
            "inline script at {i}: {}",
            &a.body[i..]
        );
    }
    assert!(a.body.contains(&format!("value=\"{}\"", csrf_of(&cookie))));

    // A revoked token's session ends at once.
    t.kyu.revoke_token("admin").await.unwrap();
    let a = t.get("/", Some(&cookie)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);

    // Logging out drops the cookie.
    let other = t.token("other", &[Scope::Read], &[]).await;
    let cookie = t.login(&other).await;
    let a = t
        .post("/logout", Some(&cookie), &[("csrf", &csrf_of(&cookie))])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("kyu_session=;") && c.contains("Max-Age=0")));

    // The assets are embedded and served.
    for (name, mime, _) in dashboard::assets::FILES {
        let a = t.get(&format!("/assets/{name}"), None).await;
        assert_eq!(a.status, StatusCode::OK, "{name}");
        assert_eq!(a.headers[header::CONTENT_TYPE], mime);
    }
}

#[tokio::test]
async fn first_run_login_link_logs_in_only_when_opened_directly() {
    let t = T::new().await;
    let first = t.kyu.create_first_token().await.unwrap().unwrap().secret;
    let link = format!("/login?token={first}");

    // Pasted into the address bar or opened from a terminal.
    let req = Request::get(&link)
        .header("sec-fetch-site", "none")
        .body(Body::empty())
        .unwrap();
    let a = t.send(req).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), "/");
    assert!(a
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("kyu_session=")));
    assert_eq!(a.headers[header::REFERRER_POLICY], "same-origin");

    // Followed from another site's page: refused (no login CSRF).
    let req = Request::get(&link)
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .unwrap();
    let a = t.send(req).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.set_cookies().is_empty());

    let a = t.get("/login?token=kyu_nothing", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.set_cookies().is_empty());
}

/// What one page is called with in the matrix: its path with the
/// placeholders filled and a form. Every row of the table must have one; a
/// new page without one fails here, so it cannot miss the matrix.
fn sample(p: &PageInfo, job: i64, queue: &str, schedule: &str) -> (String, Vec<(String, String)>) {
    let path = p
        .path
        .replace("{id}", &job.to_string())
        .replace(
            "{name}",
            if p.path.starts_with("/queues") {
                queue
            } else {
                schedule
            },
        )
        .replace("{file}", "dashboard.css")
        .replace("{run}", "1");
    // The batch every matrix test makes first.
    let path = if p.path.starts_with("/batches/") {
        "/batches/1".to_string()
    } else {
        path
    };
    let form: Vec<(&str, String)> = match (p.method.as_str(), p.path) {
        ("GET", "/jobs") => return (format!("/jobs?queue={queue}"), Vec::new()),
        ("GET", "/live") => return (format!("/live?queue={queue}"), Vec::new()),
        ("GET", "/jobs/bulk") => {
            return (
                format!("/jobs/bulk?action=retry&state=failed&queue={queue}"),
                Vec::new(),
            )
        }
        ("GET", _) => Vec::new(),
        ("POST", "/login") => vec![("token", "kyu_wrong".into())],
        ("POST", "/logout") => Vec::new(),
        ("POST", "/jobs/retry")
        | ("POST", "/jobs/cancel")
        | ("POST", "/jobs/delete")
        | ("POST", "/jobs/run-now") => vec![("ids", job.to_string())],
        ("POST", "/jobs/bulk") => vec![
            ("action", "retry".into()),
            ("state", "failed".into()),
            ("queue", queue.into()),
            ("max_id", job.to_string()),
            ("at", chrono::Utc::now().to_rfc3339()),
        ],
        ("POST", "/queues/{name}/concurrency") => vec![("global_concurrency", "7".into())],
        ("POST", p) if p.starts_with("/queues/") || p.starts_with("/schedules/") => Vec::new(),
        _ => panic!(
            "page {} {} has no sample request in the dashboard matrix: add one",
            p.method, p.path
        ),
    };
    (
        path,
        form.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    )
}

async fn call(
    t: &T,
    p: &PageInfo,
    path: &str,
    form: &[(String, String)],
    cookie: Option<&str>,
) -> Answer {
    if p.is_action() {
        let mut f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let csrf = cookie.map(csrf_of);
        if let Some(c) = &csrf {
            f.push(("csrf", c));
        }
        t.post(path, cookie, &f).await
    } else {
        t.get(path, cookie).await
    }
}

#[tokio::test]
async fn page_matrix_every_page_every_scope() {
    let t = T::new().await;
    let batch = t.kyu.batch().create().await.unwrap();
    assert_eq!(batch.id(), 1, "the batch the matrix's batch pages open");
    let job = t.failed_job("default", "x").await;
    t.kyu
        .schedule(kyu::ScheduleSpec::new(
            "s",
            kyu::CronExpr::parse("0 3 * * *").unwrap(),
            kyu::JobTemplate::new("k", json!({})),
        ))
        .await
        .unwrap();
    let pages = dashboard::pages();
    assert!(pages.len() >= 17, "the table lists every page");
    for scope in Scope::ALL {
        let token = t.token(&format!("only-{scope}"), &[scope], &[]).await;
        for p in &pages {
            let (path, form) = sample(p, job, "default", "s");
            // A fresh session for each call: logout ends it.
            let cookie = t.login(&token).await;
            let a = call(&t, p, &path, &form, Some(&cookie)).await;
            let allowed = match p.access {
                Access::Public | Access::Session => true,
                Access::Scope(s) | Access::AllQueues(s) => scope == Scope::Admin || scope == s,
            };
            if allowed {
                assert!(
                    a.status != StatusCode::UNAUTHORIZED && a.status != StatusCode::FORBIDDEN
                        || p.path == "/login",
                    "{scope} may call {} {path}: {} {}",
                    p.method,
                    a.status,
                    a.body
                );
            } else {
                assert_eq!(
                    a.status,
                    StatusCode::FORBIDDEN,
                    "{scope} may not call {} {path}: {}",
                    p.method,
                    a.body
                );
                assert!(a.body.contains("needs a token with scope"), "{}", a.body);
            }
            assert!(a.status.as_u16() < 500, "{} {path}: {}", p.method, a.status);
            // Without a session: a page sends to the login, an action is refused.
            let a = call(&t, p, &path, &form, None).await;
            match p.access {
                Access::Public => {
                    assert!(a.status.as_u16() < 500 && a.status != StatusCode::FORBIDDEN)
                }
                _ if p.is_action() => assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}"),
                _ => {
                    assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
                    assert!(a.location().starts_with("/login?next="), "{path}");
                }
            }
        }
    }
    // The job was retried (or deleted) by the operate and admin rows.
    assert!(t
        .kyu
        .store()
        .get(job)
        .await
        .unwrap()
        .is_none_or(|j| j.state != JobState::Failed));
}

#[tokio::test]
async fn tenant_sees_and_touches_nothing_of_another_tenant_on_any_page() {
    let t = T::new().await;
    t.kyu.batch().create().await.unwrap();
    let theirs = t.failed_job("tenant-b.mail", "b-secret-note").await;
    let ours = t.failed_job("tenant-a.mail", "ours").await;
    t.kyu
        .schedule(kyu::ScheduleSpec::new(
            "b-nightly",
            kyu::CronExpr::parse("0 3 * * *").unwrap(),
            {
                let mut j = kyu::JobTemplate::new("k", json!({}));
                j.queue = "tenant-b.mail".into();
                j
            },
        ))
        .await
        .unwrap();
    let tenant = t.token("tenant-a", &Scope::ALL, &["tenant-a.*"]).await;
    let mut leaks = Vec::new();
    for p in dashboard::pages() {
        for (path, form) in [
            // Aimed at tenant b's job, queue and schedule.
            sample(&p, theirs, "tenant-b.mail", "b-nightly"),
            // And unaimed: lists and counts must not show tenant b.
            {
                let (path, form) = sample(&p, ours, "tenant-a.mail", "b-nightly");
                (path.split('?').next().unwrap().to_string(), form)
            },
        ] {
            let cookie = t.login(&tenant).await;
            let a = call(&t, &p, &path, &form, Some(&cookie)).await;
            // Follow an action's redirect: the page it lands on must not leak either.
            let a = if a.status == StatusCode::SEE_OTHER && p.is_action() {
                t.get(a.location(), Some(&cookie)).await
            } else {
                a
            };
            // An error page may echo the name the request gave; a page
            // that answered must not show tenant b.
            if a.status.is_success()
                && (a.body.contains("tenant-b")
                    || a.body.contains("b-nightly")
                    || a.body.contains("b-secret-note")
                    || a.body.contains(&format!("/jobs/{theirs}\"")))
            {
                leaks.push(format!("{} {path}: {} {}", p.method, a.status, a.body));
            }
            assert!(a.status.as_u16() < 500, "{} {path}: {}", p.method, a.status);
        }
    }
    assert!(leaks.is_empty(), "tenant a saw tenant b: {leaks:#?}");
    let job = t.kyu.job(theirs).await.unwrap();
    assert_eq!(job.state, JobState::Failed, "tenant b's job untouched");
    let q = t.kyu.queues().await.unwrap();
    assert!(
        q.iter()
            .all(|q| !q.paused || q.queue.starts_with("tenant-a")),
        "no queue of b paused: {q:?}"
    );
    let limits = t.kyu.queue_limits().await.unwrap();
    assert!(
        limits.iter().all(|l| !l.queue.starts_with("tenant-b")),
        "no limit set on a queue of b: {limits:?}"
    );
    let s = t.kyu.get_schedule("b-nightly").await.unwrap();
    assert!(s.spec.enabled, "tenant b's schedule untouched");
    assert!(s.last_job_id.is_none(), "and not triggered");
}

#[tokio::test]
async fn actions_need_the_sessions_csrf_token_and_this_sites_origin() {
    let t = T::new().await;
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    t.kyu
        .enqueue(kyu::NewJob::new("k", json!({})))
        .await
        .unwrap();
    let cookie = t.login(&admin).await;
    let csrf = csrf_of(&cookie);
    let paused = |t: &T| {
        let kyu = t.kyu.clone();
        async move { kyu.queues().await.unwrap()[0].paused }
    };

    let a = t.post("/queues/default/pause", Some(&cookie), &[]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "no CSRF token");
    let other = t.login(&admin).await;
    let a = t
        .post(
            "/queues/default/pause",
            Some(&cookie),
            &[("csrf", &csrf_of(&other))],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "another session's token");
    let a = t
        .post_with(
            "/queues/default/pause",
            Some(&cookie),
            &[("csrf", &csrf)],
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "another origin");
    let a = t
        .post_with(
            "/queues/default/pause",
            Some(&cookie),
            &[("csrf", &csrf)],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "another site");
    assert!(!paused(&t).await, "nothing paused by a refused request");
    // A login from another site is refused too.
    let a = t
        .post_with(
            "/login",
            None,
            &[("token", &admin)],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    let a = t
        .post_with(
            "/queues/default/pause",
            Some(&cookie),
            &[("csrf", &csrf), ("back", "/queues")],
            &[
                ("origin", "http://kyu.test"),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), "/queues");
    assert!(paused(&t).await);
    // The next page shows what was done, once.
    let flash = a
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("kyu_flash="))
        .unwrap();
    let both = format!("{cookie}; {}", flash.split(';').next().unwrap());
    let page = t.get("/queues", Some(&both)).await;
    assert!(page.body.contains("Queue default paused."), "{}", page.body);
    assert!(page.body.contains(">Resume<"), "{}", page.body);
    let a = t
        .post(
            "/queues/default/resume",
            Some(&cookie),
            &[("csrf", &csrf), ("back", "/queues")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(!paused(&t).await);
}

#[tokio::test]
async fn read_only_viewer_sees_no_action_buttons_and_a_forced_post_is_refused() {
    let t = T::new().await;
    let job = t.failed_job("default", "x").await;
    t.kyu
        .schedule(kyu::ScheduleSpec::new(
            "s",
            kyu::CronExpr::parse("0 3 * * *").unwrap(),
            kyu::JobTemplate::new("k", json!({})),
        ))
        .await
        .unwrap();
    let reader = t
        .token("reader", &[Scope::Read, Scope::ReadArgs], &[])
        .await;
    let operator = t
        .token("operator", &[Scope::Read, Scope::Operate], &[])
        .await;
    let pages = [
        "/".to_string(),
        "/queues".into(),
        "/jobs".into(),
        "/jobs?state=failed".into(),
        format!("/jobs/{job}"),
        "/schedules".into(),
        "/workers".into(),
        "/batches".into(),
    ];
    let rc = t.login(&reader).await;
    let oc = t.login(&operator).await;
    let mut operator_forms = 0;
    for p in &pages {
        let a = t.get(p, Some(&rc)).await;
        assert_eq!(a.status, StatusCode::OK, "{p}");
        assert!(a.action_forms().is_empty(), "{p}: {:?}", a.action_forms());
        assert!(!a.body.contains("type=\"checkbox\""), "{p}");
        operator_forms += t.get(p, Some(&oc)).await.action_forms().len();
    }
    assert!(operator_forms >= 6, "an operator sees the buttons");
    // Forged: a valid session and CSRF token, but no `operate` scope.
    let a = t
        .post(
            "/jobs/retry",
            Some(&rc),
            &[("csrf", &csrf_of(&rc)), ("ids", &job.to_string())],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(t.kyu.job(job).await.unwrap().state, JobState::Failed);
}

#[tokio::test]
async fn attacker_controlled_text_renders_inert() {
    let t = T::new().await;
    let job = t
        .failed_job("default", "<img src=x onerror=alert(1)>")
        .await;
    t.kyu
        .enqueue(
            kyu::NewJob::new("k", json!({"html": "<script>alert('args')</script>"}))
                .tag("<b>tag</b>"),
        )
        .await
        .unwrap();
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let cookie = t.login(&admin).await;
    for p in [
        "/jobs".to_string(),
        format!("/jobs/{job}"),
        format!("/jobs/{}", job + 1),
    ] {
        let a = t.get(&p, Some(&cookie)).await;
        assert_eq!(a.status, StatusCode::OK, "{p}");
        for raw in ["<script>alert", "<img src=x", "<b>tag"] {
            assert!(!a.body.contains(raw), "{p} has raw {raw}: {}", a.body);
        }
    }
    let a = t.get(&format!("/jobs/{job}"), Some(&cookie)).await;
    assert!(a.body.contains("&lt;script&gt;alert("), "{}", a.body);
    assert!(a.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

#[tokio::test]
async fn job_page_redacts_args_without_read_args_and_retry_runs_the_job_again() {
    let t = T::new().await;
    let job = t.failed_job("default", "the-args-note").await;
    let reader = t.token("reader", &[Scope::Read], &[]).await;
    let rc = t.login(&reader).await;
    let a = t.get(&format!("/jobs/{job}"), Some(&rc)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(!a.body.contains("class=\"json\""), "args shown: {}", a.body);
    assert!(a.body.contains("lacks the <code>read_args</code>"));
    // The error is shown (it is what an operator needs), the args are not.
    assert!(a.body.contains("Attempt 1"), "{}", a.body);

    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let ac = t.login(&admin).await;
    let a = t.get("/jobs?state=failed", Some(&ac)).await;
    assert!(
        a.body.contains(&format!("href=\"/jobs/{job}\"")),
        "{}",
        a.body
    );
    assert!(
        a.body.contains("failed <span class=\"n\">1</span>"),
        "{}",
        a.body
    );
    let a = t.get(&format!("/jobs/{job}"), Some(&ac)).await;
    assert!(
        a.body
            .contains("&quot;note&quot;: &quot;the-args-note&quot;"),
        "{}",
        a.body
    );
    assert!(a.action_forms().contains(&"/jobs/retry"));
    let a = t
        .post(
            "/jobs/retry",
            Some(&ac),
            &[
                ("csrf", &csrf_of(&ac)),
                ("ids", &job.to_string()),
                ("ids", "999999"),
                ("back", &format!("/jobs/{job}")),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), format!("/jobs/{job}"));
    let flash = a.set_cookies().join(";");
    assert!(flash.contains("kyu_flash="));
    assert_eq!(t.kyu.job(job).await.unwrap().state, JobState::Available);

    // Cancel from the job's page; the id filter finds it.
    let a = t
        .post(
            "/jobs/cancel",
            Some(&ac),
            &[("csrf", &csrf_of(&ac)), ("ids", &job.to_string())],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(t.kyu.job(job).await.unwrap().state, JobState::Cancelled);
    let a = t.get(&format!("/jobs?id={job}"), Some(&ac)).await;
    assert_eq!(a.location(), format!("/jobs/{job}"));
    let a = t.get("/jobs?state=nonsense", Some(&ac)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body.contains("accepted: scheduled, available"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn jobs_page_pages_by_cursor_and_schedules_page_triggers() {
    let t = T::new().await;
    let n = dashboard_page_size() + 5;
    let jobs: Vec<kyu::NewJob> = (0..n)
        .map(|i| kyu::NewJob::new("k", json!({ "i": i })))
        .collect();
    t.kyu.enqueue_many(jobs).await.unwrap();
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;
    let a = t.get("/jobs", Some(&c)).await;
    let rows = a.body.matches("data-job=").count();
    assert_eq!(rows, dashboard_page_size());
    let next = a.body.split("rel=\"next\"").next().unwrap();
    let href = &next[next.rfind("href=\"").unwrap() + 6..];
    let href = href[..href.find('"').unwrap()].replace("&amp;", "&");
    let a = t.get(&href, Some(&c)).await;
    assert_eq!(a.body.matches("data-job=").count(), 5, "{href}");
    assert!(!a.body.contains("rel=\"next\""));

    t.kyu
        .schedule({
            let mut s = kyu::ScheduleSpec::new(
                "nightly",
                kyu::CronExpr::parse("0 3 * * *").unwrap(),
                kyu::JobTemplate::new("report", json!({})),
            );
            s.zone = kyu::parse_zone("Asia/Tokyo").unwrap();
            s
        })
        .await
        .unwrap();
    let a = t.get("/schedules", Some(&c)).await;
    assert!(a.body.contains("Asia/Tokyo"), "{}", a.body);
    assert!(a.body.contains("03:00 JST"), "{}", a.body);
    let csrf = csrf_of(&c);
    let a = t
        .post("/schedules/nightly/trigger", Some(&c), &[("csrf", &csrf)])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(t
        .kyu
        .get_schedule("nightly")
        .await
        .unwrap()
        .last_job_id
        .is_some());
    let a = t
        .post("/schedules/nightly/disable", Some(&c), &[("csrf", &csrf)])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(!t.kyu.get_schedule("nightly").await.unwrap().spec.enabled);
    let a = t
        .post("/schedules/nightly/enable", Some(&c), &[("csrf", &csrf)])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(t.kyu.get_schedule("nightly").await.unwrap().spec.enabled);
}

fn dashboard_page_size() -> usize {
    50
}

#[tokio::test]
async fn live_stream_carries_only_the_viewers_queues_events() {
    let t = T::new().await;
    let tenant = t.token("tenant-a", &[Scope::Read], &["tenant-a.*"]).await;
    let cookie = t.login(&tenant).await;
    let req = Request::get("/live/events")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = resp.into_body();
    // Tenant b's job first, then tenant a's: the first event the stream
    // carries must be tenant a's.
    let b = t
        .kyu
        .enqueue(kyu::NewJob::new("k", json!({"secret": "b"})).queue("tenant-b.mail"))
        .await
        .unwrap();
    let a = t
        .kyu
        .enqueue(kyu::NewJob::new("k", json!({})).queue("tenant-a.mail"))
        .await
        .unwrap();
    let text = first_live_message(&mut body).await;
    assert!(text.starts_with("event: change"), "{text}");
    assert!(text.contains("tenant-a.mail"), "{text}");
    assert!(text.contains(&format!("\"job\":{}", a.id)), "{text}");
    assert!(
        !text.contains("tenant-b") && !text.contains(&format!("\"job\":{}", b.id)),
        "{text}"
    );
    assert!(!text.contains("secret"), "no args in events: {text}");
}

/// The first SSE message of a `/live/events` stream.
async fn first_live_message(body: &mut Body) -> String {
    let mut text = String::new();
    while !text.contains("\n\n") {
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .expect("an event within 20 s")
            .expect("the stream goes on")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text
}

#[tokio::test]
async fn live_stream_carries_worker_events_to_an_admin_and_not_to_a_tenant() {
    let t = T::new().await;
    let admin = t.token("ops", &[Scope::Admin], &[]).await;
    let tenant = t.token("tenant-a", &[Scope::Read], &["tenant-a.*"]).await;
    let mut bodies = Vec::new();
    for token in [&admin, &tenant] {
        let cookie = t.login(token).await;
        let req = Request::get("/live/events")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        let resp = t.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        bodies.push(resp.into_body());
    }
    // A worker starts (an event of no queue), then tenant a's job comes.
    t.kyu
        .store()
        .worker_seen(
            &kyu::WorkerInfo {
                id: "w-live".into(),
                queues: vec!["tenant-b.mail".into()],
                kinds: None,
            },
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let a = t
        .kyu
        .enqueue(kyu::NewJob::new("k", json!({})).queue("tenant-a.mail"))
        .await
        .unwrap();
    let seen_by_admin = first_live_message(&mut bodies[0]).await;
    assert!(
        seen_by_admin.contains("\"type\":\"worker_started\"")
            && seen_by_admin.contains("\"queue\":null"),
        "the admin's page hears of the worker: {seen_by_admin}"
    );
    let seen_by_tenant = first_live_message(&mut bodies[1]).await;
    assert!(
        seen_by_tenant.contains(&format!("\"job\":{}", a.id))
            && !seen_by_tenant.contains("worker_started"),
        "the tenant's first event is its job, not another tenant's worker: {seen_by_tenant}"
    );
}

impl T {
    /// `n` failed jobs of kind `boom` in `queue`, run by one worker.
    async fn failed_jobs(&self, queue: &str, n: usize) -> Vec<i64> {
        let mut ids = Vec::new();
        for i in 0..n {
            let job = self
                .kyu
                .enqueue_with(
                    Boom {
                        note: format!("n{i}"),
                    },
                    |o| o.queue(queue),
                )
                .await
                .unwrap();
            ids.push(job.id);
        }
        let worker = Worker::new(&self.kyu)
            .queue(queue, 4)
            .register::<Boom>()
            .start();
        for id in &ids {
            let done = self
                .kyu
                .wait(*id)
                .timeout(Duration::from_secs(30))
                .await
                .unwrap();
            assert_eq!(done.state, JobState::Failed);
        }
        worker.shutdown().await;
        ids
    }

    /// The API's answer to `GET path` with a bearer token: status and JSON.
    async fn api_get(&self, path: &str, token: &str) -> (StatusCode, serde_json::Value) {
        let req = Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let a = self.send(req).await;
        (a.status, serde_json::from_str(&a.body).unwrap_or_default())
    }
}

/// Text as maud writes it into a page.
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The value of the hidden input `name` in a page.
fn hidden_value(body: &str, name: &str) -> String {
    let at = body
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no input {name}: {body}"));
    let rest = &body[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].replace("&amp;", "&")
}

#[tokio::test]
async fn jobs_page_filters_by_created_range_and_args_and_pages_with_them() {
    let t = T::new().await;
    let n = dashboard_page_size() + 3;
    let mut jobs: Vec<kyu::NewJob> = (0..n)
        .map(|i| kyu::NewJob::new("k", json!({ "user": 42, "i": i })))
        .collect();
    jobs.push(kyu::NewJob::new("k", json!({ "user": 7 })));
    let ids: Vec<i64> = t
        .kyu
        .enqueue_many(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let other = *ids.last().unwrap();
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;

    // A search inside args, pages by cursor with the filter kept.
    let a = t.get("/jobs?args=args.user%3D42", Some(&c)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body.matches("data-job=").count(), dashboard_page_size());
    assert!(!a.body.contains(&format!("data-job=\"{other}\"")));
    assert!(
        a.body.contains("value=\"args.user=42\""),
        "the box keeps it"
    );
    let next = a.body.split("rel=\"next\"").next().unwrap();
    let href = &next[next.rfind("href=\"").unwrap() + 6..];
    let href = href[..href.find('"').unwrap()].replace("&amp;", "&");
    assert!(href.contains("args=args.user%3D42"), "{href}");
    let a = t.get(&href, Some(&c)).await;
    assert_eq!(a.body.matches("data-job=").count(), 3, "{href}");
    // The list API's spelling works too.
    let a = t.get("/jobs?args.user=7", Some(&c)).await;
    assert_eq!(a.body.matches("data-job=").count(), 1);
    assert!(a.body.contains(&format!("data-job=\"{other}\"")));

    // The created range: from (inclusive) and before (exclusive), with its zone.
    let created = t.kyu.job(other).await.unwrap().created_at;
    let at = created.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let q = serde_urlencoded::to_string([("created_after", &at)]).unwrap();
    let a = t.get(&format!("/jobs?{q}"), Some(&c)).await;
    assert!(
        a.body.contains(&format!("data-job=\"{other}\"")),
        "{}",
        a.body
    );
    let q = serde_urlencoded::to_string([
        ("created_before", &at),
        ("args", &"args.user=7".to_string()),
    ])
    .unwrap();
    let a = t.get(&format!("/jobs?{q}"), Some(&c)).await;
    assert_eq!(a.body.matches("data-job=").count(), 0, "{}", a.body);
    // Another zone's spelling of the same instant.
    let tokyo = created
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    let q = serde_urlencoded::to_string([("created_after", &tokyo)]).unwrap();
    let a = t.get(&format!("/jobs?{q}"), Some(&c)).await;
    assert!(a.body.contains(&format!("data-job=\"{other}\"")), "{tokyo}");

    // Bad input: an HTML page with the API list's own words.
    for (page, api) in [
        (
            "/jobs?created_after=yesterday",
            "/v1/jobs?created_after=yesterday",
        ),
        ("/jobs?args=args.a%20b%3D1", "/v1/jobs?args.a%20b=1"),
        ("/jobs?state=done", "/v1/jobs?state=done"),
        ("/jobs?queue=a%01b", "/v1/jobs?queue=a%01b"),
    ] {
        let a = t.get(page, Some(&c)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{page}");
        assert!(
            a.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{page}"
        );
        let (status, body) = t.api_get(api, &admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{api}: {body}");
        let words = body["error"]["message"].as_str().unwrap();
        assert!(
            a.body.contains(&escaped(words)),
            "{page} says what {api} says ({words}): {}",
            a.body
        );
    }
    // Without read_args: no Args box, and a search inside args is refused
    // (the args are hidden from this token).
    let blind = t.token("blind", &[Scope::Read], &[]).await;
    let bc = t.login(&blind).await;
    let a = t.get("/jobs", Some(&bc)).await;
    assert!(!a.body.contains("name=\"args\""), "{}", a.body);
    let a = t.get("/jobs?args=args.user%3D42", Some(&bc)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(
        a.body.contains("needs a token with scope read_args"),
        "{}",
        a.body
    );

    let a = t.get("/jobs?colour=red", Some(&c)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body.contains("created_after"),
        "names the accepted: {}",
        a.body
    );
}

#[tokio::test]
async fn bulk_all_matching_counts_confirms_and_spares_jobs_that_came_after() {
    let t = T::new().await;
    let looked_at = t.failed_jobs("mail", 3).await;
    let other_queue = t.failed_jobs("other", 1).await[0];
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;

    // The Jobs page offers "all matching" beside the ticked rows.
    let a = t.get("/jobs?state=failed&queue=mail", Some(&c)).await;
    assert!(a.body.contains("action=\"/jobs/bulk\""), "{}", a.body);

    // The dry run: a count, the filter, the snapshot in the form.
    let a = t
        .get("/jobs/bulk?action=retry&state=failed&queue=mail", Some(&c))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body
            .contains("Retry <strong class=\"count\">3</strong> jobs matching"),
        "{}",
        a.body
    );
    assert!(a.body.contains("queue <strong>mail</strong>"), "{}", a.body);
    let max_id = hidden_value(&a.body, "max_id");
    let at = hidden_value(&a.body, "at");
    assert_eq!(max_id, other_queue.to_string());

    // A job that fails after the operator looked is not touched.
    let later = t.failed_jobs("mail", 1).await[0];
    let form = [
        ("csrf", csrf_of(&c)),
        ("action", "retry".into()),
        ("state", "failed".into()),
        ("queue", "mail".into()),
        ("max_id", max_id.clone()),
        ("at", at.clone()),
        ("expected", "3".into()),
    ];
    let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Without the CSRF token, or from a reader: refused, nothing done.
    let a = t.post("/jobs/bulk", Some(&c), &f[1..]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let reader = t
        .token("reader", &[Scope::Read, Scope::ReadArgs], &[])
        .await;
    let rc = t.login(&reader).await;
    let mut forged = f.clone();
    let rcsrf = csrf_of(&rc);
    forged[0] = ("csrf", &rcsrf);
    let a = t.post("/jobs/bulk", Some(&rc), &forged).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = t
        .get("/jobs/bulk?action=retry&state=failed", Some(&rc))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "a reader gets no dry run");
    for id in &looked_at {
        assert_eq!(t.kyu.job(*id).await.unwrap().state, JobState::Failed);
    }

    let a = t.post("/jobs/bulk", Some(&c), &f).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let run = a.location().to_string();
    assert!(run.starts_with("/jobs/bulk/"), "{run}");
    // The progress page, until the run is done.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let page = loop {
        let a = t.get(&run, Some(&c)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        if a.body.contains("Done: ") {
            assert!(!a.headers.contains_key(header::REFRESH));
            break a.body;
        }
        assert!(
            a.headers.contains_key(header::REFRESH),
            "refreshes while running"
        );
        assert!(std::time::Instant::now() < deadline, "{}", a.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(page.contains("Retry: 3 retried."), "{page}");
    for id in &looked_at {
        assert_eq!(t.kyu.job(*id).await.unwrap().state, JobState::Available);
    }
    assert_eq!(
        t.kyu.job(later).await.unwrap().state,
        JobState::Failed,
        "came after"
    );
    assert_eq!(
        t.kyu.job(other_queue).await.unwrap().state,
        JobState::Failed,
        "another queue"
    );
    // Another token does not see the run.
    let op = t.token("op", &[Scope::Read, Scope::Operate], &[]).await;
    let oc = t.login(&op).await;
    let a = t.get(&run, Some(&oc)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Nothing left to do: no button.
    let a = t
        .get("/jobs/bulk?action=retry&state=failed&queue=none", Some(&c))
        .await;
    assert!(a.body.contains("No job matches"), "{}", a.body);
    assert!(!a.action_forms().contains(&"/jobs/bulk"));
    // A form without the snapshot is refused.
    let a = t.post("/jobs/bulk", Some(&c), &f[..4]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("max_id: missing"), "{}", a.body);
}

#[tokio::test]
async fn bulk_dry_run_count_is_bounded() {
    let t = T::new().await;
    let n = 10_001;
    let mut last = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let jobs: Vec<kyu::NewJob> = chunk
            .iter()
            .map(|i| kyu::NewJob::new("k", json!({ "i": i })))
            .collect();
        last = t.kyu.enqueue_many(jobs).await.unwrap().last().unwrap().id;
    }
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;
    let a = t.get("/jobs/bulk?action=delete&kind=k", Some(&c)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body.contains("<strong class=\"count\">10,000+</strong>"),
        "{}",
        a.body
    );
    // Exactly the cap: no "+".
    t.kyu.cancel(&[last]).await.unwrap();
    let a = t
        .get("/jobs/bulk?action=delete&kind=k&state=available", Some(&c))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body.contains("<strong class=\"count\">10,000</strong>"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn job_page_deletes_and_runs_now_and_bad_ids_get_html_pages() {
    let t = T::new().await;
    let later = t
        .kyu
        .enqueue(
            kyu::NewJob::new("k", json!({}))
                .run_at(chrono::Utc::now() + chrono::Duration::hours(1)),
        )
        .await
        .unwrap()
        .id;
    let gone = t
        .kyu
        .enqueue(kyu::NewJob::new("k", json!({})).queue("mail"))
        .await
        .unwrap()
        .id;
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;
    let reader = t.token("reader", &[Scope::Read], &[]).await;
    let rc = t.login(&reader).await;

    let a = t.get(&format!("/jobs/{later}"), Some(&c)).await;
    let forms = a.action_forms();
    assert!(forms.contains(&"/jobs/run-now"), "{forms:?}");
    assert!(forms.contains(&"/jobs/delete"), "{forms:?}");
    let a = t.get(&format!("/jobs/{later}"), Some(&rc)).await;
    assert!(a.action_forms().is_empty());
    // A reader's forged delete is refused.
    let a = t
        .post(
            "/jobs/delete",
            Some(&rc),
            &[("csrf", &csrf_of(&rc)), ("ids", &later.to_string())],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    let a = t
        .post(
            "/jobs/run-now",
            Some(&c),
            &[
                ("csrf", &csrf_of(&c)),
                ("ids", &later.to_string()),
                ("back", &format!("/jobs/{later}")),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(t.kyu.job(later).await.unwrap().state, JobState::Available);
    let flash = a.set_cookies().join(";");
    let notice = flash
        .split("kyu_flash=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert_eq!(
        String::from_utf8(hex_decode(notice)).unwrap(),
        "Run now: 1 made available."
    );

    let a = t.get(&format!("/jobs/{gone}"), Some(&c)).await;
    let at = a.body.find("action=\"/jobs/delete\"").unwrap();
    let back = hidden_value(&a.body[at..], "back");
    assert_eq!(back, "/jobs?queue=mail", "a deleted job's page is gone");
    let a = t
        .post(
            "/jobs/delete",
            Some(&c),
            &[
                ("csrf", &csrf_of(&c)),
                ("ids", &gone.to_string()),
                ("back", &back),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(t.kyu.store().get(gone).await.unwrap().is_none());

    // Bad and unknown ids: an HTML page in the dashboard's layout.
    for (path, status, words) in [
        (
            "/jobs/xyz",
            StatusCode::BAD_REQUEST,
            "id: &quot;xyz&quot; is not a job id; accepted: a positive integer",
        ),
        (&format!("/jobs/{gone}"), StatusCode::NOT_FOUND, "not found"),
        (
            "/jobs/999999999",
            StatusCode::NOT_FOUND,
            "accepted: the id of a job listed on the Jobs page",
        ),
        (
            "/jobs/99999999999999999999",
            StatusCode::BAD_REQUEST,
            "accepted: a positive integer",
        ),
        (
            "/jobs/bulk/xyz",
            StatusCode::BAD_REQUEST,
            "accepted: a positive integer",
        ),
        (
            "/jobs/bulk/77",
            StatusCode::NOT_FOUND,
            "bulk action 77 not found",
        ),
        (
            "/jobs?id=0",
            StatusCode::BAD_REQUEST,
            "accepted: a positive integer",
        ),
    ] {
        let a = t.get(path, Some(&c)).await;
        assert_eq!(a.status, status, "{path}: {}", a.body);
        assert!(
            a.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(a.body.contains(words), "{path}: {}", a.body);
        assert!(
            a.body.contains("<nav aria-label=\"Main\">"),
            "{path}: in the layout: {}",
            a.body
        );
        assert!(a.body.contains("aria-label=\"Main\""), "{path}");
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Set while a [`Hold`] job may end.
static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A job that runs until [`RELEASE`] is set.
#[derive(Serialize, Deserialize)]
struct Hold {}

impl Job for Hold {
    const KIND: &'static str = "hold";
    async fn run(self, _ctx: JobContext) -> JobResult {
        while !RELEASE.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(kyu::Outcome::Done)
    }
}

#[tokio::test]
async fn running_jobs_page_tails_its_output_live_as_text() {
    let t = T::new().await;
    let id = t.kyu.enqueue(Hold {}).await.unwrap().id;
    let worker = Worker::new(&t.kyu)
        .queue("default", 1)
        .register::<Hold>()
        .start();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while t.kyu.job(id).await.unwrap().state != JobState::Running {
        assert!(std::time::Instant::now() < deadline, "the job runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = |stdout: &str| kyu::AttemptLogs {
        attempt: 1,
        stdout: stdout.to_string(),
        stderr: String::new(),
        stdout_bytes: stdout.len() as u64,
        stderr_bytes: 0,
    };
    let first = "<script>alert(1)</script>\n";
    t.kyu.store().set_logs(id, logs(first)).await.unwrap();
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;
    let a = t.get(&format!("/jobs/{id}"), Some(&c)).await;
    assert!(
        a.body.contains(&format!(
            "class=\"tail\" data-attempt=\"1\" data-stdout=\"{}\" data-stderr=\"0\"",
            first.len()
        )),
        "{}",
        a.body
    );
    assert!(a.body.contains("&lt;script&gt;alert(1)"), "{}", a.body);
    assert!(!a.body.contains("<script>alert"));

    // The page's stream carries what is written after the page's text.
    let req = Request::get(format!(
        "/live/events?job={id}&attempt=1&stdout={}&stderr=0",
        first.len()
    ))
    .header(header::COOKIE, &c)
    .body(Body::empty())
    .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let all = format!("{first}step 2\n");
    t.kyu.store().set_logs(id, logs(&all)).await.unwrap();
    let mut text = String::new();
    while !text.contains("event: output")
        || !text[text.find("event: output").unwrap()..].contains("\n\n")
    {
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .expect("an output event within 20 s")
            .expect("the stream goes on")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let event = &text[text.find("event: output").unwrap()..];
    let data: serde_json::Value = serde_json::from_str(
        event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data["stdout"], "step 2\n", "only what is new: {event}");
    assert_eq!(data["stdout_bytes"], all.len());
    RELEASE.store(true, std::sync::atomic::Ordering::SeqCst);
    worker.shutdown().await;
}

/// A job that succeeds.
#[derive(Serialize, Deserialize)]
struct Fine {}

impl Job for Fine {
    const KIND: &'static str = "fine";
    async fn run(self, _ctx: JobContext) -> JobResult {
        Ok(kyu::Outcome::Done)
    }
}

/// Released by [`Held`] jobs' tests: a held job runs until then.
static HELD_RELEASE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// A job that runs until the test releases it.
#[derive(Serialize, Deserialize)]
struct Held {}

impl Job for Held {
    const KIND: &'static str = "held";
    async fn run(self, _ctx: JobContext) -> JobResult {
        HELD_RELEASE.notified().await;
        Ok(kyu::Outcome::Done)
    }
}

impl T {
    /// Runs `fine` jobs that succeed and `boom` jobs that fail for good in
    /// `queue`, to their end.
    async fn run_jobs(&self, queue: &str, fine: usize, boom: usize) {
        let mut ids = Vec::new();
        for _ in 0..fine {
            ids.push(
                self.kyu
                    .enqueue_with(Fine {}, |o| o.queue(queue))
                    .await
                    .unwrap()
                    .id,
            );
        }
        for _ in 0..boom {
            ids.push(
                self.kyu
                    .enqueue_with(Boom { note: "b".into() }, |o| o.queue(queue))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let worker = Worker::new(&self.kyu)
            .queue(queue, 4)
            .register::<Fine>()
            .register::<Boom>()
            .start();
        for id in ids {
            self.kyu
                .wait(id)
                .timeout(Duration::from_secs(30))
                .await
                .unwrap();
        }
        worker.shutdown().await;
    }
}

#[tokio::test]
async fn overview_charts_count_completions_and_failed_attempts_per_minute_and_quarter_hour() {
    let clock = kyu::ManualClock::new("2030-01-01T12:00:30Z".parse().unwrap());
    let t = T::with_clock(clock.clone()).await;
    charts_scenario(t, clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_overview_charts_count_completions_and_failed_attempts() {
    let clock = kyu::ManualClock::new("2030-01-01T12:00:30Z".parse().unwrap());
    if let Some(t) = T::postgres_with_clock(clock.clone(), "charts").await {
        charts_scenario(t, clock).await;
    }
}

async fn charts_scenario(t: T, clock: kyu::ManualClock) {
    t.run_jobs("tenant-a.mail", 3, 1).await;
    t.run_jobs("tenant-b.mail", 5, 0).await;
    clock.set("2030-01-01T12:20:30Z".parse().unwrap());
    t.run_jobs("tenant-a.mail", 2, 0).await;

    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;
    let a = t.get("/", Some(&c)).await;
    assert_eq!(a.status, StatusCode::OK);
    for title in [
        // The last hour by minute: 11:21 to 12:20.
        "<title>11:21 UTC: 0 completed, 0 failed</title>",
        "<title>12:00 UTC: 8 completed, 1 failed</title>",
        "<title>12:01 UTC: 0 completed, 0 failed</title>",
        "<title>12:20 UTC: 2 completed, 0 failed</title>",
        // The last day by quarter hour.
        "<title>12:00–12:15 UTC: 8 completed, 1 failed</title>",
        "<title>12:15–12:30 UTC: 2 completed, 0 failed</title>",
        ">Last hour, per minute: 10 completed, 1 failed</title>",
        ">Last day, per 15 minutes: 10 completed, 1 failed</title>",
    ] {
        assert!(a.body.contains(title), "{title} in {}", a.body);
    }
    assert!(!a.body.contains("<title>11:20 UTC"), "one hour, no more");
    assert_eq!(a.body.matches("<svg ").count(), 2);
    assert!(!a.body.contains("style="), "no inline style (CSP)");

    // A tenant's charts count its queues only.
    let tenant = t.token("tenant-a", &[Scope::Read], &["tenant-a.*"]).await;
    let c = t.login(&tenant).await;
    let a = t.get("/", Some(&c)).await;
    assert!(
        a.body
            .contains("<title>12:00 UTC: 3 completed, 1 failed</title>"),
        "{}",
        a.body
    );
    assert!(a
        .body
        .contains(">Last day, per 15 minutes: 5 completed, 1 failed</title>"));

    // A day later the old minutes are gone.
    clock.set("2030-01-02T12:30:30Z".parse().unwrap());
    t.run_jobs("tenant-a.mail", 1, 0).await;
    // The rollup reads the log again after its freshness period.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let c = t.login(&admin).await;
    let a = t.get("/", Some(&c)).await;
    assert!(
        a.body
            .contains(">Last day, per 15 minutes: 1 completed, 0 failed</title>"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn overview_shows_latency_and_the_jobs_no_worker_claims() {
    let clock = kyu::ManualClock::new("2030-01-01T00:00:00Z".parse().unwrap());
    let t = T::with_clock(clock.clone()).await;
    t.kyu
        .enqueue(kyu::NewJob::new("<i>kind</i>", json!({})).queue("<script>alert('q')</script>"))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(125));
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;
    let a = t.get("/", Some(&c)).await;
    assert!(a.body.contains("Jobs waiting but no worker"), "{}", a.body);
    assert!(a.body.contains("2 min 5 s"), "latency: {}", a.body);
    assert!(!a.body.contains("<script>alert") && !a.body.contains("<i>kind"));
    assert!(a.body.contains("&lt;script&gt;alert('q')&lt;/script&gt;"));
    assert!(a.body.contains("&lt;i&gt;kind&lt;/i&gt;"));
}

#[tokio::test]
async fn queues_page_shows_latency_and_limits_and_an_operator_sets_the_global_concurrency() {
    let clock = kyu::ManualClock::new("2030-01-01T00:00:00Z".parse().unwrap());
    let t = T::with_clock(clock.clone()).await;
    queues_scenario(t, clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_queues_page_shows_latency_and_limits_and_sets_the_global_concurrency() {
    let clock = kyu::ManualClock::new("2030-01-01T00:00:00Z".parse().unwrap());
    if let Some(t) = T::postgres_with_clock(clock.clone(), "queues").await {
        queues_scenario(t, clock).await;
    }
}

async fn queues_scenario(t: T, clock: kyu::ManualClock) {
    t.kyu
        .enqueue(kyu::NewJob::new("k", json!({})).queue("mail"))
        .await
        .unwrap();
    t.kyu
        .enqueue(kyu::NewJob::new("k", json!({})).queue("<script>alert('q')</script>"))
        .await
        .unwrap();
    t.kyu
        .set_queue_limits(
            "mail",
            kyu::LimitsUpdate {
                rate: Some(Some("20/1s".parse().unwrap())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(90));
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;
    let a = t.get("/queues", Some(&c)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("1 min 30 s"), "latency: {}", a.body);
    assert!(a.body.contains("rate 0 of 20/1s"), "{}", a.body);
    assert!(a.action_forms().contains(&"/queues/mail/concurrency"));
    assert!(a
        .action_forms()
        .contains(&"/queues/%3Cscript%3Ealert%28%27q%27%29%3C%2Fscript%3E/concurrency"));
    assert!(!a.body.contains("<script>alert"), "{}", a.body);
    assert!(a
        .body
        .contains("<label for=\"gc-mail\">Global concurrency</label>"));

    let csrf = csrf_of(&c);
    let a = t
        .post(
            "/queues/mail/concurrency",
            Some(&c),
            &[
                ("csrf", &csrf),
                ("global_concurrency", "3"),
                ("back", "/queues"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), "/queues");
    let limits = t.kyu.queue_limits().await.unwrap();
    assert_eq!(limits.len(), 1);
    assert_eq!(limits[0].limits.global_concurrency, Some(3));
    assert_eq!(
        limits[0].limits.rate.map(|r| r.to_string()).as_deref(),
        Some("20/1s"),
        "the rate stays"
    );
    let flash = a
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("kyu_flash="))
        .unwrap();
    let both = format!("{c}; {}", flash.split(';').next().unwrap());
    let a = t.get("/queues", Some(&both)).await;
    assert!(
        a.body
            .contains("Queue mail: global_concurrency 3, rate 20/1s."),
        "{}",
        a.body
    );
    assert!(a.body.contains("0 of 3 running"), "{}", a.body);
    assert!(a.body.contains("value=\"3\""), "{}", a.body);

    for (bad, says) in [
        ("0", "0 is not accepted"),
        ("-2", "is not a whole number"),
        ("many", "is not a whole number"),
    ] {
        let a = t
            .post(
                "/queues/mail/concurrency",
                Some(&c),
                &[("csrf", &csrf), ("global_concurrency", bad)],
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.body);
        assert!(a.body.contains(says), "{bad}: {}", a.body);
    }
    assert_eq!(
        t.kyu.queue_limits().await.unwrap()[0]
            .limits
            .global_concurrency,
        Some(3),
        "nothing changed by a refused value"
    );
    // Empty lifts the limit.
    let a = t
        .post(
            "/queues/mail/concurrency",
            Some(&c),
            &[("csrf", &csrf), ("global_concurrency", "")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        t.kyu.queue_limits().await.unwrap()[0]
            .limits
            .global_concurrency,
        None
    );

    // A tenant cannot set another tenant's queue.
    let tenant = t
        .token("tenant", &[Scope::Operate, Scope::Read], &["other.*"])
        .await;
    let tc = t.login(&tenant).await;
    let a = t
        .post(
            "/queues/mail/concurrency",
            Some(&tc),
            &[("csrf", &csrf_of(&tc)), ("global_concurrency", "1")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(
        t.kyu.queue_limits().await.unwrap()[0]
            .limits
            .global_concurrency,
        None
    );
}

#[tokio::test]
async fn workers_page_lists_each_live_worker_its_queues_slots_and_held_jobs() {
    let t = T::new().await;
    // A worker whose names an attacker chose.
    t.kyu
        .store()
        .worker_seen(
            &kyu::WorkerInfo {
                id: "<script>alert('w')</script>".into(),
                queues: vec!["<b>q</b>".into()],
                kinds: Some(vec!["<i>k</i>".into()]),
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let job = t
        .kyu
        .enqueue_with(Held {}, |o| o.queue("tenant-a.hold"))
        .await
        .unwrap()
        .id;
    let worker = Worker::new(&t.kyu)
        .queue("tenant-a.hold", 2)
        .register::<Held>()
        .start();
    for _ in 0..300 {
        if t.kyu.job(job).await.unwrap().state == JobState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(t.kyu.job(job).await.unwrap().state, JobState::Running);
    // And a worker over HTTP, registered with this server.
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let req = Request::post("/v1/workers")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"name": "<em>remote</em>", "queues": ["tenant-a.hold"], "kinds": ["hold"], "capacity": 4})
                .to_string(),
        ))
        .unwrap();
    let a = t.send(req).await;
    assert!(a.status.is_success(), "{}", a.body);
    let remote: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let remote = remote["worker_id"].as_str().unwrap().to_string();

    let c = t.login(&admin).await;
    let a = t.get("/workers", Some(&c)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let row = |id: &str| {
        let html_id = id.replace('<', "&lt;").replace('>', "&gt;");
        let start = a
            .body
            .find(&format!("data-worker=\"{html_id}\""))
            .unwrap_or_else(|| panic!("a row for {id}: {}", a.body));
        let end = a.body[start..].find("</tr>").unwrap();
        a.body[start..start + end].to_string()
    };
    let local = row(worker.id());
    assert!(local.contains("tenant-a.hold"), "{local}");
    assert!(
        local.contains(&format!("<a href=\"/jobs/{job}\">job {job}</a>")),
        "{local}"
    );
    assert!(
        local.contains("<td class=\"num\">1</td>"),
        "one slot in use: {local}"
    );
    assert!(local.contains("process"), "{local}");
    let http = row(&remote);
    assert!(http.contains("HTTP, registered here"), "{http}");
    assert!(http.contains("0 of 4"), "{http}");
    for raw in ["<script>alert", "<b>q", "<i>k", "<em>remote"] {
        assert!(!a.body.contains(raw), "raw {raw}: {}", a.body);
    }
    assert!(a.body.contains("&lt;script&gt;alert('w')&lt;/script&gt;"));
    assert!(a.body.contains("&lt;b&gt;q&lt;/b&gt;"));

    // A tenant sees the workers of its queues only.
    let tenant = t.token("tenant-a", &[Scope::Read], &["tenant-a.*"]).await;
    let tc = t.login(&tenant).await;
    let a = t.get("/workers", Some(&tc)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains(worker.id()), "{}", a.body);
    assert!(!a.body.contains("alert('w')"), "{}", a.body);

    HELD_RELEASE.notify_waiters();
    worker.shutdown().await;
}

#[tokio::test]
async fn batches_pages_show_each_batchs_counts_and_refuse_tokens_limited_to_queues() {
    let t = T::new().await;
    let batch = t
        .kyu
        .batch()
        .on_complete(kyu::NewJob::new("<img src=x onerror=alert(1)>", json!({})))
        .create()
        .await
        .unwrap();
    let jobs = batch
        .add(vec![
            kyu::NewJob::new("k", json!({})),
            kyu::NewJob::new("k", json!({})),
            kyu::NewJob::new("k", json!({})),
        ])
        .await
        .unwrap();
    t.kyu.cancel(&[jobs[0].id]).await.unwrap();
    batch.seal().await.unwrap();
    let open = t.kyu.batch().create().await.unwrap();
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;

    let a = t.get("/batches", Some(&c)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains(&format!("data-batch=\"{}\"", batch.id())));
    assert!(a.body.contains(&format!("data-batch=\"{}\"", open.id())));
    assert!(
        a.body.contains(">sealed<") && a.body.contains(">open<"),
        "{}",
        a.body
    );
    assert!(!a.body.contains("<img src=x"), "{}", a.body);
    assert!(a.body.contains("&lt;img src=x onerror=alert(1)&gt;"));

    let status = t.kyu.batch_status(batch.id()).await.unwrap();
    let a = t.get(&format!("/batches/{}", batch.id()), Some(&c)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    for (name, n) in [
        ("total", 3),
        ("pending", 2),
        ("running", 0),
        ("succeeded", 0),
        ("failed", 0),
        ("cancelled", 1),
    ] {
        assert!(
            a.body.contains(&format!("data-count=\"{name}\">{n}</td>")),
            "{name} {n}: {}",
            a.body
        );
    }
    assert_eq!((status.pending, status.cancelled), (2, 1));
    assert!(!a.body.contains("<img src=x"), "{}", a.body);

    let a = t.get("/batches/999", Some(&c)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = t.get("/batches/nope", Some(&c)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body.contains("accepted: a positive integer"),
        "{}",
        a.body
    );

    // As the API's batch routes: refused to a token limited to queues, and
    // not in its navigation.
    let tenant = t.token("tenant", &Scope::ALL, &["tenant-a.*"]).await;
    let tc = t.login(&tenant).await;
    for p in ["/batches".to_string(), format!("/batches/{}", batch.id())] {
        let a = t.get(&p, Some(&tc)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{p}");
        assert!(a.body.contains("limited to queues"), "{p}: {}", a.body);
    }
    let a = t.get("/", Some(&tc)).await;
    assert!(!a.body.contains("href=\"/batches\""));
    let a = t.get("/", Some(&c)).await;
    assert!(a.body.contains("href=\"/batches\""));
}

/// A search inside args reads one window of 20,000 jobs per view: the page
/// shows the matches found there and says which ids it searched, with a
/// link on to older jobs; following it through 50,000 jobs with a match
/// every 7,000th shows every match once, newest first.
#[tokio::test]
async fn jobs_page_args_search_reads_one_window_and_links_on_to_older_jobs() {
    let t = T::new().await;
    let mut ids = Vec::new();
    for chunk in (0..50_000).collect::<Vec<usize>>().chunks(1000) {
        let jobs: Vec<kyu::NewJob> = chunk
            .iter()
            .map(|&i| kyu::NewJob::new("k", json!({"i": i, "hit": i % 7_000 == 123})))
            .collect();
        ids.extend(
            t.kyu
                .enqueue_many(jobs)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id),
        );
    }
    let want: Vec<i64> = (0..ids.len())
        .rev()
        .filter(|i| i % 7_000 == 123)
        .map(|i| ids[i])
        .collect();
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;
    let newest = *ids.last().unwrap();
    let grouped = |n: i64| {
        let d = n.to_string();
        let mut out = String::new();
        for (i, ch) in d.chars().enumerate() {
            if i > 0 && (d.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        out
    };
    let mut got = Vec::new();
    let mut href = "/jobs?args=args.hit%3Dtrue".to_string();
    for view in 0.. {
        let a = t.get(&href, Some(&c)).await;
        assert_eq!(a.status, StatusCode::OK, "{href}: {}", a.body);
        let body = &a.body;
        for part in body.split("data-job=\"").skip(1) {
            got.push(part[..part.find('"').unwrap()].parse::<i64>().unwrap());
        }
        if view == 2 {
            // The last window reached the oldest job: no line, no link.
            assert!(!body.contains("Searched jobs"), "{body}");
            assert!(!body.contains("rel=\"next\""), "{body}");
            break;
        }
        let (top, bottom) = (newest - view * 20_000, newest - view * 20_000 - 19_999);
        let line = format!(
            "Searched jobs {} → {}; no more matches there. ",
            grouped(top),
            grouped(bottom)
        );
        assert!(body.contains(&line), "{line}: {body}");
        let next = body.split("rel=\"next\"").next().unwrap();
        let link = &next[next.rfind("href=\"").unwrap() + 6..];
        href = link[..link.find('"').unwrap()].replace("&amp;", "&");
        assert!(href.contains("args=args.hit%3Dtrue"), "{href}");
        assert!(href.contains(&format!("before={bottom}")), "{href}");
        assert!(body.contains("Search older →"), "{body}");
    }
    assert_eq!(got, want);
    // A window without a match says so, and links on all the same.
    let a = t.get("/jobs?args=args.nope%3D1", Some(&c)).await;
    assert!(
        a.body.contains(&format!(
            "Searched jobs {} → {}; no match there. ",
            grouped(newest),
            grouped(newest - 19_999)
        )),
        "{}",
        a.body
    );
    assert!(!a.body.contains("No job matches."), "{}", a.body);
    // The bulk action's count reads two windows at most, and says so.
    let a = t
        .get("/jobs/bulk?action=retry&args=args.hit%3Dtrue", Some(&c))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body.contains("<strong class=\"count\">6+</strong>"),
        "{}",
        a.body
    );
    assert!(
        a.body.contains(&format!(
            "these were found in jobs down to id {}; older matching jobs are acted on too.",
            grouped(newest - 39_999)
        )),
        "{}",
        a.body
    );
}

/// The rows of the Live page: (event id, the row's HTML).
fn live_rows(body: &str) -> Vec<(i64, String)> {
    body.split("<tr data-event=\"")
        .skip(1)
        .map(|r| {
            let id = r[..r.find('"').unwrap()].parse().unwrap();
            (id, r[..r.find("</tr>").unwrap()].to_string())
        })
        .collect()
}

async fn live_page_scenario(t: T) {
    let b = t.failed_job("tenant-b.mail", "b-secret-note").await;
    let a = t.failed_job("tenant-a.mail", "ours").await;
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;

    let page = t.get("/live", Some(&c)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("href=\"/live\" aria-current=\"page\""));
    let rows = live_rows(&page.body);
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(ids, sorted, "newest first");
    // Both jobs' failures, with their facts; the error text inert.
    let failed: Vec<&String> = rows
        .iter()
        .map(|r| &r.1)
        .filter(|r| r.contains(">failed<") && r.contains("boom"))
        .collect();
    assert_eq!(failed.len(), 2, "{}", page.body);
    assert!(failed
        .iter()
        .any(|r| r.contains(&format!("href=\"/jobs/{a}\""))));
    assert!(failed
        .iter()
        .all(|r| r.contains("ran ") && r.contains(" ms")));
    assert!(page
        .body
        .contains("&lt;script&gt;alert('err')&lt;/script&gt; ours"));
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(page.body.contains(" UTC</time>"), "times with their zone");

    // Filters: queue, type, job, kind.
    let page = t
        .get("/live?queue=tenant-a.mail&type=failed", Some(&c))
        .await;
    let rows = live_rows(&page.body);
    assert_eq!(rows.len(), 1, "{}", page.body);
    assert!(rows[0].1.contains("ours"));
    let page = t.get(&format!("/live?job={b}"), Some(&c)).await;
    let rows = live_rows(&page.body);
    assert!(rows.len() >= 3, "enqueued, started, failed: {}", page.body);
    assert!(rows.iter().all(|r| r.1.contains(&format!("/jobs/{b}\""))));
    let page = t.get("/live?kind=nothing-of-that-kind", Some(&c)).await;
    assert!(live_rows(&page.body).is_empty());
    let page = t.get("/live?type=nonsense", Some(&c)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("accepted:"), "{}", page.body);
    // What the script fetches: only events after the one given.
    let newest = live_rows(&t.get("/live", Some(&c)).await.body)[0].0;
    let after = t.get(&format!("/live?after={newest}"), Some(&c)).await;
    assert!(live_rows(&after.body).is_empty(), "{}", after.body);
    let after = t
        .get(&format!("/live?after={}", newest - 1), Some(&c))
        .await;
    assert_eq!(live_rows(&after.body).len(), 1);
    // Older: the cursor pages below the event given.
    let older = t.get(&format!("/live?before={newest}"), Some(&c)).await;
    let older_ids: Vec<i64> = live_rows(&older.body).iter().map(|r| r.0).collect();
    assert!(!older_ids.is_empty() && older_ids.iter().all(|id| *id < newest));

    // A tenant sees its queues' events only, and no worker events.
    let tenant = t.token("tenant-a", &[Scope::Read], &["tenant-a.*"]).await;
    let c = t.login(&tenant).await;
    let page = t.get("/live", Some(&c)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!live_rows(&page.body).is_empty());
    assert!(!page.body.contains("tenant-b"), "{}", page.body);
    assert!(!page.body.contains("b-secret-note"));
    let rows = live_rows(&page.body);
    assert!(
        rows.iter().all(|r| r.1.contains("<td>tenant-a.mail</td>")),
        "only tenant a's queue, no worker events: {}",
        page.body
    );
    let page = t.get(&format!("/live?job={b}"), Some(&c)).await;
    assert!(live_rows(&page.body).is_empty(), "{}", page.body);
    let page = t.get("/live?queue=tenant-b.mail", Some(&c)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn live_page_shows_events_with_facts_filters_and_keeps_tenants_apart() {
    live_page_scenario(T::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_live_page_shows_events_with_facts_filters_and_keeps_tenants_apart() {
    let clock = kyu::ManualClock::new(chrono::Utc::now());
    if let Some(t) = T::postgres_with_clock(clock, "live").await {
        live_page_scenario(t).await;
    }
}

#[tokio::test]
async fn schedules_page_marks_next_fires_for_the_local_time_script() {
    let t = T::new().await;
    t.kyu
        .schedule(kyu::ScheduleSpec::new(
            "hourly",
            kyu::CronExpr::parse("0 * * * *").unwrap(),
            kyu::JobTemplate::new("report", json!({})),
        ))
        .await
        .unwrap();
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;
    let a = t.get("/schedules", Some(&c)).await;
    assert_eq!(a.body.matches("data-local").count(), 3, "{}", a.body);
    let js = dashboard::assets::FILES
        .iter()
        .find(|f| f.0 == "dashboard.js")
        .unwrap();
    assert!(String::from_utf8_lossy(js.2).contains("time[data-local]"));
}

#[tokio::test]
async fn schedules_page_lists_the_last_five_fires_with_their_jobs_states() {
    let clock = kyu::ManualClock::new("2030-01-01T00:00:30Z".parse().unwrap());
    let t = T::with_clock(clock.clone()).await;
    t.kyu
        .schedule({
            let mut s = kyu::ScheduleSpec::new(
                "minutely",
                kyu::CronExpr::parse("* * * * *").unwrap(),
                kyu::JobTemplate::new("report", json!({})),
            );
            // Nothing runs the jobs here: every fire enqueues one anyway.
            s.overlap = kyu::OverlapPolicy::Allow;
            s
        })
        .await
        .unwrap();
    let scheduler = kyu::Scheduler::new(&t.kyu);
    for _ in 0..7 {
        clock.advance(Duration::from_secs(60));
        scheduler.tick().await.unwrap();
    }
    let jobs = t
        .kyu
        .list(&kyu::store::JobFilter::default())
        .await
        .unwrap()
        .jobs;
    assert_eq!(jobs.len(), 7, "one job a minute");
    // The newest fire's job cancelled: its state shows.
    t.kyu.cancel(&[jobs[0].id]).await.unwrap();
    let admin = t.token("admin", &[Scope::Admin], &[]).await;
    let c = t.login(&admin).await;
    let a = t.get("/schedules", Some(&c)).await;
    let fires = a.body.split("<ul class=\"plain fires\">").nth(1).unwrap();
    let fires = &fires[..fires.find("</ul>").unwrap()];
    let links: Vec<String> = jobs[..5]
        .iter()
        .map(|j| format!("href=\"/jobs/{}\"", j.id))
        .collect();
    let at: Vec<usize> = links
        .iter()
        .map(|l| fires.find(l.as_str()).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "newest first: {fires}");
    assert!(!fires.contains(&format!("href=\"/jobs/{}\"", jobs[5].id)));
    assert_eq!(fires.matches("<li>").count(), 5, "{fires}");
    assert!(fires.contains("state cancelled"), "{fires}");
    assert_eq!(fires.matches("state available").count(), 4, "{fires}");
    assert!(fires.contains("2030-01-01 00:07 UTC"), "{fires}");
}
