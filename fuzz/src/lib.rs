//! The bodies of kyu's fuzz targets, shared by the cargo-fuzz targets
//! (`fuzz_targets/`, libFuzzer on nightly) and the stable runner
//! (`src/bin/stable.rs`). Each takes arbitrary bytes and panics only when a
//! promise is broken: bad input must be refused with an error, never a panic,
//! and whatever is accepted must behave.
//!
//! `api_request` sends the HTTP API's router (kyu-server) requests decoded
//! from the bytes: every route of its table, any method, path, query,
//! headers and body.

use std::path::Path;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use kyu_core::cron::{CronExpr, MAX_SEARCH_STEPS};
use kyu_core::{Limits, NewJob, Store};

// The kyu.toml loader lives in the `kyu` binary's crate, which has no
// library; its two source files are compiled here as they are there.
#[allow(dead_code)]
#[path = "../../crates/kyu-cli/src/config.rs"]
pub mod config;
#[allow(dead_code)]
#[path = "../../crates/kyu-cli/src/parse.rs"]
mod parse;

/// The cron parser and next-fire computation, in any time zone.
///
/// Input: bytes 0..2 pick the zone (of every IANA zone), bytes 2..10 the
/// instant to search from (any second chrono can represent), the rest is the
/// expression. An expression
/// that parses must: display as a string that parses to the same thing, find
/// each next fire time within [`MAX_SEARCH_STEPS`], and give fire times that
/// strictly increase.
pub fn cron(data: &[u8]) {
    if data.len() < 10 {
        return;
    }
    let zones = chrono_tz::TZ_VARIANTS;
    let tz = zones[u16::from_le_bytes([data[0], data[1]]) as usize % zones.len()];
    let secs = i64::from_le_bytes(data[2..10].try_into().unwrap());
    // Half of the inputs search from a recent instant, where schedules live.
    let secs = if secs % 2 == 0 {
        secs.rem_euclid(200 * 365 * 86_400) + 946_684_800
    } else {
        secs
    };
    let Some(after) = DateTime::<Utc>::from_timestamp(secs, 0) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(&data[10..]) else {
        return;
    };
    let Ok(expr) = CronExpr::parse(text) else {
        return;
    };
    let again = CronExpr::parse(&expr.to_string()).expect("the displayed form parses");
    assert_eq!(again, expr, "display round trip of {text:?}");
    let mut last = after;
    for _ in 0..4 {
        let (next, steps) = expr.next_after_with_steps(last, tz);
        assert!(
            steps <= MAX_SEARCH_STEPS,
            "{text:?} in {tz} after {last}: {steps} steps (bound {MAX_SEARCH_STEPS})"
        );
        let Some(next) = next else { return };
        assert!(next > last, "{text:?} in {tz}: {next} is not after {last}");
        last = next;
    }
}

/// The kyu.toml loader: any text is either a config or an error that names
/// the file; a config that loads gives schedule specs that validate and
/// command specs for each kind.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/kyu.toml");
    match config::Config::parse(path, text) {
        Ok(c) => {
            for s in &c.schedules {
                c.schedule_spec(s)
                    .expect("a loaded config's schedules are valid");
            }
            for name in c.jobs.keys() {
                assert!(c.command_spec(name, Path::new("/fuzz")).is_some());
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("/fuzz/kyu.toml"), "{message}");
        }
    }
}

/// Database URL parsing: SQLite's forms and parameters, PostgreSQL's URL
/// (TLS parameters, kyu's `schema`, `migrate` and timeout parameters) and
/// the password redaction used in every message.
pub fn database_url(data: &[u8]) {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((base, _)) = kyu_sqlite::split_params(url) {
        let _ = kyu_sqlite::parse_location(base);
    }
    let redacted = kyu_postgres::redact_url(url);
    if let Err(e) = kyu_postgres::split_url(url) {
        // A refused URL's message shows it redacted, never its password
        // (as `user:password@`; the bare word may be in the hint's text).
        let message = e.to_string();
        if let Some(password) = password_of(url) {
            let secret = format!(":{password}@");
            // Skipped when the same text is also elsewhere in the URL (in
            // another parameter's value, which messages may quote).
            if !password.is_empty()
                && !redacted.contains(&secret)
                && url.matches(&secret).count() == 1
            {
                assert!(!message.contains(&secret), "{message}");
            }
        }
    }
}

/// The password of `scheme://user:password@host…`, if the URL has one.
fn password_of(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, p)| p)
}

/// The job validation path: a `NewJob` from arbitrary JSON is either refused
/// by validation, or stored by SQLite and read back as it was sent.
pub fn new_job(data: &[u8]) {
    let Ok(job) = serde_json::from_slice::<NewJob>(data) else {
        return;
    };
    let limits = Limits::default();
    if job.validate(&limits).is_err() {
        return;
    }
    // Every retry delay the job could ever wait is computable.
    for attempt in 1..=job.max_attempts.min(64) {
        let _ = job.retry.delay(attempt);
    }
    let (rt, store) = sqlite();
    rt.block_on(async {
        let enqueued = store
            .enqueue(vec![job.clone()])
            .await
            .unwrap_or_else(|e| panic!("a valid job was refused: {e}\n{job:?}"));
        if enqueued[0].duplicate {
            return;
        }
        let stored = store
            .get(enqueued[0].id)
            .await
            .expect("read back")
            .expect("the job exists");
        assert_eq!(stored.kind, job.kind);
        assert_eq!(stored.queue, job.queue);
        assert_eq!(stored.args, job.args);
        assert_eq!(stored.priority, job.priority);
        assert_eq!(stored.max_attempts, job.max_attempts);
        assert_eq!(stored.retry, job.retry);
        assert_eq!(stored.unique_key, job.unique_key);
        assert_eq!(stored.tags, job.tags);
        if let Some(at) = job.run_at {
            assert_eq!(stored.run_at.timestamp_millis(), at.timestamp_millis());
        }
    });
}

/// One in-memory SQLite store shared by every input of a run.
fn sqlite() -> &'static (tokio::runtime::Runtime, kyu_sqlite::SqliteStore) {
    static STORE: OnceLock<(tokio::runtime::Runtime, kyu_sqlite::SqliteStore)> = OnceLock::new();
    STORE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = rt.block_on(async {
            kyu_sqlite::SqliteStore::open("sqlite::memory:", Default::default())
                .expect("in-memory store")
        });
        (rt, store)
    })
}

/// A fuzz target: arbitrary bytes in, a panic only for a broken promise.
pub type Target = fn(&[u8]);

/// The targets by name, for the stable runner.
pub const TARGETS: &[(&str, Target)] = &[
    ("cron", cron),
    ("config_toml", config_toml),
    ("database_url", database_url),
    ("new_job", new_job),
    ("api_request", api_request),
];

/// The router of one in-memory store, with tokens, shared by every input.
struct Api {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    routes: Vec<kyu_server::api::RouteInfo>,
    tokens: Vec<String>,
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (app, tokens) = rt.block_on(async {
            let kyu = kyu::Kyu::connect("sqlite::memory:").await.expect("in-memory store");
            let mut tokens = Vec::new();
            for (name, scopes, queues) in [
                ("admin", vec![kyu::Scope::Admin], vec![]),
                ("tenant", kyu::Scope::ALL.to_vec(), vec!["tenant-a.*".parse().expect("a pattern")]),
            ] {
                let t = kyu
                    .create_token(kyu::tokens::TokenSpec {
                        name: name.into(),
                        scopes,
                        queues,
                        expires_in: None,
                    })
                    .await
                    .expect("a token");
                tokens.push(t.secret);
            }
            for q in ["q", "tenant-a.x", "tenant-b.x"] {
                kyu.enqueue(kyu::NewJob::new("k", serde_json::json!({"user": 1})).queue(q))
                    .await
                    .expect("a job");
            }
            let options = kyu_server::Options {
                body_limit: 64 * 1024,
                max_wait: std::time::Duration::from_millis(5),
                ..Default::default()
            };
            (kyu_server::router(kyu, options), tokens)
        });
        Api {
            rt,
            app,
            routes: kyu_server::api::routes(),
            tokens,
        }
    })
}

/// Percent-encodes every byte a URI may not hold as is.
fn uri_text(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The HTTP API's request decoding, through the real router (every
/// extractor, the authorization middleware, every handler).
///
/// Input: byte 0 picks a route of the table, byte 1 the method (mostly the
/// route's), byte 2 the token (admin, tenant, none, malformed) and headers;
/// the rest, split at 0xFF bytes, is the path parameters' text, the query
/// string, a header value, and the body. Promise: no answer is 5xx and
/// nothing panics; an error answer has the API's JSON shape.
pub fn api_request(data: &[u8]) {
    use tower::ServiceExt;
    if data.len() < 3 {
        return;
    }
    let api = api();
    let route = &api.routes[data[0] as usize % api.routes.len()];
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    let method = if data[1] < 200 {
        route.method.as_str()
    } else {
        methods[data[1] as usize % methods.len()]
    };
    let mut parts = data[3..].splitn(4, |b| *b == 0xFF);
    let param = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();
    let header = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let mut path = String::new();
    for seg in route.path.split('/').skip(1) {
        path.push('/');
        if seg.starts_with('{') {
            path.push_str(&uri_text(param, b"-._~"));
        } else {
            path.push_str(seg);
        }
    }
    if !query.is_empty() {
        path.push('?');
        path.push_str(&uri_text(query, b"-._~=&,:"));
    }
    let mut req = axum::http::Request::builder().method(method).uri(&path);
    match data[2] % 4 {
        0 => req = req.header("authorization", format!("Bearer {}", api.tokens[0])),
        1 => req = req.header("authorization", format!("Bearer {}", api.tokens[1])),
        2 => {}
        _ => {
            if let Ok(v) = axum::http::HeaderValue::from_bytes(header) {
                req = req.header("authorization", v);
            }
        }
    }
    if let Ok(v) = axum::http::HeaderValue::from_bytes(header) {
        let name = ["idempotency-key", "last-event-id", "content-type", "accept"][(data[2] as usize / 4) % 4];
        req = req.header(name, v);
    }
    let Ok(req) = req.body(axum::body::Body::from(body)) else {
        return;
    };
    let shown = format!("{method} {path}");
    api.rt.block_on(async {
        let resp = api.app.clone().oneshot(req).await.expect("the router answers");
        let status = resp.status();
        assert!(status.as_u16() < 500, "{status} for {shown}");
        let stream = resp
            .headers()
            .get("content-type")
            .is_some_and(|c| c == "text/event-stream");
        if stream || method == "HEAD" || status.is_success() || status.as_u16() == 405 {
            return;
        }
        use http_body_util::BodyExt;
        let bytes = resp.into_body().collect().await.expect("a body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert!(
            v["error"]["code"].is_string(),
            "{status} without the error shape for {shown}: {}",
            String::from_utf8_lossy(&bytes)
        );
    });
}
