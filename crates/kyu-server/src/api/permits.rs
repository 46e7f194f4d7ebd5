//! Per-token caps on long-lived requests: open event streams and long polls.
//! A request takes a [`Permit`] for its token; the permit is given back when
//! it is dropped (the stream ends or the client goes away), so a token that
//! holds its cap is refused (429 `too_many_requests`) until one ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use super::error::ApiError;

/// What a permit is for: each has its own cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An open `GET /v1/events` stream.
    Stream,
    /// A long poll (`GET /v1/jobs/{id}?wait=`).
    LongPoll,
}

impl Kind {
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Kind::Stream => ("open event streams", "sse_streams_per_token"),
            Kind::LongPoll => ("long polls", "long_polls_per_token"),
        }
    }
}

/// The counts of open permits by token name and kind.
#[derive(Debug, Clone, Default)]
pub struct Permits {
    open: Arc<Mutex<HashMap<(String, Kind), usize>>>,
}

/// One held permit; dropping it gives it back.
#[derive(Debug)]
pub struct Permit {
    open: Arc<Mutex<HashMap<(String, Kind), usize>>>,
    key: (String, Kind),
}

impl Permits {
    /// Takes a permit of `kind` for `token` if it holds fewer than `cap`;
    /// 429 `too_many_requests` if not.
    pub fn take(&self, token: &str, kind: Kind, cap: usize) -> Result<Permit, ApiError> {
        let key = (token.to_string(), kind);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= cap {
            let (what, setting) = kind.words();
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!(
                    "this token ({token:?}) already has {n} {what}; accepted: up to {cap} at once ([http] {setting}); close one and retry"
                ),
            ));
        }
        *n += 1;
        Ok(Permit {
            open: self.open.clone(),
            key,
        })
    }

    /// How many permits of `kind` `token` holds now.
    pub fn held(&self, token: &str, kind: Kind) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&(token.to_string(), kind)).copied().unwrap_or(0)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_at_most_cap_and_a_dropped_permit_comes_back() {
        let p = Permits::default();
        let a = p.take("t", Kind::Stream, 2).unwrap();
        let _b = p.take("t", Kind::Stream, 2).unwrap();
        let e = p.take("t", Kind::Stream, 2).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            e.body.message.contains("sse_streams_per_token"),
            "{}",
            e.body.message
        );
        let _other = p.take("u", Kind::Stream, 2).expect("per token");
        let _poll = p.take("t", Kind::LongPoll, 1).expect("per kind");
        drop(a);
        assert_eq!(p.held("t", Kind::Stream), 1);
        p.take("t", Kind::Stream, 2).expect("given back");
    }
}
