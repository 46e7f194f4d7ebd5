//! Database URLs: `postgres://user:password@host:port/database?param=value`.
//!
//! The libpq parameters sqlx understands (`application_name`, `options`, …)
//! pass through. The TLS ones (`sslmode`, `sslrootcert`, `sslcert`,
//! `sslkey`) are checked and settled as libpq reads them (see the `tls`
//! module). Two are kyu's own: `schema=NAME` chooses the schema kyu's tables
//! live in, and `migrate=false` stops connect from applying migrations (run
//! `kyu migrate` instead). Two bound the time a call may take, so that no
//! call waits forever on a network that stopped answering:
//! `connect_timeout=SECONDS` (libpq's) and `statement_timeout=TIME`
//! (PostgreSQL's setting, applied to every connection).

use std::str::FromStr;
use std::time::Duration;

use kyu_core::StoreError;
use sqlx::postgres::PgConnectOptions;

use crate::tls::TlsParams;

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// kyu's own parameters of a PostgreSQL URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlParams {
    /// `schema=NAME`, if given.
    pub schema: Option<String>,
    /// `migrate=true|false`, if given.
    pub migrate: Option<bool>,
    /// `connect_timeout=SECONDS` (libpq's parameter and unit), if given:
    /// how long making one connection may take. Default
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Option<Duration>,
    /// `statement_timeout=TIME` (PostgreSQL's setting: milliseconds, or a
    /// number with `ms`, `s`, `min` or `h`), if given. Set on every
    /// connection kyu makes; a store call that gets no answer within it
    /// plus [`CALL_GRACE`] fails and its connection is closed. Default
    /// [`DEFAULT_STATEMENT_TIMEOUT`].
    pub statement_timeout: Option<Duration>,
}

/// How long making one connection may take unless the URL says
/// `connect_timeout=SECONDS`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `statement_timeout` kyu sets unless the URL gives one.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a store call may take beyond `statement_timeout` before kyu gives
/// up on the connection (the server's own cancel, a clear error, normally
/// comes first).
pub const CALL_GRACE: Duration = Duration::from_secs(2);

/// The largest `connect_timeout` and `statement_timeout` accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// `connect_timeout=VALUE`: whole seconds, as libpq reads it, 1 to 3600.
fn parse_connect_timeout(v: &str) -> Result<Duration, String> {
    match v.parse::<u64>() {
        Ok(n) if n >= 1 && n <= MAX_TIMEOUT.as_secs() => Ok(Duration::from_secs(n)),
        _ => Err(format!(
            "connect_timeout parameter: {v:?} is not accepted; give a whole number of \
             seconds from 1 to 3600, e.g. connect_timeout=10 (kyu does not wait forever, \
             so 0 is refused)"
        )),
    }
}

/// `statement_timeout=VALUE`: milliseconds, or a number with `ms`, `s`,
/// `min` or `h`, as PostgreSQL reads it; from 1 ms to 1 h.
fn parse_statement_timeout(v: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "statement_timeout parameter: {v:?} is not accepted; give milliseconds or a \
             number with ms, s, min or h, from 1ms to 1h, e.g. statement_timeout=30s \
             (kyu does not wait forever, so 0 is refused)"
        )
    };
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let ms = match unit.trim() {
        "" | "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(bad)?;
    let d = Duration::from_millis(ms);
    if d.is_zero() || d > MAX_TIMEOUT {
        return Err(bad());
    }
    Ok(d)
}

/// Splits `url` into sqlx connect options and kyu's own parameters.
///
/// ```
/// let (_, kyu) = kyu_postgres::split_url("postgres://localhost/app?schema=jobs&migrate=false").unwrap();
/// assert_eq!(kyu.schema.as_deref(), Some("jobs"));
/// assert_eq!(kyu.migrate, Some(false));
/// assert!(kyu_postgres::split_url("mysql://localhost/app").is_err());
/// ```
pub fn split_url(url: &str) -> Result<(PgConnectOptions, UrlParams), StoreError> {
    let bad = |problem: String| StoreError::BadUrl {
        url: redact(url),
        problem,
    };
    if !is_postgres_url(url) {
        return Err(bad(
            "a PostgreSQL URL starts with postgres:// or postgresql://, e.g. \
             postgres://user@localhost:5432/app?schema=kyu"
                .into(),
        ));
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    check_database_named(base, query).map_err(bad)?;
    let mut params = UrlParams::default();
    let mut tls = TlsParams::default();
    let mut rest: Vec<&str> = Vec::new();
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("schema", v)) => {
                super::schema::check_schema(v)
                    .map_err(|e| bad(format!("schema parameter: {}", e.problem)))?;
                params.schema = Some(v.to_string());
            }
            Some(("migrate", v)) => {
                params.migrate = Some(match v {
                    "true" | "1" | "on" => true,
                    "false" | "0" | "off" => false,
                    other => {
                        return Err(bad(format!(
                            "migrate parameter: {other:?} is not accepted; give true or false"
                        )))
                    }
                });
            }
            Some(("connect_timeout", v)) => {
                params.connect_timeout = Some(parse_connect_timeout(v).map_err(bad)?);
            }
            Some(("statement_timeout", v)) => {
                params.statement_timeout = Some(parse_statement_timeout(v).map_err(bad)?);
            }
            Some((name, v)) => {
                if tls.take(name, v).map_err(bad)? {
                    rest.push(pair);
                }
            }
            None => rest.push(pair),
        }
    }
    let stripped = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let options = PgConnectOptions::from_str(&stripped).map_err(|e| bad(e.to_string()))?;
    let options = tls.apply(options).map_err(bad)?;
    Ok((options, params))
}

/// The rule: a URL must name its database, in the path
/// (`postgres://app@db/app`) or as `?dbname=app`. Without one, libpq's
/// default is a database named after the user, and kyu would create its
/// schema there without a word.
fn check_database_named(base: &str, query: Option<&str>) -> Result<(), String> {
    let after_scheme = base.split_once("://").map_or("", |(_, rest)| rest);
    let path = after_scheme.split_once('/').map_or("", |(_, p)| p);
    let in_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .any(|p| p.strip_prefix("dbname=").is_some_and(|v| !v.is_empty()));
    if path.is_empty() && !in_query {
        return Err(
            "the URL has no database name; kyu will not guess one (PostgreSQL \
                    would pick the one named after the user); accepted: \
                    postgres://USER@HOST:PORT/DATABASE, e.g. \
                    postgres://app@localhost:5432/app?schema=kyu"
                .into(),
        );
    }
    Ok(())
}

/// `url` with its password replaced by `***`, for logs and messages.
///
/// ```
/// assert_eq!(kyu_postgres::redact_url("postgres://app:s3cret@db/app"), "postgres://app:***@db/app");
/// ```
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parameter_is_taken_out() {
        let (o, p) = split_url("postgres://u@h:5433/db?schema=jobs&application_name=x").unwrap();
        assert_eq!(p.schema.as_deref(), Some("jobs"));
        assert_eq!(p.migrate, None);
        assert_eq!(o.get_port(), 5433);
        let (_, p) = split_url("postgresql://u@h/db").unwrap();
        assert_eq!(p, UrlParams::default());
        let e = split_url("postgres://h/db?migrate=maybe")
            .unwrap_err()
            .to_string();
        assert!(e.contains("true or false"), "{e}");
    }

    #[test]
    fn bad_urls_say_what_is_accepted() {
        let e = split_url("mysql://h/db").unwrap_err().to_string();
        assert!(e.contains("postgres://"), "{e}");
        let e = split_url("postgres://h/db?schema=Bad-Name")
            .unwrap_err()
            .to_string();
        assert!(e.contains("schema parameter"), "{e}");
        assert!(e.contains("lowercase"), "{e}");
    }

    #[test]
    fn a_url_without_a_database_name_is_refused() {
        for url in [
            "postgres://u@h:5432",
            "postgres://u@h:5432/",
            "postgresql://h/?schema=kyu",
        ] {
            let e = split_url(url).unwrap_err().to_string();
            assert!(e.contains("no database name"), "{url}: {e}");
        }
        assert!(split_url("postgres://u@h/app").is_ok());
        assert!(split_url("postgres://u@h?dbname=app").is_ok());
        assert!(split_url("postgres:///app?host=/var/run/postgresql").is_ok());
    }

    /// The URL's sslmode as sqlx will use it.
    fn mode_of(url: &str) -> &'static str {
        crate::tls::mode_name(split_url(url).unwrap().0.get_ssl_mode())
    }

    #[test]
    fn a_bad_sslmode_is_refused_naming_the_accepted_values() {
        let e = split_url("postgres://u:pw@h/db?sslmode=requre")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(r#"sslmode parameter: "requre" is not accepted"#),
            "{e}"
        );
        assert!(
            e.contains("disable, allow, prefer, require, verify-ca, verify-full"),
            "{e}"
        );
        assert!(!e.contains("pw@"), "{e}");
        assert!(matches!(
            split_url("postgres://h/db?sslmode=").unwrap_err(),
            StoreError::BadUrl { .. }
        ));
    }

    #[test]
    fn sslmode_is_read_as_libpq_reads_it() {
        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(mode_of(&format!("postgres://h/db?sslmode={mode}")), mode);
        }
        assert_eq!(mode_of("postgres://h/db?ssl-mode=require"), "require");
        // sqlx's allow never tries TLS; libpq's connects to a server that
        // requires it: prefer does both.
        assert_eq!(mode_of("postgres://h/db?sslmode=allow"), "prefer");
        if std::env::var_os("PGSSLMODE").is_none() {
            assert_eq!(mode_of("postgres://h/db"), "prefer", "libpq's default");
        }
    }

    #[test]
    fn sslrootcert_makes_require_check_the_ca_and_must_be_readable() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not read until a connection is made").unwrap();
        let ca = ca.display();
        assert_eq!(
            mode_of(&format!("postgres://h/db?sslmode=require&sslrootcert={ca}")),
            "verify-ca"
        );
        assert_eq!(
            mode_of(&format!(
                "postgres://h/db?sslrootcert={ca}&sslmode=verify-full"
            )),
            "verify-full"
        );
        let missing = dir.path().join("missing.pem");
        let e = split_url(&format!(
            "postgres://h/db?sslmode=verify-full&sslrootcert={}",
            missing.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(&format!(
                "sslrootcert={}: cannot read the file",
                missing.display()
            )),
            "{e}"
        );
        // Not used, not checked: disable never reads the file.
        assert!(split_url(&format!(
            "postgres://h/db?sslmode=disable&sslrootcert={}",
            missing.display()
        ))
        .is_ok());
    }

    #[test]
    fn sslrootcert_system_needs_verify_full() {
        assert_eq!(mode_of("postgres://h/db?sslrootcert=system"), "verify-full");
        assert_eq!(
            mode_of("postgres://h/db?sslrootcert=system&sslmode=verify-full"),
            "verify-full"
        );
        let e = split_url("postgres://h/db?sslrootcert=system&sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sslrootcert=system needs sslmode=verify-full"),
            "{e}"
        );
    }

    #[test]
    fn time_limits_are_read_and_bad_ones_refused() {
        let (_, p) = split_url("postgres://h/db?connect_timeout=5&statement_timeout=1500").unwrap();
        assert_eq!(p.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(p.statement_timeout, Some(Duration::from_millis(1500)));
        for (v, ms) in [
            ("250ms", 250),
            ("2s", 2000),
            ("1min", 60_000),
            ("1h", 3_600_000),
        ] {
            let (_, p) = split_url(&format!("postgres://h/db?statement_timeout={v}")).unwrap();
            assert_eq!(p.statement_timeout, Some(Duration::from_millis(ms)), "{v}");
        }
        for v in ["0", "-1", "soon", "2h", "", "1.5s", "5 days"] {
            let e = split_url(&format!("postgres://u:pw@h/db?statement_timeout={v}"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!(
                    "statement_timeout parameter: {v:?} is not accepted"
                )),
                "{e}"
            );
            assert!(e.contains("ms, s, min or h"), "{e}");
            assert!(!e.contains("pw@"), "{e}");
        }
        for v in ["0", "-1", "10s", "3601", ""] {
            let e = split_url(&format!("postgres://h/db?connect_timeout={v}"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("connect_timeout parameter: {v:?} is not accepted")),
                "{e}"
            );
            assert!(e.contains("whole number of seconds from 1 to 3600"), "{e}");
        }
        let (_, p) = split_url("postgres://h/db").unwrap();
        assert_eq!((p.connect_timeout, p.statement_timeout), (None, None));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        let e = split_url("postgres://u:secret@h/db?schema=X")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
