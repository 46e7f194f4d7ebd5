//! The one place names and durations are checked, shared by the library
//! ([`NewJob::validate`](crate::NewJob::validate), the worker's config), the
//! command line, kyu.toml and the HTTP API, so each refuses the same values
//! with the same words: the field, what was wrong, and what is accepted.
//!
//! ```
//! use std::time::Duration;
//! use kyu_core::validate;
//!
//! assert!(validate::queue_name("queue", "mail").is_ok());
//! let e = validate::queue_name("queue", "default ").unwrap_err();
//! assert_eq!(e.field, "queue");
//! assert!(e.problem.contains("leading or trailing"));
//! assert!(validate::lease("lease", Duration::ZERO).is_err());
//! assert!(validate::timeout("timeout", Duration::from_secs(30)).is_ok());
//! ```

use std::time::Duration;

use crate::InvalidInput;

/// Longest queue, kind or schedule name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// The shortest lease: a shorter one runs out before its first heartbeat can
/// reach the store, so every job would run twice.
pub const MIN_LEASE: Duration = Duration::from_secs(1);

/// Checks a name of kind `what` ("queue", "kind", …) given in `field`: 1 to
/// 128 bytes, no control characters, no leading or trailing whitespace (a
/// name that differs from another only by a space would never match it: a
/// job in `"default "` waits forever for a worker of `default`).
pub fn name(field: &str, what: &str, value: &str) -> Result<(), InvalidInput> {
    let accepted = format!(
        "a {what} name is 1 to {MAX_NAME_LEN} characters without control characters or \
         leading or trailing whitespace"
    );
    let problem = if value.is_empty() {
        "empty"
    } else if value.len() > MAX_NAME_LEN {
        "too long"
    } else if value.chars().any(char::is_control) {
        "it has a control character"
    } else if value.trim() != value {
        "it has leading or trailing whitespace"
    } else {
        return Ok(());
    };
    Err(InvalidInput::new(
        field,
        format!("{value:?} is not accepted ({problem}); accepted: {accepted}"),
    ))
}

/// Checks a queue name (see [`name`]).
pub fn queue_name(field: &str, value: &str) -> Result<(), InvalidInput> {
    name(field, "queue", value)
}

/// Checks a kind name (see [`name`]).
pub fn kind_name(field: &str, value: &str) -> Result<(), InvalidInput> {
    name(field, "kind", value)
}

/// Checks a lease length: at least [`MIN_LEASE`].
pub fn lease(field: &str, value: Duration) -> Result<(), InvalidInput> {
    if value < MIN_LEASE {
        return Err(InvalidInput::new(
            field,
            format!(
                "{} is not accepted; accepted: at least 1s (a lease shorter than that \
                 runs out before its heartbeat reaches the store), e.g. 30s",
                show(value)
            ),
        ));
    }
    Ok(())
}

/// Checks a time limit of one attempt: positive (no limit is "none", not 0).
pub fn timeout(field: &str, value: Duration) -> Result<(), InvalidInput> {
    positive(
        field,
        value,
        "a positive duration, e.g. 30s or 1h; for no time limit give none",
    )
}

/// Checks an interval something repeats at (heartbeat, poll): positive.
pub fn interval(field: &str, value: Duration) -> Result<(), InvalidInput> {
    positive(field, value, "a positive duration, e.g. 1s")
}

fn positive(field: &str, value: Duration, accepted: &str) -> Result<(), InvalidInput> {
    if value.is_zero() {
        return Err(InvalidInput::new(
            field,
            format!("0 is not accepted; accepted: {accepted}"),
        ));
    }
    Ok(())
}

/// `250ms`, `1.5s`: a duration as a user writes one.
fn show(d: Duration) -> String {
    if d.is_zero() {
        "0".into()
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_empty_padded_long_and_control_characters() {
        for bad in ["", " mail", "mail ", "ma\til", "\n", &"q".repeat(129)] {
            let e = queue_name("queue", bad).unwrap_err();
            assert_eq!(e.field, "queue");
            assert!(e.problem.contains("accepted: a queue name"), "{e}");
        }
        assert!(queue_name("queue", "my queue").is_ok());
        assert!(kind_name("kind", "send_email").is_ok());
        assert!(kind_name("kind", "send_email ")
            .unwrap_err()
            .problem
            .contains("a kind name"));
    }

    #[test]
    fn durations_refuse_zero_and_short_leases() {
        assert!(lease("lease", Duration::ZERO)
            .unwrap_err()
            .problem
            .starts_with("0 is not accepted"));
        assert!(lease("lease", Duration::from_millis(500))
            .unwrap_err()
            .problem
            .starts_with("500ms is not accepted"));
        assert!(lease("lease", MIN_LEASE).is_ok());
        assert_eq!(
            timeout("timeout", Duration::ZERO).unwrap_err().field,
            "timeout"
        );
        assert!(timeout("timeout", Duration::from_millis(1)).is_ok());
        assert!(interval("poll", Duration::ZERO).is_err());
    }
}
