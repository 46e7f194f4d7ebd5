//! Where the database lives: parsing `sqlite://…` URLs and plain paths.

use std::path::PathBuf;

use kyu_core::StoreError;

/// What a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A database file (created on first use, with its parent directories).
    File(PathBuf),
    /// A private in-memory database that lives as long as the store (tests).
    Memory,
}

const ACCEPTED: &str = "accepted: sqlite://relative/path.db, sqlite:///absolute/path.db, \
                        a plain file path, or sqlite::memory:, optionally followed by \
                        ?synchronous=normal or ?synchronous=full";

/// Splits the one URL parameter kyu understands, `synchronous=normal|full`,
/// off a database URL. Returns the URL without it and the setting, if given.
///
/// ```
/// use kyu_sqlite::{split_params, Synchronous};
/// assert_eq!(split_params("sqlite://kyu.db?synchronous=full").unwrap(), ("sqlite://kyu.db", Some(Synchronous::Full)));
/// assert_eq!(split_params("sqlite://kyu.db").unwrap(), ("sqlite://kyu.db", None));
/// assert!(split_params("sqlite://kyu.db?mode=ro").is_err());
/// ```
pub fn split_params(url: &str) -> Result<(&str, Option<crate::Synchronous>), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url, None));
    };
    let mut sync = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        sync = Some(match pair.to_ascii_lowercase().as_str() {
            "synchronous=normal" => crate::Synchronous::Normal,
            "synchronous=full" => crate::Synchronous::Full,
            _ => {
                return Err(StoreError::BadUrl {
                    url: url.to_string(),
                    problem: format!(
                        "the parameter {pair:?} is not accepted; accepted: synchronous=normal or synchronous=full"
                    ),
                })
            }
        });
    }
    Ok((base, sync))
}

/// Parses a database URL or path.
///
/// Accepted forms:
/// - `sqlite://relative/path.db` (relative to the current directory),
/// - `sqlite:///absolute/path.db`,
/// - `sqlite:path.db`,
/// - a plain path such as `kyu.db` or `/var/lib/kyu/kyu.db`,
/// - `sqlite::memory:` or `:memory:` for a private in-memory database.
///
/// ```
/// use kyu_sqlite::{parse_location, Location};
/// assert_eq!(parse_location("sqlite:///var/kyu.db").unwrap(), Location::File("/var/kyu.db".into()));
/// assert_eq!(parse_location("sqlite://data/kyu.db").unwrap(), Location::File("data/kyu.db".into()));
/// assert_eq!(parse_location("sqlite::memory:").unwrap(), Location::Memory);
/// assert!(parse_location("postgres://localhost/kyu").is_err());
/// ```
pub fn parse_location(url: &str) -> Result<Location, StoreError> {
    let bad = |problem: String| StoreError::BadUrl {
        url: url.to_string(),
        problem,
    };
    let trimmed = url.trim();
    if trimmed.is_empty() {
        return Err(bad(format!("the URL is empty; {ACCEPTED}")));
    }
    if matches!(
        trimmed,
        ":memory:" | "sqlite::memory:" | "sqlite://:memory:" | "sqlite:memory:"
    ) {
        return Ok(Location::Memory);
    }
    let path = if let Some(rest) = trimmed.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = trimmed.strip_prefix("sqlite:") {
        rest
    } else if let Some((scheme, _)) = trimmed.split_once("://") {
        return Err(bad(format!(
            "the scheme {scheme:?} is not a SQLite URL; {ACCEPTED}"
        )));
    } else {
        trimmed
    };
    if path.is_empty() {
        return Err(bad(format!("the URL names no file; {ACCEPTED}")));
    }
    if path.contains('?') {
        return Err(bad(format!(
            "query parameters are not accepted (set options with SqliteOptions); {ACCEPTED}"
        )));
    }
    if path.ends_with('/') {
        return Err(bad(format!(
            "{path:?} is a directory, not a database file; {ACCEPTED}"
        )));
    }
    Ok(Location::File(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            parse_location("sqlite://a/b.db").unwrap(),
            Location::File("a/b.db".into())
        );
        assert_eq!(
            parse_location("sqlite:///a/b.db").unwrap(),
            Location::File("/a/b.db".into())
        );
        assert_eq!(
            parse_location("sqlite:b.db").unwrap(),
            Location::File("b.db".into())
        );
        assert_eq!(
            parse_location("/x/y.db").unwrap(),
            Location::File("/x/y.db".into())
        );
        assert_eq!(parse_location(":memory:").unwrap(), Location::Memory);
    }

    #[test]
    fn bad_urls_name_the_value_and_what_is_accepted() {
        for u in [
            "mysql://h/db",
            "",
            "sqlite://",
            "sqlite://a.db?mode=ro",
            "sqlite://dir/",
        ] {
            let e = parse_location(u).unwrap_err().to_string();
            assert!(e.contains("accepted: sqlite://"), "{e}");
            assert!(e.contains(&format!("{u:?}")), "{e}");
        }
    }
}
