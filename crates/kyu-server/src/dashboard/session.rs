//! Logging in and the guard every page and action runs behind.
//!
//! A session is a cookie `kyu_session` = `NONCE.SECRET`: a random nonce made
//! at login and the token's secret, HttpOnly (no script reads it) and
//! SameSite=Strict (no other site's request carries it). Each request
//! authenticates the token anew, so a revoked or expired token logs out at
//! once. The session's CSRF token is HMAC-SHA256(secret, nonce): every form
//! carries it and every action checks it; an action is also refused when
//! the browser says it was sent from another site (`Sec-Fetch-Site`
//! other than `same-origin`, or an `Origin` other than this host).

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use maud::{html, Markup};
use sha2::Sha256;

use super::{layout, Access, DashState, PageInfo};
use crate::api::auth::{check_secret, Caller, Rule};
use crate::api::error::ApiError;

/// The session cookie's name.
pub const COOKIE: &str = "kyu_session";
/// The cookie of a one-time notice shown after an action.
const FLASH: &str = "kyu_flash";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// The logged-in viewer of a page, put in the request by [`guard`].
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The token, with the API's checks.
    pub(crate) caller: Caller,
    /// The session's CSRF token, for the forms of the page.
    pub(crate) csrf: String,
    /// A notice left by the previous action.
    pub(crate) flash: Option<String>,
}

impl Viewer {
    /// Whether the viewer may act (`operate`).
    pub(crate) fn operates(&self) -> bool {
        self.caller.token.has(kyu::Scope::Operate)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PageError> {
        parts.extensions.get::<Viewer>().cloned().ok_or_else(|| {
            PageError(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this page is not in the dashboard's table; nothing is served without a session",
            ))
        })
    }
}

/// An error shown as an HTML page with the API's status and words.
#[derive(Debug)]
pub(crate) struct PageError(pub(crate) ApiError);

macro_rules! page_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for PageError {
            fn from(e: $t) -> PageError {
                PageError(e.into())
            }
        }
    )*};
}
page_error_from!(ApiError, kyu::Error, kyu::InvalidInput, kyu::StoreError);

/// The error an error page shows, kept on its response so that [`guard`]
/// can show it again in the viewer's layout (navigation, token) once it
/// knows the viewer.
#[derive(Debug, Clone)]
struct Shown(ApiError);

/// An error page's content: the status, what was wrong and what is
/// accepted (the API's words), and where to go from here.
fn error_body(e: &ApiError) -> Markup {
    html! {
        h1 { (e.status.as_u16()) " " (e.status.canonical_reason().unwrap_or("")) }
        p.error role="alert" { (e.body.message) }
        p { a href="/jobs" { "Jobs" } " · " a href="/" { "Overview" } }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = layout::bare(
            "Error",
            html! {
                main.narrow {
                    (error_body(&e))
                    p { a href="/login" { "Log in" } }
                }
            },
        );
        let mut resp = (e.status, body).into_response();
        resp.extensions_mut().insert(Shown(e));
        resp
    }
}

/// A form body as name/value pairs (names may repeat: `ids=1&ids=2`).
pub(crate) struct FormPairs(pub(crate) Vec<(String, String)>);

impl FormPairs {
    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_bytes(bytes).map_err(|e| {
        ApiError::invalid(
            "body",
            format!("body: {e}; accepted: a form (application/x-www-form-urlencoded)"),
        )
    })
}

impl<S: Send + Sync> FromRequest<S> for FormPairs {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, PageError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    e.status(),
                    "bad_body",
                    format!("the form could not be read: {e}"),
                )
            })?;
        Ok(FormPairs(parse_pairs(&bytes)?))
    }
}

/// The session's CSRF token: HMAC-SHA256 keyed by the token's secret over the nonce.
fn csrf_of(nonce: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(b"kyu-dashboard-csrf:");
    mac.update(nonce.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The CSRF token of a session: what the pages put in their forms for the
/// session whose `kyu_session` cookie value is `cookie_value`; `None` if
/// that is not a session cookie's value.
///
/// ```
/// let csrf = kyu_server::dashboard::session::csrf_token("00ff.kyu_abc").unwrap();
/// assert_eq!(csrf.len(), 64);
/// assert_eq!(kyu_server::dashboard::session::csrf_token("no-dot"), None);
/// ```
pub fn csrf_token(cookie_value: &str) -> Option<String> {
    cookie_value
        .split_once('.')
        .filter(|(n, s)| !n.is_empty() && !s.is_empty())
        .map(|(n, s)| csrf_of(n, s))
}

/// Equal strings, compared in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name`, if the request has it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The nonce and secret of the session cookie.
fn session_of(headers: &HeaderMap) -> Option<(&str, &str)> {
    cookie(headers, COOKIE)
        .and_then(|v| v.split_once('.'))
        .filter(|(n, s)| !n.is_empty() && !s.is_empty())
}

/// A `Set-Cookie` value with the session's attributes.
fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict{age}"
    ))
    .expect("cookie values are hex or token characters")
}

/// A cookie that leaves a one-time notice for the next page.
pub(crate) fn flash(text: &str) -> HeaderValue {
    set_cookie(FLASH, &hex::encode(text.as_bytes()), Some(60))
}

/// Refused unless the request came from this site, as far as the browser says.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let refuse = |what: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            format!("{what}; accepted: a form of this dashboard, submitted from its own pages"),
        )
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return Err(refuse(&format!(
                "the request came from another site (Sec-Fetch-Site: {})",
                site.to_str().unwrap_or("?")
            )));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let origin = origin.to_str().unwrap_or("");
        let ok = !host.is_empty()
            && (origin == format!("http://{host}") || origin == format!("https://{host}"));
        if !ok {
            return Err(refuse(&format!(
                "the request came from origin {origin:?}, not this host ({host:?})"
            )));
        }
    }
    Ok(())
}

/// A path of this site to go back to: `next` if it is a local path, else `/`.
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The middleware every page and action runs behind, with the page's row
/// of the table.
pub(crate) async fn guard(
    State((dash, info)): State<(DashState, PageInfo)>,
    req: Request,
    next: Next,
) -> Response {
    match check(&dash, &info, req).await {
        Ok((req, had_flash)) => {
            let viewer = req.extensions().get::<Viewer>().cloned();
            let mut resp = next.run(req).await;
            // An error of a logged-in viewer's page: shown in the layout.
            if let (Some(v), Some(Shown(e))) = (viewer, resp.extensions().get::<Shown>().cloned()) {
                let title = format!(
                    "{} {}",
                    e.status.as_u16(),
                    e.status.canonical_reason().unwrap_or("Error")
                );
                resp = (e.status, layout::page(&v, &title, "", error_body(&e))).into_response();
            }
            if had_flash && !resp.headers().contains_key(header::SET_COOKIE) {
                resp.headers_mut()
                    .append(header::SET_COOKIE, set_cookie(FLASH, "", Some(0)));
            }
            resp
        }
        Err(resp) => resp,
    }
}

async fn check(
    dash: &DashState,
    info: &PageInfo,
    req: Request,
) -> Result<(Request, bool), Response> {
    if info.is_action() {
        same_origin(req.headers()).map_err(|e| PageError(e).into_response())?;
    }
    let (scope, queue_scoped) = match info.access {
        Access::Public => return Ok((req, false)),
        Access::Session => (None, true),
        Access::Scope(s) => (Some(s), true),
        Access::AllQueues(s) => (Some(s), false),
    };
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let Some((nonce, secret)) = session_of(req.headers()) else {
        return Err(not_logged_in(info, &req));
    };
    let (nonce, secret) = (nonce.to_string(), secret.to_string());
    let caller = match scope {
        Some(scope) => {
            let rule = Rule {
                scope,
                queue_scoped,
            };
            check_secret(&dash.shared, rule, &secret, &method, &path).await
        }
        None => match dash.shared.kyu.authenticate(&secret).await {
            Ok(Some(token)) => Ok(Caller { token }),
            Ok(None) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown token",
            )),
            Err(e) => Err(e.into()),
        },
    };
    let caller = match caller {
        Ok(c) => c,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => return Err(not_logged_in(info, &req)),
        Err(e) => return Err(PageError(e).into_response()),
    };
    let csrf = csrf_of(&nonce, &secret);
    let flash = cookie(req.headers(), FLASH)
        .and_then(|v| hex::decode(v).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty());
    let had_flash = flash.is_some();
    let mut req = if info.is_action() {
        let (parts, body) = req.into_parts();
        let limit = dash.shared.options.body_limit;
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            PageError(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the form is over the body limit",
            ))
            .into_response()
        })?;
        let pairs = parse_pairs(&bytes).map_err(|e| PageError(e).into_response())?;
        let given = pairs
            .iter()
            .find(|(n, _)| n == CSRF_FIELD)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if !same(given, &csrf) {
            return Err(PageError(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_csrf",
                "the form's CSRF token is missing or not this session's; accepted: a form of this dashboard (reload the page and try again)",
            ))
            .into_response());
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    req.extensions_mut().insert(Viewer {
        caller,
        csrf,
        flash,
    });
    Ok((req, had_flash))
}

/// A page asks the browser to log in (then come back); an action is refused.
fn not_logged_in(info: &PageInfo, req: &Request) -> Response {
    if info.is_action() {
        return PageError(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "not logged in, or the token was revoked or has expired; accepted: log in again with a token",
        ))
        .into_response();
    }
    let here = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let next: String = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
    Redirect::to(&format!("/login?{next}")).into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginParams {
    next: Option<String>,
    token: Option<String>,
}

/// The login page; with `?token=`, the first-run link: logs in at once if
/// the browser opened it itself (pasted or clicked from a terminal), not
/// from another site's page.
pub(crate) async fn login_page(
    State(dash): State<DashState>,
    headers: HeaderMap,
    axum::extract::Query(p): axum::extract::Query<LoginParams>,
) -> Response {
    let next = local_path(p.next.as_deref());
    let Some(secret) = p.token else {
        return login_form(StatusCode::OK, &next, None);
    };
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_else(|| b"none".to_vec());
    if site != b"none" && site != b"same-origin" {
        return login_form(
            StatusCode::FORBIDDEN,
            &next,
            Some("A login link works only when opened directly (pasted into the address bar or clicked in a terminal), not from another site. Paste the token below instead."),
        );
    }
    start_session(&dash, &secret, &next).await
}

/// Logs in with the token of the form.
pub(crate) async fn login(State(dash): State<DashState>, form: FormPairs) -> Response {
    let next = local_path(form.get("next"));
    start_session(&dash, form.get("token").unwrap_or("").trim(), &next).await
}

async fn start_session(dash: &DashState, secret: &str, next: &str) -> Response {
    // Every token kyu makes is `kyu_` and hex: anything else is no token
    // (and could not be put in a cookie as it is).
    let plausible = !secret.is_empty()
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let found = if plausible {
        dash.shared.kyu.authenticate(secret).await
    } else {
        Ok(None)
    };
    match found {
        Ok(Some(token)) => {
            tracing::info!(token = %token.name, "dashboard: logged in");
            let nonce = kyu_nonce();
            let mut resp = Redirect::to(next).into_response();
            resp.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(COOKIE, &format!("{nonce}.{secret}"), None),
            );
            resp
        }
        Ok(None) => login_form(
            StatusCode::UNAUTHORIZED,
            next,
            Some("That token is unknown, revoked or expired. Accepted: a token from `kyu tokens create`, or the admin token the first `kyu serve` printed."),
        ),
        Err(e) => PageError(e.into()).into_response(),
    }
}

/// A fresh random nonce (128 bits, hex).
fn kyu_nonce() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn login_form(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let body: Markup = layout::bare(
        "Log in",
        html! {
            main.narrow {
                h1 { "kyu" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="token" { "API token" }
                    input #token type="password" name="token" autocomplete="current-password"
                        placeholder="kyu_…" required autofocus;
                    button type="submit" { "Log in" }
                }
                p.hint { "Any token from " code { "kyu tokens create" } " works; what you see and may do follows its scopes ("
                    code { "read" } ", " code { "read_args" } ", " code { "operate" } ", " code { "admin" } ") and queue patterns." }
            }
        },
    );
    (status, body).into_response()
}

/// Logs out: the cookie is dropped.
pub(crate) async fn logout(_viewer: Viewer) -> Response {
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(COOKIE, "", Some(0)));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_path_keeps_only_this_sites_paths() {
        assert_eq!(local_path(Some("/jobs?state=failed")), "/jobs?state=failed");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn csrf_differs_by_nonce_and_secret() {
        assert_ne!(csrf_of("a", "s"), csrf_of("b", "s"));
        assert_ne!(csrf_of("a", "s"), csrf_of("a", "t"));
        assert!(same(&csrf_of("a", "s"), &csrf_of("a", "s")));
    }
}
