//! Which database a command opens.
//!
//! The rule: `--database` and `KYU_DATABASE_URL` are read against the current
//! directory; `database` in kyu.toml against the file's directory (as its
//! `command` and `cwd` are), and so is the default `kyu.db` when a config file
//! is used; with no config file the default is `./kyu.db`. A SQLite URL is
//! made absolute before use, so the start line names the file and command
//! jobs (which run elsewhere) open the same one.

use std::path::{Component, Path, PathBuf};

/// The path part of a SQLite URL (`sqlite://PATH` or `sqlite:PATH`) and its
/// `?query`, or `None` for other URLs and in-memory databases.
fn sqlite_parts(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = match rest.find('?') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if path.is_empty() || path == ":memory:" || path == "memory:" {
        return None;
    }
    Some((path, query))
}

/// `p` without `.` components and with `dir/..` pairs folded, so the start
/// line reads `/srv/app/kyu.db`, not `/srv/app/./etc/../kyu.db`.
fn tidy(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// `url` with a relative SQLite file path made absolute against `base` (itself
/// taken against the current directory when relative); other URLs unchanged.
pub fn absolute(url: &str, base: &Path) -> String {
    let Some((path, query)) = sqlite_parts(url) else {
        return url.to_string();
    };
    let path = Path::new(path);
    if path.is_absolute() {
        return url.to_string();
    }
    let base = if base.is_absolute() {
        base.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(base),
            Err(_) => return url.to_string(),
        }
    };
    format!("sqlite://{}{query}", tidy(&base.join(path)).display())
}

/// The file a SQLite URL names, `None` for other URLs and in-memory databases.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    sqlite_parts(url).map(|(p, _)| PathBuf::from(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_paths_become_absolute_against_the_base() {
        let base = Path::new("/srv/app/etc");
        assert_eq!(
            absolute("sqlite://data/kyu.db", base),
            "sqlite:///srv/app/etc/data/kyu.db"
        );
        assert_eq!(
            absolute("sqlite:../kyu.db?synchronous=full", base),
            "sqlite:///srv/app/kyu.db?synchronous=full"
        );
        assert_eq!(
            absolute("sqlite:///var/kyu.db", base),
            "sqlite:///var/kyu.db"
        );
        assert_eq!(absolute("sqlite::memory:", base), "sqlite::memory:");
        assert_eq!(absolute("postgres://u@h/db", base), "postgres://u@h/db");
        assert_eq!(
            sqlite_file("sqlite:///a/b.db?synchronous=full"),
            Some(PathBuf::from("/a/b.db"))
        );
    }
}
