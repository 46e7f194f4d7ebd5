//! `GET /v1/events` through the real router: replay and resume with
//! `Last-Event-ID` (nothing missed, nothing twice), filters, the gap
//! marker, keep-alive comments, the per-token cap on open streams, and a
//! tenant token that sees only its queues' events.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kyu::tokens::TokenSpec;
use kyu::{Kyu, Scope};
use serde_json::{json, Value};
use tower::ServiceExt;

struct T {
    kyu: Kyu,
    app: axum::Router,
    _dir: tempfile::TempDir,
}

/// One SSE block: its `event`, `id`, `data`, or a comment.
#[derive(Debug, Clone, Default, PartialEq)]
struct Msg {
    event: Option<String>,
    id: Option<String>,
    data: String,
    comment: Option<String>,
}

impl Msg {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// An open stream, read block by block.
struct Stream {
    body: Body,
    buf: String,
}

impl Stream {
    /// The next block; panics if none comes within 10 s (a hung test).
    async fn next(&mut self) -> Msg {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut m = Msg::default();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        m.comment = Some(c.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        m.event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        m.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        m.data.push_str(v.trim_start());
                    }
                }
                return m;
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("a block within 10 s")
                .expect("the stream goes on")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// The next message that is not a keep-alive comment.
    async fn next_message(&mut self) -> Msg {
        loop {
            let m = self.next().await;
            if m.comment.is_none() {
                return m;
            }
        }
    }
}

impl T {
    async fn with(options: kyu_server::Options) -> T {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kyu.db", dir.path().display());
        let kyu = Kyu::connect(&url).await.unwrap();
        let app = kyu_server::router(kyu.clone(), options);
        T {
            kyu,
            app,
            _dir: dir,
        }
    }

    async fn new() -> T {
        T::with(kyu_server::Options::default()).await
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

    /// Opens `path` with `token` (and a `Last-Event-ID`): the status, and the
    /// stream if it is one, else the error body.
    async fn open(
        &self,
        path: &str,
        token: &str,
        last_id: Option<&str>,
    ) -> Result<Stream, (StatusCode, Value)> {
        let mut req = Request::get(path).header("authorization", format!("Bearer {token}"));
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        if status != StatusCode::OK {
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            return Err((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ));
        }
        assert_eq!(
            resp.headers()["content-type"],
            "text/event-stream",
            "an SSE stream"
        );
        Ok(Stream {
            body: resp.into_body(),
            buf: String::new(),
        })
    }

    async fn enqueue(&self, kind: &str, queue: &str) -> i64 {
        self.kyu
            .enqueue(kyu::NewJob::new(kind, json!({"secret": "args"})).queue(queue))
            .await
            .unwrap()
            .id
    }
}

#[tokio::test]
async fn replay_then_live_then_resume_with_last_event_id_misses_nothing_and_repeats_nothing() {
    let t = T::new().await;
    let reader = t.token("r", &[Scope::Read], &[]).await;
    let a = t.enqueue("k", "default").await;
    let b = t.enqueue("k", "default").await;
    let mut s = t.open("/v1/events?since=0", &reader, None).await.unwrap();
    let m1 = s.next_message().await;
    let m2 = s.next_message().await;
    assert_eq!(m1.json()["job_id"], a);
    assert_eq!(m2.json()["job_id"], b);
    assert_eq!(m1.json()["type"], "enqueued");
    assert_eq!(m1.event, None, "events are plain messages");
    assert_eq!(m1.id.as_deref(), Some(m1.json()["id"].to_string().as_str()));
    assert!(!m1.data.contains("secret"), "never args: {}", m1.data);
    // Live: written after the stream opened.
    let c = t.enqueue("k", "default").await;
    let m3 = s.next_message().await;
    assert_eq!(m3.json()["job_id"], c);
    // The client drops the connection after m2 was seen; c and d happen meanwhile.
    drop(s);
    let d = t.enqueue("k", "default").await;
    let mut s = t
        .open("/v1/events", &reader, Some(m2.id.as_deref().unwrap()))
        .await
        .unwrap();
    let r1 = s.next_message().await;
    let r2 = s.next_message().await;
    assert_eq!(
        (r1.json()["job_id"].clone(), r2.json()["job_id"].clone()),
        (json!(c), json!(d)),
        "resumed right after the last id seen: nothing missed, nothing twice"
    );
    // ?since= does the same; the header wins over it.
    let mut s = t
        .open(
            &format!("/v1/events?since={}", m1.id.as_deref().unwrap()),
            &reader,
            Some(m3.id.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(s.next_message().await.json()["job_id"], d);
    // Without a starting point: live only.
    let mut s = t.open("/v1/events", &reader, None).await.unwrap();
    let e = t.enqueue("k", "default").await;
    assert_eq!(s.next_message().await.json()["job_id"], e);
}

#[tokio::test]
async fn filters_by_queue_kind_job_and_types() {
    let t = T::new().await;
    let reader = t.token("r", &[Scope::Read], &[]).await;
    let _ = t.enqueue("k", "other").await;
    let x = t.enqueue("x", "mail").await;
    let y = t.enqueue("y", "mail").await;
    t.kyu.pause("mail").await.unwrap();
    t.kyu.cancel(&[y]).await.unwrap();
    let cases = [
        ("queue=mail&types=enqueued", vec![x, y]),
        ("kind=y", vec![y, y]),
        (&format!("job={x}") as &str, vec![x]),
        ("types=cancelled,enqueued&queue=mail", vec![x, y, y]),
    ];
    for (q, want) in cases {
        let mut s = t
            .open(&format!("/v1/events?since=0&{q}"), &reader, None)
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in &want {
            got.push(s.next_message().await.json()["job_id"].as_i64().unwrap());
        }
        assert_eq!(got, want, "{q}");
    }
    let mut s = t
        .open("/v1/events?since=0&types=queue_paused", &reader, None)
        .await
        .unwrap();
    let m = s.next_message().await.json();
    assert_eq!(
        (m["type"].as_str(), m["queue"].as_str()),
        (Some("queue_paused"), Some("mail"))
    );
}

#[tokio::test]
async fn events_pruned_before_they_were_read_come_as_a_gap_message() {
    let t = T::new().await;
    let reader = t.token("r", &[Scope::Read], &[]).await;
    t.enqueue("k", "default").await;
    let mut s = t.open("/v1/events?since=0", &reader, None).await.unwrap();
    let first = s.next_message().await;
    drop(s);
    t.enqueue("k", "default").await;
    t.enqueue("k", "default").await;
    let future = t.kyu.store().clock().now() + chrono::Duration::hours(1);
    // (A store may keep its newest event, so ids never restart.)
    assert!(t.kyu.store().prune_events(future).await.unwrap() >= 2);
    let after = t.enqueue("k", "default").await;
    let mut s = t
        .open("/v1/events", &reader, Some(first.id.as_deref().unwrap()))
        .await
        .unwrap();
    let gap = s.next_message().await;
    assert_eq!(gap.event.as_deref(), Some("gap"), "{gap:?}");
    let g = gap.json();
    assert_eq!(g["after"].to_string(), first.id.clone().unwrap());
    assert_eq!(
        gap.id.as_deref(),
        Some(g["pruned_through"].to_string().as_str())
    );
    let through = g["pruned_through"].as_i64().unwrap();
    loop {
        let next = s.next_message().await;
        assert_eq!(next.event, None, "one gap: {next:?}");
        assert!(
            next.json()["id"].as_i64().unwrap() > through,
            "after the gap"
        );
        if next.json()["job_id"] == after {
            break;
        }
    }
    // since=0 asks for whatever the log holds: no gap for what is long gone.
    let mut s = t.open("/v1/events?since=0", &reader, None).await.unwrap();
    assert_eq!(s.next_message().await.event, None);
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments() {
    let t = T::with(kyu_server::Options {
        sse_keep_alive: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let reader = t.token("r", &[Scope::Read], &[]).await;
    let mut s = t.open("/v1/events", &reader, None).await.unwrap();
    let m = s.next().await;
    assert_eq!(m.comment.as_deref(), Some("keep-alive"), "{m:?}");
}

#[tokio::test]
async fn a_token_holds_at_most_its_cap_of_open_streams() {
    let t = T::with(kyu_server::Options {
        sse_streams_per_token: 2,
        ..Default::default()
    })
    .await;
    let reader = t.token("r", &[Scope::Read], &[]).await;
    let other = t.token("o", &[Scope::Read], &[]).await;
    let s1 = t.open("/v1/events", &reader, None).await.unwrap();
    let _s2 = t.open("/v1/events", &reader, None).await.unwrap();
    let (status, body) = t.open("/v1/events", &reader, None).await.err().unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "too_many_requests");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sse_streams_per_token"),
        "{body}"
    );
    let _o = t
        .open("/v1/events", &other, None)
        .await
        .expect("the cap is per token");
    drop(s1);
    t.open("/v1/events", &reader, None)
        .await
        .expect("a closed stream gives its place back");
}

#[tokio::test]
async fn bad_parameters_are_400_and_a_foreign_queue_403() {
    let t = T::new().await;
    let tenant = t.token("a", &[Scope::Read], &["tenant-a.*"]).await;
    for (path, last, field) in [
        ("/v1/events?since=abc", None, "since"),
        ("/v1/events?since=-1", None, "since"),
        ("/v1/events", Some("x"), "Last-Event-ID"),
        ("/v1/events?types=finished", None, "types"),
        ("/v1/events?job=0", None, "job"),
        ("/v1/events?bogus=1", None, "query"),
        ("/v1/events?queue=", None, "queue"),
    ] {
        let (status, body) = t.open(path, &tenant, last).await.err().unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["field"], field, "{path}: {body}");
    }
    let (status, body) = t
        .open("/v1/events?queue=tenant-b.mail", &tenant, None)
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden_queue");
}

#[tokio::test]
async fn a_tenant_token_sees_only_its_queues_events_and_no_names_of_others() {
    let t = T::new().await;
    let tenant = t.token("a", &[Scope::Read], &["tenant-a.*"]).await;
    let mine = kyu::JobTemplate::new("k", json!({}));
    let mut theirs = kyu::JobTemplate::new("k", json!({}));
    theirs.queue = "tenant-b.mail".into();
    let mut mine_q = mine.clone();
    mine_q.queue = "tenant-a.mail".into();
    t.kyu
        .schedule(kyu::ScheduleSpec::new("b-nightly", "0 3 * * *", theirs))
        .await
        .unwrap();
    t.kyu
        .schedule(kyu::ScheduleSpec::new("a-nightly", "0 3 * * *", mine_q))
        .await
        .unwrap();
    // Tenant b: a job, a pause, a trigger, a misfire of its schedule; a worker.
    let b = t.enqueue("k", "tenant-b.mail").await;
    t.kyu.pause("tenant-b.mail").await.unwrap();
    t.kyu.cancel(&[b]).await.unwrap();
    t.kyu.trigger("b-nightly").await.unwrap();
    for name in ["b-nightly", "a-nightly"] {
        let s = t.kyu.get_schedule(name).await.unwrap();
        let next = s.next_fire_at.unwrap();
        let r = t
            .kyu
            .store()
            .fire_schedule(kyu_core::schedule::Fire {
                name: name.into(),
                expected_next_fire_at: next,
                new_next_fire_at: Some(next + chrono::Duration::days(1)),
                fire_time: next,
                enqueue: false,
            })
            .await
            .unwrap();
        assert!(matches!(r, kyu::FireResult::Skipped { .. }), "{r:?}");
    }
    t.kyu
        .store()
        .worker_seen(
            &kyu::WorkerInfo {
                id: "host-b-worker".into(),
                queues: vec!["tenant-b.mail".into()],
                kinds: None,
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    // Tenant a: its job, then a marker that ends the read.
    let a = t.enqueue("k", "tenant-a.mail").await;
    t.kyu.pause("tenant-a.mail").await.unwrap();
    let marker = t.enqueue("marker", "tenant-a.mail").await;
    let mut s = t.open("/v1/events?since=0", &tenant, None).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let m = s.next_message().await;
        let done = m.json()["job_id"] == marker;
        seen.push(m.data);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(
        !text.contains("tenant-b") && !text.contains("b-nightly") && !text.contains("host-b"),
        "tenant a saw tenant b: {text}"
    );
    assert!(text.contains(&format!("\"job_id\":{a}")), "{text}");
    assert!(
        text.contains("queue_paused"),
        "its own queue's pause: {text}"
    );
    assert!(
        text.contains("a-nightly") && text.contains("schedule_misfired"),
        "its own schedule's events, though they carry no queue: {text}"
    );
    // An unlimited reader sees all of it.
    let reader = t.token("r", &[Scope::Read], &[]).await;
    let mut s = t.open("/v1/events?since=0", &reader, None).await.unwrap();
    let mut all = Vec::new();
    loop {
        let m = s.next_message().await;
        let done = m.json()["job_id"] == marker;
        all.push(m.data);
        if done {
            break;
        }
    }
    let all = all.join("\n");
    assert!(
        all.contains("b-nightly") && all.contains("host-b-worker"),
        "{all}"
    );
}
