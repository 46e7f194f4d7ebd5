//! The dashboard's assets, embedded in the binary at compile time (no CDN:
//! the dashboard works offline): a style sheet, a small script (live
//! updates; the pages work without it) and the icon.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Every asset: (file name, content type, bytes).
pub const FILES: [(&str, &str, &[u8]); 3] = [
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("static/dashboard.css"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/dashboard.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("static/icon.svg"),
    ),
];

/// The URL of asset `name`, with the version so that an upgrade is fetched anew.
pub(crate) fn url(name: &str) -> String {
    format!("/assets/{name}?v={}", env!("CARGO_PKG_VERSION"))
}

/// Serves one asset.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == file) {
        Some((_, mime, bytes)) => {
            let mut resp = bytes.to_vec().into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            resp
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
