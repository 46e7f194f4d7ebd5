//! Test databases: a schema of its own for every test on one PostgreSQL
//! server, so tests run in parallel (and test runs side by side) without
//! seeing each other's jobs. kyu's own test suites use it, and so can an
//! application's tests (`kyu::testing` re-exports it).
//!
//! ```
//! let url = kyu_postgres::testing::with_fresh_schema("postgres://postgres@127.0.0.1/app_test", "signup");
//! assert!(url.starts_with("postgres://postgres@127.0.0.1/app_test?schema=signup_"));
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable naming the test server's database:
/// `KYU_TEST_POSTGRES_URL` (what kyu's CI sets).
pub const TEST_URL_VAR: &str = "KYU_TEST_POSTGRES_URL";

/// What [`test_url_or_local`] falls back to: the local server's `kyu_test`
/// database, as the README's "PostgreSQL tests" sets it up.
pub const LOCAL_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/kyu_test";

/// The test database named by [`TEST_URL_VAR`], if it is set (and not
/// empty): tests that run on every backend run on PostgreSQL only then.
pub fn test_url() -> Option<String> {
    std::env::var(TEST_URL_VAR).ok().filter(|u| !u.is_empty())
}

/// The test database named by [`TEST_URL_VAR`], else [`LOCAL_TEST_URL`]:
/// for tests that are about PostgreSQL and always need it.
pub fn test_url_or_local() -> String {
    test_url().unwrap_or_else(|| LOCAL_TEST_URL.to_string())
}

/// A schema name no other test uses, in this process or another:
/// `PREFIX_PID_N_NANOS`. `prefix` is a lowercase word of at most 16
/// characters (a schema name has at most 48, see
/// [`check_schema`](crate::check_schema)).
pub fn fresh_schema(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// `base` (a `postgres://` URL) with `schema=` set to a [`fresh_schema`]:
/// connecting creates the schema and kyu's tables in it.
pub fn with_fresh_schema(base: &str, prefix: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={}", fresh_schema(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_schemas_are_distinct_and_accepted() {
        let a = fresh_schema("t_sixteen_chars_");
        let b = fresh_schema("t_sixteen_chars_");
        assert_ne!(a, b);
        crate::check_schema(&a).expect("a fresh schema is a valid schema name");
        assert_eq!(
            with_fresh_schema("postgres://h/db?sslmode=disable", "x")
                .split_once("&schema=")
                .map(|(base, _)| base),
            Some("postgres://h/db?sslmode=disable")
        );
    }
}
