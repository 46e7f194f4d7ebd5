//! The Jobs page's filter as the URL and its forms carry it: the API's job
//! filter fields (parsed by the API's one parser, [`FilterInput`], so the
//! page, the list and the bulk action select the same jobs and say the
//! same words), a job id to jump to and the paging cursor. Blank fields (an
//! empty box of the filter form) are no filter.

use kyu::{JobFilter, JobId};
use maud::{html, Markup};

use super::layout;
use crate::api::auth::Caller;
use crate::api::error::ApiError;
use crate::api::filter::{self, FilterInput};

/// The filter fields a form carries, in the order the page shows them
/// (`args` may repeat: one search inside args each).
pub(crate) const FILTER_FIELDS: [&str; 7] = [
    "state",
    "queue",
    "kind",
    "tag",
    "created_after",
    "created_before",
    "args",
];

/// The Jobs page's query.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobsQuery {
    /// The filter's non-blank fields as given, in order (`args` repeats).
    pub(crate) fields: Vec<(String, String)>,
    /// A job id to open.
    pub(crate) id: Option<String>,
    /// The cursor: jobs below this id.
    pub(crate) before: Option<String>,
}

impl JobsQuery {
    /// The query from a URL's or form's pairs; `extra` names the other
    /// fields the caller reads itself (e.g. `action`), which are left out.
    /// An unknown name is refused, naming the accepted ones.
    pub(crate) fn from_pairs(pairs: &[(String, String)], extra: &[&str]) -> Result<Self, ApiError> {
        let mut q = JobsQuery::default();
        for (name, value) in pairs {
            let value = value.trim();
            let name = name.as_str();
            if extra.contains(&name) {
                continue;
            }
            if value.is_empty() {
                continue;
            }
            match name {
                "id" => q.id = Some(value.to_string()),
                "before" => q.before = Some(value.to_string()),
                n if FILTER_FIELDS.contains(&n) => q.fields.push((n.into(), value.into())),
                // The list API's spelling of a search: `args.user=42`.
                n if n.starts_with("args.") => {
                    q.fields.push(("args".into(), format!("{n}={value}")))
                }
                other => {
                    return Err(ApiError::invalid(
                        "query",
                        format!(
                            "query: unknown parameter {other:?}; accepted: {}, id, before",
                            FILTER_FIELDS.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(q)
    }

    /// The first value of filter field `name`, or "".
    pub(crate) fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The searches inside args.
    pub(crate) fn args(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|(n, _)| n == "args")
            .map(|(_, v)| v.as_str())
    }

    /// The filter as the API's parser takes it.
    fn input(&self) -> FilterInput {
        let mut f = FilterInput::default();
        for (name, value) in &self.fields {
            if name == "args" {
                f.args.push(("args".into(), value.clone()));
            } else {
                f.take_pair(name, value.clone());
            }
        }
        f
    }

    /// The store's filter, checked with the API's words.
    pub(crate) fn filter(&self, caller: &Caller) -> Result<JobFilter, ApiError> {
        self.input().parse(caller, "")
    }

    /// The cursor, checked.
    pub(crate) fn before(&self) -> Result<Option<JobId>, ApiError> {
        self.before
            .as_deref()
            .map(|b| parse_id("before", b))
            .transpose()
    }

    /// The filter's pairs with `state` replaced (None: every state).
    pub(crate) fn pairs_with_state<'a>(
        &'a self,
        state: Option<&'a str>,
    ) -> Vec<(&'a str, &'a str)> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = state {
            pairs.push(("state", s));
        }
        pairs.extend(
            self.fields
                .iter()
                .filter(|(n, _)| n != "state")
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        pairs
    }

    /// This query as a link to `path`, with `state` and `before` replaced.
    pub(crate) fn link_to(&self, path: &str, state: Option<&str>, before: Option<JobId>) -> String {
        let before = before.map(|b| b.to_string());
        let mut pairs = self.pairs_with_state(state);
        if let Some(b) = &before {
            pairs.push(("before", b));
        }
        if pairs.is_empty() {
            return path.to_string();
        }
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    }

    /// This query as a link to the Jobs page, with `state` and `before` replaced.
    pub(crate) fn link(&self, state: Option<&str>, before: Option<JobId>) -> String {
        self.link_to("/jobs", state, before)
    }

    /// The filter's fields as hidden inputs of a form.
    pub(crate) fn hidden(&self) -> Markup {
        html! {
            @for (n, v) in &self.fields {
                input type="hidden" name=(n) value=(v);
            }
        }
    }

    /// The filter in words, for a confirmation: "state failed, queue mail",
    /// times with their zone (UTC); "every job" when there is none.
    pub(crate) fn describe(&self, filter: &JobFilter) -> Markup {
        html! {
            @if self.fields.is_empty() {
                "every job"
            } @else {
                @for (i, (n, v)) in self.fields.iter().enumerate() {
                    @if i > 0 { ", " }
                    @match n.as_str() {
                        "created_after" => { "created at or after " (layout::time_or_dash(filter.created_after)) },
                        "created_before" => { "created before " (layout::time_or_dash(filter.created_before)) },
                        "args" => { code { (v) } },
                        _ => { (n) " " strong { (v) } },
                    }
                }
            }
        }
    }
}

/// Parses a job id given in `field` (the API's words).
pub(crate) fn parse_id(field: &str, s: &str) -> Result<JobId, ApiError> {
    s.trim()
        .parse::<JobId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{field}: {s:?} is not a job id; accepted: a positive integer"),
            )
        })
}

/// The state the filter asks for, checked.
pub(crate) fn state_of(q: &JobsQuery) -> Result<Option<kyu::JobState>, ApiError> {
    match q.get("state") {
        "" => Ok(None),
        s => filter::parse_state("state", s).map(Some),
    }
}
