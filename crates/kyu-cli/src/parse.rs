//! Parsers for command-line values, with errors that say what is accepted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kyu::{JobState, RetryPolicy};

/// Where `kyu serve` and `kyu worker` listen for HTTP (`/metrics`,
/// `/healthz`, `/readyz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// No listener.
    Off,
    /// This address.
    At(std::net::SocketAddr),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::At(a) => write!(f, "{a}"),
        }
    }
}

/// `IP:PORT` (e.g. `127.0.0.1:7070`, `0.0.0.0:7070`, `[::1]:7070`) or `off`.
pub fn listen(s: &str) -> Result<Listen, String> {
    if s.trim() == "off" {
        return Ok(Listen::Off);
    }
    s.trim().parse().map(Listen::At).map_err(|_| {
        format!(
            "{s:?} is not a listen address; accepted: IP:PORT, e.g. 127.0.0.1:7070, \
             0.0.0.0:7070 or [::1]:7070, or off"
        )
    })
}

/// The base address of kyu's HTTP API for command jobs (`KYU_API_URL`):
/// `http://HOST:PORT` or `https://HOST[:PORT][/PREFIX]`, without a trailing
/// slash (one is dropped).
pub fn api_url(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !t.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Ok(t.to_string())
        }
        _ => Err(format!(
            "{s:?} is not an API address; accepted: http://HOST:PORT or https://HOST[:PORT][/PREFIX], \
             e.g. http://127.0.0.1:7070 (the kyu serve command jobs report to)"
        )),
    }
}

/// `30s`, `5m`, `1h 30m`, `250ms`, `2days`.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| {
        format!("{s:?} is not a duration ({e}); accepted: a number with a unit, e.g. 250ms, 30s, 5m, 1h, 2days")
    })
}

/// A number of attempts: a whole number from 1. (A negative number reaches
/// this parser, so that the error names it, rather than clap taking it for a flag.)
pub fn attempts(s: &str) -> Result<u32, String> {
    s.parse::<u32>().map_err(|_| {
        format!("{s:?} is not a number of attempts; accepted: a whole number from 1 to 4294967295")
    })
}

/// An RFC 3339 time such as `2026-11-25T09:00:00Z` or `2026-11-25T18:00:00+09:00`.
pub fn time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{s:?} is not an RFC 3339 time ({e}); accepted: e.g. 2026-11-25T09:00:00Z or 2026-11-25T18:00:00+09:00")
        })
}

/// A state name (the seeds' words are accepted too).
pub fn state(s: &str) -> Result<JobState, String> {
    s.parse::<JobState>().map_err(|e| e.problem)
}

/// `exponential:INITIAL:CAP` or `fixed:DELAY`, e.g. `exponential:1s:16s`, `fixed:2s`.
pub fn retry(s: &str) -> Result<RetryPolicy, String> {
    let accepted = "accepted: exponential:INITIAL:CAP (e.g. exponential:1s:16s) or fixed:DELAY (e.g. fixed:2s)";
    let parts: Vec<&str> = s.split(':').collect();
    let policy = match parts.as_slice() {
        ["exponential", initial, cap] => {
            RetryPolicy::exponential(duration(initial)?, duration(cap)?)
        }
        ["fixed", delay] => RetryPolicy::fixed(duration(delay)?),
        _ => return Err(format!("{s:?} is not a retry policy; {accepted}")),
    };
    policy.validate().map_err(|e| e.problem)?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_errors_name_what_is_accepted() {
        assert_eq!(duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(duration("soon").unwrap_err().contains("accepted"));
        assert!(time("2026-11-25T09:00:00Z").is_ok());
        assert!(time("tomorrow").unwrap_err().contains("RFC 3339"));
        assert_eq!(
            retry("fixed:2s").unwrap(),
            RetryPolicy::fixed(Duration::from_secs(2))
        );
        assert!(retry("linear:1s")
            .unwrap_err()
            .contains("exponential:INITIAL:CAP"));
        assert!(retry("exponential:10s:1s").unwrap_err().contains("cap"));
        assert_eq!(state("pending").unwrap(), JobState::Available);
        assert_eq!(
            api_url("http://127.0.0.1:7070/").unwrap(),
            "http://127.0.0.1:7070"
        );
        assert_eq!(
            api_url("https://kyu.example/api").unwrap(),
            "https://kyu.example/api"
        );
        for bad in ["127.0.0.1:7070", "http://", "ftp://x", "http://a b"] {
            assert!(
                api_url(bad).unwrap_err().contains("accepted: http://"),
                "{bad}"
            );
        }
    }
}
