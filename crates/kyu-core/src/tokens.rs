//! API tokens: who may call the HTTP API, with which [`Scope`]s, on which
//! queues ([`QueuePattern`]). A token's secret is never stored: the store
//! keeps its SHA-256 hash (hex), which the server compares against the hash
//! of the bearer token it is shown. The semantics of [`TokenStore`] are
//! stated by `kyu_core::conformance::tokens`.
//!
//! ```
//! use kyu_core::tokens::{QueuePattern, Scope};
//!
//! let p: QueuePattern = "tenant-a.*".parse().unwrap();
//! assert!(p.matches("tenant-a.mail"));
//! assert!(!p.matches("tenant-b.mail"));
//! assert_eq!("read_args".parse::<Scope>().unwrap(), Scope::ReadArgs);
//! ```

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{InvalidInput, StoreError};

/// What a token may do. `admin` may do everything; the others grant one
/// audience each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything, tokens included.
    Admin,
    /// Operator actions: cancel, retry, pause and resume queues, schedules.
    Operate,
    /// Read jobs, queues and schedules (args and results redacted).
    Read,
    /// See job args and results (with `read`).
    ReadArgs,
    /// Enqueue jobs.
    Produce,
    /// Run jobs as a remote worker.
    Work,
    /// Scrape `/metrics`.
    Metrics,
}

impl Scope {
    /// Every scope, in the order they are listed to users.
    pub const ALL: [Scope; 7] = [
        Scope::Admin,
        Scope::Operate,
        Scope::Read,
        Scope::ReadArgs,
        Scope::Produce,
        Scope::Work,
        Scope::Metrics,
    ];

    /// Its name, e.g. `read_args`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Operate => "operate",
            Scope::Read => "read",
            Scope::ReadArgs => "read_args",
            Scope::Produce => "produce",
            Scope::Work => "work",
            Scope::Metrics => "metrics",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Scope, InvalidInput> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(
                    "scope",
                    format!(
                        "{s:?} is not a scope; accepted: admin, operate, read, read_args, produce, work, metrics"
                    ),
                )
            })
    }
}

/// A queue name, or a prefix ending in `*` (`tenant-a.*` matches every
/// queue whose name starts with `tenant-a.`; `*` alone matches every queue).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueuePattern(String);

impl QueuePattern {
    /// Whether `queue` is one this pattern names.
    pub fn matches(&self, queue: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => queue.starts_with(prefix),
            None => queue == self.0,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueuePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for QueuePattern {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<QueuePattern, InvalidInput> {
        let accepted =
            "accepted: a queue name (e.g. mail) or a prefix ending in * (e.g. tenant-a.*)";
        if s.trim().is_empty() {
            return Err(InvalidInput::new(
                "queues",
                format!("{s:?} is empty; {accepted}"),
            ));
        }
        if s.chars().any(char::is_control) || s.trim() != s {
            return Err(InvalidInput::new(
                "queues",
                format!("{s:?} has a control character or surrounding whitespace; {accepted}"),
            ));
        }
        if s.trim_end_matches('*').contains('*') || s.ends_with("**") {
            return Err(InvalidInput::new(
                "queues",
                format!("{s:?} has a * that is not its last character; {accepted}"),
            ));
        }
        Ok(QueuePattern(s.to_string()))
    }
}

impl TryFrom<String> for QueuePattern {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<QueuePattern, InvalidInput> {
        s.parse()
    }
}

impl From<QueuePattern> for String {
    fn from(p: QueuePattern) -> String {
        p.0
    }
}

/// A token to store: its name, the hash of its secret and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Unique name, e.g. `web-app` (what `kyu tokens revoke` takes).
    pub name: String,
    /// SHA-256 of the secret, lowercase hex.
    pub hash: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The queues it may touch; empty: every queue.
    pub queues: Vec<QueuePattern>,
    /// When it stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored token (without its secret, which is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Its name.
    pub name: String,
    /// SHA-256 of the secret, lowercase hex.
    pub hash: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The queues it may touch; empty: every queue.
    pub queues: Vec<QueuePattern>,
    /// When it was created (the store's clock).
    pub created_at: DateTime<Utc>,
    /// When it stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    /// Whether it has `scope` (an `admin` token has every scope).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    /// Whether it may touch `queue`.
    pub fn allows_queue(&self, queue: &str) -> bool {
        self.queues.is_empty() || self.queues.iter().any(|p| p.matches(queue))
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// The API tokens and the per-database secrets of a [`Store`](crate::Store).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a token. False, nothing written, if a token has this name.
    async fn create_token(&self, token: NewToken) -> Result<bool, StoreError>;

    /// Stores a token only if there is no token at all (atomically: of two
    /// first starts, one creates it). False, nothing written, otherwise.
    async fn create_first_token(&self, token: NewToken) -> Result<bool, StoreError>;

    /// The token whose secret hashes to `hash`, expired or not.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Every token, by name.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Deletes the token `name`: it stops working at once. False if there was none.
    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError>;

    /// The secret named `name`: the stored one, or `candidate`, stored now, if
    /// there was none (atomically: every caller gets the same value).
    async fn secret(&self, name: &str, candidate: &str) -> Result<String, StoreError>;
}
