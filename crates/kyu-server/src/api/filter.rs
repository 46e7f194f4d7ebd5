//! The one job filter of the API's list (`GET /v1/jobs`), the API's bulk
//! action by filter (`POST /v1/jobs/bulk`) and the dashboard's Jobs page:
//! each source hands its fields over as text ([`FilterInput`]) and one
//! parser checks them into the store's [`JobFilter`], so the three select
//! the same jobs for the same words and refuse bad input with the same
//! words.

use chrono::{DateTime, Utc};
use kyu::{ArgMatch, JobFilter, JobState};

use super::auth::Caller;
use super::error::ApiError;

/// Most searches inside args one filter may carry.
pub const MAX_ARG_SEARCHES: usize = 8;

/// The fields every job filter takes, in the words of the list's query.
pub const FIELDS: &str = "state, queue, kind, tag, created_after, created_before, args.PATH=VALUE";

/// A job filter's fields as given, before checking.
#[derive(Debug, Clone, Default)]
pub(crate) struct FilterInput {
    /// `state`.
    pub(crate) state: Option<String>,
    /// `queue`.
    pub(crate) queue: Option<String>,
    /// `kind`.
    pub(crate) kind: Option<String>,
    /// `tag`.
    pub(crate) tag: Option<String>,
    /// `created_after`: RFC 3339.
    pub(crate) created_after: Option<String>,
    /// `created_before`: RFC 3339.
    pub(crate) created_before: Option<String>,
    /// Searches inside args, each `args.PATH=VALUE`, with the field that
    /// gave it (named in its error).
    pub(crate) args: Vec<(String, String)>,
}

/// Parses a time given in `field`: RFC 3339 (the zone is part of it).
pub(crate) fn parse_time(field: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::invalid(
                field,
                format!("{field}: {v:?} is not a time ({e}); accepted: RFC 3339 with its zone, e.g. 2030-01-01T00:00:00Z or 2030-01-01T09:00:00+09:00"),
            )
        })
}

/// Parses a state name given in `field`.
pub(crate) fn parse_state(field: &str, s: &str) -> Result<JobState, ApiError> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        ApiError::invalid(
            field,
            format!("{field}: {s:?} is not a state; accepted: scheduled, available, running, completed, failed, cancelled"),
        )
    })
}

impl FilterInput {
    /// Takes the query pair `name=value` if it is a filter field (`args.…`
    /// names are searches inside args, as the list's query spells them);
    /// false if `name` is no filter field.
    pub(crate) fn take_pair(&mut self, name: &str, value: String) -> bool {
        match name {
            "state" => self.state = Some(value),
            "queue" => self.queue = Some(value),
            "kind" => self.kind = Some(value),
            "tag" => self.tag = Some(value),
            "created_after" => self.created_after = Some(value),
            "created_before" => self.created_before = Some(value),
            n if n.starts_with("args.") => self.args.push(("args".into(), format!("{n}={value}"))),
            _ => return false,
        }
        true
    }

    /// The store's filter (all states, no cursor, the default page size),
    /// every field checked: `prefix` (e.g. `filter.`) goes before each
    /// field's name in errors. A queue the caller may not see is refused
    /// (403), and so is a search inside args without the `read_args`
    /// scope (403: the args are hidden from it); jobs of other queues are
    /// the caller's to skip.
    pub(crate) fn parse(&self, caller: &Caller, prefix: &str) -> Result<JobFilter, ApiError> {
        let field = |f: &str| format!("{prefix}{f}");
        let states = match &self.state {
            None => Vec::new(),
            Some(s) => vec![parse_state(&field("state"), s)?],
        };
        if let Some(q) = &self.queue {
            kyu::validate::queue_name(&field("queue"), q)?;
            caller.check_queue(&field("queue"), q)?;
        }
        if self.args.len() > MAX_ARG_SEARCHES {
            return Err(ApiError::invalid(
                &field("args"),
                format!(
                    "{}: {} searches inside args; accepted: up to {MAX_ARG_SEARCHES}",
                    field("args"),
                    self.args.len()
                ),
            ));
        }
        // Without read_args the args are hidden: a search inside them
        // would tell their values one guess at a time.
        if !self.args.is_empty() && !caller.reads_args() {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden_scope",
                format!(
                    "{}: searching inside args needs a token with scope read_args (args are hidden from this token, {:?}); accepted: no args search, or a token with read_args",
                    field("args"),
                    caller.token.name
                ),
            )
            .field(field("args")));
        }
        let args = self
            .args
            .iter()
            .map(|(f, text)| ArgMatch::parse(&field(f), text))
            .collect::<Result<Vec<_>, _>>()?;
        let time = |f: &str, v: &Option<String>| {
            v.as_deref().map(|v| parse_time(&field(f), v)).transpose()
        };
        Ok(JobFilter {
            states,
            queue: self.queue.clone(),
            kind: self.kind.clone(),
            tag: self.tag.clone(),
            created_after: time("created_after", &self.created_after)?,
            created_before: time("created_before", &self.created_before)?,
            args,
            ..JobFilter::default()
        })
    }
}
