//! The page shell (head, navigation, the viewer's token, logout), the small
//! pieces every page uses (times with their zone, state badges, action
//! buttons with the CSRF token), and the security headers of every answer.

use axum::http::{header, HeaderValue};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::session::{Viewer, CSRF_FIELD};

/// No inline script or style, nothing from another site, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sets the security headers on every dashboard answer: the
/// Content-Security-Policy, no sniffing, no framing, a referrer only to
/// this site (a login link's token never leaves in a Referer; not
/// `no-referrer`, with which browsers send `Origin: null` on this site's
/// own forms and the origin check could not tell them from another
/// site's), and no caching of pages.
pub(crate) async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A whole document without navigation (login, errors).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body { (body) }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · kyu" }
        link rel="stylesheet" href=(super::assets::url("dashboard.css"));
        link rel="icon" type="image/svg+xml" href=(super::assets::url("icon.svg"));
        script src=(super::assets::url("dashboard.js")) defer {}
    }
}

/// The navigation entries: (path, label).
const NAV: [(&str, &str); 7] = [
    ("/", "Overview"),
    ("/queues", "Queues"),
    ("/jobs", "Jobs"),
    ("/schedules", "Schedules"),
    ("/workers", "Workers"),
    ("/batches", "Batches"),
    ("/live", "Live"),
];

/// The navigation entries a token limited to queues may open (batches may
/// span queues: their pages are for tokens that see every queue).
fn nav_for(viewer: &Viewer) -> impl Iterator<Item = (&'static str, &'static str)> {
    let limited = !viewer.caller.token.queues.is_empty();
    NAV.into_iter()
        .filter(move |(path, _)| !(limited && *path == "/batches"))
}

/// A whole page: navigation (with `current` marked), the viewer's token and
/// scopes, a notice left by the last action, and `body`.
pub(crate) fn page(viewer: &Viewer, title: &str, current: &str, body: Markup) -> Markup {
    let token = &viewer.caller.token;
    let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
    let queues: Vec<&str> = token.queues.iter().map(|q| q.as_str()).collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body {
                header.top {
                    a.brand href="/" { img src=(super::assets::url("icon.svg")) alt="" width="20" height="20"; " kyu" }
                    nav aria-label="Main" {
                        @for (path, label) in nav_for(viewer) {
                            @if path == current {
                                a href=(path) aria-current="page" { (label) }
                            } @else {
                                a href=(path) { (label) }
                            }
                        }
                    }
                    div.who {
                        span title="the token you logged in with" { "token " strong { (token.name) } }
                        " "
                        span.scopes { (scopes.join(", ")) }
                        @if !queues.is_empty() { " " span.scopes title="queue patterns" { "queues " (queues.join(", ")) } }
                        form.inline method="post" action="/logout" {
                            (csrf(viewer))
                            button.link type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    @if let Some(f) = &viewer.flash { p.notice role="status" { (f) } }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(viewer.csrf); }
}

/// A one-button form posting to `action`, back to `back` afterwards.
pub(crate) fn action(viewer: &Viewer, action: &str, back: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(viewer))
            input type="hidden" name="back" value=(back);
            button type="submit" { (label) }
        }
    }
}

/// A time in UTC, with its zone.
pub(crate) fn time(t: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) }
    }
}

/// An optional time, or a dash.
pub(crate) fn time_or_dash(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { "–" },
    }
}

/// A job state as a badge.
pub(crate) fn state(s: kyu::JobState) -> Markup {
    html! { span class=(format!("state {}", s.as_str())) { (s.as_str()) } }
}

/// A count, or a dash for zero.
pub(crate) fn count(n: u64) -> Markup {
    html! {
        @if n == 0 { span.zero { "0" } } @else { (n) }
    }
}
