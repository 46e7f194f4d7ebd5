//! Every route of the table, through the real router, with malformed and
//! random requests from a seeded generator: random methods, paths (the
//! route's placeholders filled with junk), query strings, headers and
//! bodies (broken JSON, deep nesting, huge numbers, wrong types, random
//! bytes, mutations of a valid body). The promise: no response is 5xx and
//! nothing panics; every error has the API's JSON shape.
//!
//! `KYU_FUZZ_SEED` and `KYU_FUZZ_ITERATIONS` (per route; default 120)
//! change the run; a failure prints the seed and the request to replay.

mod common;

use axum::body::Body;
use axum::http::{Method, Request};
use common::T;
use http_body_util::BodyExt;
use kyu::Scope;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tower::ServiceExt;

const JUNK: &[&str] = &[
    "", " ", "0", "-1", "1", "42", "99999999999999999999", "1e309", "-0", "NaN", "null", "true",
    "%00", "%ff", "%2F", "..", "../..", "a b", "\u{0}", "\u{202e}", "☃", "tenant-b.mail",
    "default", "s", "nightly", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "{}", "[]", "\"", "'", "\\", "?", "#",
    "&", "=", ";", "%", "%%", "30s", "1h", "-5s", "0s", "soon", "2030-01-01T00:00:00Z",
    "2030-13-45T99:99:99Z", "failed", "scheduled", "enqueued,failed", "args.user", "args.a.b",
];

const PARAMS: &[&str] = &[
    "wait",
    "state",
    "queue",
    "kind",
    "tag",
    "cursor",
    "limit",
    "count",
    "since",
    "job",
    "types",
    "created_after",
    "created_before",
    "args.user",
    "args.a.b",
    "args.",
    "args..x",
    "args",
    "bogus",
    "",
    "=",
];

const HEADERS: &[&str] = &[
    "idempotency-key",
    "last-event-id",
    "content-type",
    "content-length",
    "accept",
    "x-junk",
];

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.gen_range(0..from.len())]
}

/// Percent-encodes what a URI may not hold as is.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:,*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.gen_range(0..if depth > 3 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => json!(rng.gen::<bool>()),
        2 => json!(rng.gen::<i64>()),
        3 => json!(rng.gen::<f64>() * 1e300),
        4 => json!(pick(rng, JUNK)),
        5 => json!(u64::MAX),
        6 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.gen_range(0..5) {
                let k = if rng.gen_bool(0.7) {
                    pick(rng, FIELDS)
                } else {
                    pick(rng, JUNK)
                };
                m.insert(k.to_string(), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// Field names of the API's bodies, so random bodies get past the first check.
const FIELDS: &[&str] = &[
    "kind",
    "args",
    "queue",
    "priority",
    "run_at",
    "delay",
    "max_attempts",
    "retry",
    "type",
    "initial",
    "cap",
    "timeout",
    "unique_key",
    "unique_for",
    "tags",
    "jobs",
    "ids",
    "action",
    "filter",
    "state",
    "snapshot",
    "max_id",
    "at",
    "dry_run",
    "cron",
    "zone",
    "job",
    "overlap",
    "misfire",
    "enabled",
    "created_after",
    "created_before",
    "tag",
];

/// A valid body for the route, to mutate.
fn valid_body(method: &Method, path: &str) -> Value {
    match (method.as_str(), path) {
        ("POST", "/v1/jobs") => {
            json!({"kind": "k", "args": {"user": 1}, "queue": "q", "delay": "1s", "tags": ["t"]})
        }
        ("POST", "/v1/jobs/batch") => {
            json!({"jobs": [{"kind": "k"}, {"kind": "k", "queue": "q2"}]})
        }
        ("POST", "/v1/jobs/bulk") => {
            json!({"action": "retry", "filter": {"state": "failed", "args": ["args.user=1"]}, "dry_run": true})
        }
        ("PUT", _) => {
            json!({"cron": "0 3 * * *", "zone": "UTC", "job": {"kind": "k", "queue": "q"}})
        }
        ("PATCH", _) => json!({"cron": "*/5 * * * *", "enabled": false}),
        _ => json!({"ids": [1, 2, 3]}),
    }
}

fn mutate(rng: &mut StdRng, v: &mut Value) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.gen_range(0..keys.len())];
            match rng.gen_range(0..4) {
                0 => {
                    m.remove(k);
                }
                1 => {
                    m.insert(k.clone(), random_value(rng, 2));
                }
                2 => {
                    m.insert(pick(rng, FIELDS).to_string(), random_value(rng, 2));
                }
                _ => mutate(rng, m.get_mut(k).unwrap()),
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.gen_range(0..a.len());
            mutate(rng, &mut a[i]);
        }
        other => *other = random_value(rng, 2),
    }
}

fn random_body(rng: &mut StdRng, method: &Method, path: &str) -> Vec<u8> {
    match rng.gen_range(0..8) {
        0 => Vec::new(),
        1 => (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
        2 => {
            let depth = rng.gen_range(1..5000);
            format!(
                "{}{}",
                "[".repeat(depth),
                "]".repeat(rng.gen_range(0..depth))
            )
            .into_bytes()
        }
        3 => {
            let mut text = valid_body(method, path).to_string().into_bytes();
            if !text.is_empty() {
                let cut = rng.gen_range(0..text.len());
                text.truncate(cut);
            }
            text
        }
        4 => random_value(rng, 0).to_string().into_bytes(),
        _ => {
            let mut v = valid_body(method, path);
            for _ in 0..rng.gen_range(1..4) {
                mutate(rng, &mut v);
            }
            v.to_string().into_bytes()
        }
    }
}

fn random_query(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.2) {
        return String::new();
    }
    let mut parts = Vec::new();
    for _ in 0..rng.gen_range(1..5) {
        let k = pick(rng, PARAMS);
        let v = pick(rng, JUNK);
        parts.push(match rng.gen_range(0..5) {
            0 => k.to_string(),
            // Raw, as far as a URI may hold it (quotes, braces, slashes…).
            1 => format!(
                "{}={}",
                enc(k),
                v.chars()
                    .filter(|c| c.is_ascii_graphic() && !"#\"{}|\\^`<>[]".contains(*c))
                    .collect::<String>()
            ),
            _ => format!("{}={}", enc(k), enc(v)),
        });
    }
    format!("?{}", parts.join(if rng.gen_bool(0.9) { "&" } else { ";" }))
}

fn random_request(
    rng: &mut StdRng,
    r: &kyu_server::api::RouteInfo,
    tokens: &[String],
) -> Request<Body> {
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ];
    let method = if rng.gen_bool(0.85) {
        r.method.clone()
    } else {
        methods[rng.gen_range(0..methods.len())].clone()
    };
    let mut path = String::new();
    for seg in r.path.split('/').skip(1) {
        path.push('/');
        if seg.starts_with('{') {
            if rng.gen_bool(0.5) {
                path.push_str(&rng.gen_range(0..6).to_string());
            } else {
                path.push_str(&enc(pick(rng, JUNK)));
            }
        } else {
            path.push_str(seg);
        }
    }
    if rng.gen_bool(0.05) {
        path.push_str("/extra");
    }
    path.push_str(&random_query(rng));
    let mut req = Request::builder().method(method.clone()).uri(&path);
    match rng.gen_range(0..10) {
        0 => {}
        1 => req = req.header("authorization", "Bearer "),
        2 => {
            req = req.header(
                "authorization",
                format!(
                    "Basic {}",
                    pick(rng, JUNK).replace(['\u{0}', '\u{202e}', '☃'], "")
                ),
            )
        }
        _ => {
            req = req.header(
                "authorization",
                format!("Bearer {}", tokens[rng.gen_range(0..tokens.len())]),
            )
        }
    }
    for _ in 0..rng.gen_range(0..3) {
        let name = pick(rng, HEADERS);
        if name == "content-length" {
            continue; // hyper's concern, not the router's
        }
        let value: String = pick(rng, JUNK)
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .collect();
        req = req.header(name, value);
    }
    let body = random_body(rng, &method, r.path);
    req.body(Body::from(body)).unwrap()
}

#[tokio::test]
async fn random_and_malformed_requests_to_every_route_never_get_a_5xx() {
    let seed: u64 = std::env::var("KYU_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b79_7521);
    let iterations: usize = std::env::var("KYU_FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let t = T::with(kyu_server::Options {
        body_limit: 64 * 1024,
        max_wait: std::time::Duration::from_millis(20),
        sse_keep_alive: std::time::Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let tokens = vec![
        t.token("admin", &[Scope::Admin], &[]).await,
        t.token("tenant", &Scope::ALL, &["tenant-a.*"]).await,
        t.token("reader", &[Scope::Read], &[]).await,
    ];
    let mut ids = Vec::new();
    for q in ["q", "tenant-a.mail", "tenant-b.mail"] {
        ids.push(
            t.add(kyu::NewJob::new("k", json!({"user": 1, "a": {"b": "x"}})).queue(q))
                .await,
        );
    }
    // A command job's token too: of a running job (ids 1 to 5 are what the
    // random paths aim at, so it meets its own job as well as others).
    let running = t
        .kyu
        .store()
        .claim_job(ids[0], "w", std::time::Duration::from_secs(600))
        .await
        .unwrap()
        .expect("claimable");
    let mut tokens = tokens;
    tokens.push(
        t.kyu
            .job_token(ids[0], running.lease().attempt)
            .await
            .unwrap(),
    );
    t.kyu
        .schedule(kyu::ScheduleSpec::new(
            "s",
            "0 3 * * *",
            kyu::JobTemplate::new("k", json!({})),
        ))
        .await
        .unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let routes = kyu_server::api::routes();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for r in &routes {
        for i in 0..iterations {
            let req = random_request(&mut rng, r, &tokens);
            let head = req.method() == Method::HEAD;
            let shown = format!("{} {} {:?}", req.method(), req.uri(), req.headers());
            let resp = t.app.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            *statuses.entry(status.as_u16()).or_insert(0) += 1;
            assert!(
                status.as_u16() < 500,
                "seed {seed}, route {} {}, request {i}: {status} for {shown}",
                r.method,
                r.path
            );
            let is_stream = resp
                .headers()
                .get("content-type")
                .is_some_and(|c| c == "text/event-stream");
            if is_stream {
                continue; // an open stream: dropping it closes it
            }
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            if !status.is_success() && status.as_u16() != 405 && !head {
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                assert!(
                    body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                    "seed {seed}: {status} without the error shape for {shown}: {}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
    }
    eprintln!(
        "{} routes x {iterations} random requests (seed {seed}): statuses {statuses:?}",
        routes.len()
    );
}
