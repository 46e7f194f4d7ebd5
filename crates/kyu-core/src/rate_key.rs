//! Rate keys: one rate window per key within a queue (see
//! [`crate::limits`]).
//!
//! A job's rate key is resolved once, when it is enqueued, and stored with
//! it, so a claim compares stored text and never parses args:
//!
//! - a key given at enqueue ([`NewJob::rate_key`](crate::NewJob::rate_key))
//!   is the key;
//! - otherwise, if the queue has a [`RateKeyPath`] (`rate_key = "args.api"`),
//!   the value found there in the args: a string as it is, a number or
//!   `true`/`false` as its JSON text (use strings or whole numbers: how a
//!   backend writes `1.50` or an object may differ);
//! - otherwise (no path, or the args lack the field or hold `null` or `""`
//!   there) the job has no key. Every job without a key of a queue shares
//!   one window, the "no key" bucket: a queue whose jobs have no keys is
//!   limited as a whole, exactly as a rate without keys.
//!
//! The path is read at enqueue. When a queue gets a rate, or its path
//! changes, the store gives its jobs without a key, and those of the "no
//! key" bucket, the key the new path finds; a job keeps a key it already
//! had (given at enqueue, or found by an earlier path).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::InvalidInput;

/// Most fields in a rate key path.
pub const MAX_PATH_FIELDS: usize = 8;

/// Longest field name in a rate key path, in bytes.
pub const MAX_FIELD_LEN: usize = 64;

/// Longest rate key given at enqueue, in bytes.
pub const MAX_RATE_KEY_LEN: usize = 512;

/// What a rate key path is written as, for error messages.
pub const RATE_KEY_PATH_ACCEPTED: &str = "a rate key path is \"args.\" then 1 to 8 field names \
     joined by dots, each a letter or '_' then up to 63 letters, digits, '_' or '-', \
     e.g. \"args.api\" or \"args.tenant.id\"";

/// Where a job's rate key is found in its args: `args.FIELD[.FIELD…]`,
/// written `"args.api"` or `"args.tenant.id"`.
///
/// ```
/// use kyu_core::rate_key::RateKeyPath;
/// let p: RateKeyPath = "args.tenant.id".parse().unwrap();
/// assert_eq!(p.fields(), ["tenant", "id"]);
/// assert_eq!(p.key_of(r#"{"tenant": {"id": 42}}"#).as_deref(), Some("42"));
/// assert_eq!(p.key_of(r#"{"tenant": {}}"#), None);
/// assert_eq!(p.to_string(), "args.tenant.id");
/// assert!("api".parse::<RateKeyPath>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateKeyPath {
    fields: Vec<String>,
}

impl RateKeyPath {
    /// Parses `"args.FIELD[.FIELD…]"`; `field` names the setting in the error.
    pub fn parse(field: &str, s: &str) -> Result<RateKeyPath, InvalidInput> {
        let bad = |why: &str| {
            InvalidInput::new(
                field,
                format!("{s:?} is not accepted ({why}); {RATE_KEY_PATH_ACCEPTED}"),
            )
        };
        let rest = s
            .strip_prefix("args.")
            .ok_or_else(|| bad("it does not start with \"args.\""))?;
        let fields: Vec<String> = rest.split('.').map(str::to_string).collect();
        if fields.len() > MAX_PATH_FIELDS {
            return Err(bad("more than 8 fields"));
        }
        for f in &fields {
            let ok = f.len() <= MAX_FIELD_LEN
                && f.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(bad(&format!("field {f:?}")));
            }
        }
        Ok(RateKeyPath { fields })
    }

    /// The field names after `args.`, outermost first.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The rate key of a job with these args (JSON text), or `None` if it
    /// has none (see the module docs).
    pub fn key_of(&self, args: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(args).ok()?;
        let mut at = &v;
        for f in &self.fields {
            at = at.as_object()?.get(f)?;
        }
        let key = match at {
            serde_json::Value::Null => return None,
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        (!key.is_empty()).then_some(key)
    }
}

impl fmt::Display for RateKeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "args.{}", self.fields.join("."))
    }
}

impl FromStr for RateKeyPath {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RateKeyPath::parse("rate_key", s)
    }
}

impl Serialize for RateKeyPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateKeyPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RateKeyPath::parse("rate_key", &s).map_err(|e| serde::de::Error::custom(e.problem))
    }
}

/// Checks a rate key given at enqueue: 1 to 512 bytes. `field` names it.
pub fn check_rate_key(field: &str, key: &str) -> Result<(), InvalidInput> {
    if key.is_empty() || key.len() > MAX_RATE_KEY_LEN {
        return Err(InvalidInput::new(
            field,
            format!(
                "a key of {} bytes is not accepted; a rate key is 1 to {MAX_RATE_KEY_LEN} bytes \
                 (leave it out for the queue's rate_key path or the shared \"no key\" window)",
                key.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_refuse_with_the_reason() {
        let p = RateKeyPath::parse("rate_key", "args.a_b.c-d").unwrap();
        assert_eq!(p.fields(), ["a_b", "c-d"]);
        for (bad, why) in [
            ("api", "does not start with \"args.\""),
            ("args.", "field \"\""),
            ("args.a..b", "field \"\""),
            ("args.0", "field \"0\""),
            ("args.a b", "field \"a b\""),
            ("args.a.b.c.d.e.f.g.h.i", "more than 8 fields"),
        ] {
            let e = RateKeyPath::parse("--rate-key", bad).unwrap_err();
            assert_eq!(e.field, "--rate-key");
            assert!(e.problem.contains(why), "{bad}: {e}");
            assert!(e.problem.contains("e.g. \"args.api\""), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_are_found_and_stringified() {
        let p = RateKeyPath::parse("rate_key", "args.api").unwrap();
        for (args, key) in [
            (r#"{"api": "openai"}"#, Some("openai")),
            (r#"{"api": 7}"#, Some("7")),
            (r#"{"api": true}"#, Some("true")),
            (r#"{"api": null}"#, None),
            (r#"{"api": ""}"#, None),
            (r#"{"other": 1}"#, None),
            (r#"[1, 2]"#, None),
            (r#""api""#, None),
        ] {
            assert_eq!(p.key_of(args).as_deref(), key, "{args}");
        }
        assert!(check_rate_key("rate_key", "").is_err());
        assert!(check_rate_key("rate_key", &"k".repeat(513)).is_err());
        assert!(check_rate_key("rate_key", "tenant:42").is_ok());
    }
}
