//! What `kyu bench` measures: the backend the database URL names
//! (`--database`, `KYU_DATABASE_URL`, kyu.toml's `database`), in a fresh
//! SQLite file beside the named one (the same disk) or a fresh schema of the
//! named PostgreSQL database, removed after each run; with no database named,
//! SQLite in a temporary directory. What it cannot measure it refuses
//! before writing anything.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kyu::postgres::sqlx::{self, Connection};
use serde_json::json;

use super::{name, BenchArgs, Via, Workload};
use crate::commands::Ctx;
use crate::Failure;

const ACCEPTED: &str = "accepted: sqlite://PATH (kyu bench makes a fresh database in PATH's \
directory, which must exist) or postgres://USER@HOST:PORT/DATABASE (it makes a fresh schema there)";

/// The backend and place every run is measured in.
pub(super) enum Target {
    Sqlite {
        /// Where each run's fresh directory goes.
        dir: PathBuf,
        /// The database that was named, if one was (never opened).
        beside: Option<PathBuf>,
        synchronous: String,
        /// Removes the temporary directory when no database was named.
        _temp: Option<TempDir>,
    },
    Postgres {
        /// The named URL without `schema=` and `migrate=`.
        base: String,
        /// Boxed: it is large, and the SQLite variant is the common one.
        options: Box<sqlx::postgres::PgConnectOptions>,
        server: Server,
    },
}

/// The PostgreSQL server's version and durability settings.
pub(super) struct Server {
    facts: serde_json::Map<String, serde_json::Value>,
    /// `SHOW data_directory`, when this role may read it.
    data_directory: Option<PathBuf>,
}

impl Server {
    /// A fact as text (`?` when missing); `server_version` without its
    /// packager's note ("15.20 (Debian …)" reads "15.20").
    fn get(&self, key: &str) -> String {
        let text = match self.facts.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "?".into(),
        };
        match key {
            "server_version" => text.split_whitespace().next().unwrap_or("?").to_string(),
            _ => text,
        }
    }
}

/// One run's database: its URL, its facts, and how to remove it.
pub(super) struct Fresh {
    pub url: String,
    /// The run's `store` facts (the file or schema it used).
    pub store: serde_json::Value,
    /// SQLite: the run's own directory, removed with whatever the store made
    /// in it (the file, its -wal and -shm, its wake-up sockets).
    dir: Option<PathBuf>,
    schema: Option<(sqlx::postgres::PgConnectOptions, String)>,
}

impl Fresh {
    /// Removes the run's database: the SQLite directory or the PostgreSQL
    /// schema. A failure is only reported: the figures
    /// stand.
    pub async fn remove(mut self) {
        if let Some((options, schema)) = self.schema.take() {
            let result = async {
                let mut conn = sqlx::PgConnection::connect_with(&options).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn)
                    .await?;
                let _ = conn.close().await;
                anyhow::Ok(())
            }
            .await;
            if let Err(e) = result {
                eprintln!("warning: could not drop the bench schema {schema}: {e:#}");
            }
        }
        // The SQLite directory goes in Drop, which also runs on an error or
        // an interrupt.
    }
}

impl Fresh {
    /// After a preload, brings the database to the state of a store that has
    /// worked a while: on PostgreSQL, `VACUUM (ANALYZE)` of the jobs table
    /// and a `CHECKPOINT`. Without it a run right after a bulk preload
    /// measures autovacuum working through the preload's dead rows and a
    /// checkpoint flushing its WAL, which a store that reached that size
    /// over days has long since done. Outside the clock; SQLite needs none.
    /// Returns whether there was anything to do.
    pub async fn settle(&self) -> anyhow::Result<bool> {
        let Some((options, schema)) = &self.schema else {
            return Ok(false);
        };
        let mut conn = sqlx::PgConnection::connect_with(options).await?;
        sqlx::query(&format!("VACUUM (ANALYZE) {schema}.jobs"))
            .execute(&mut conn)
            .await
            .context("settling the preload: VACUUM (ANALYZE) of the jobs table")?;
        // CHECKPOINT needs a superuser or pg_checkpoint; without it the run
        // still stands, with a note.
        if let Err(e) = sqlx::query("CHECKPOINT").execute(&mut conn).await {
            eprintln!("note: no CHECKPOINT after the preload ({e}); the run may include one");
        }
        let _ = conn.close().await;
        Ok(true)
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Target {
    /// The target `kyu bench` was pointed at, checked and (PostgreSQL)
    /// connected to once for the server's settings.
    pub async fn resolve(ctx: &Ctx, a: &BenchArgs) -> Result<Target, Failure> {
        let named = match &a.postgres {
            Some(url) => {
                eprintln!(
                    "warning: --postgres is deprecated; use --database URL (or \
                     KYU_DATABASE_URL or `database` in kyu.toml): kyu bench measures \
                     the database it names"
                );
                Some((url.clone(), "--postgres".to_string()))
            }
            None => ctx.named_database()?,
        };
        let Some((url, from)) = named else {
            let synchronous = a.synchronous.clone().unwrap_or_else(|| "normal".into());
            return sqlite_in(a.dir.as_deref(), None, synchronous);
        };
        if a.postgres.is_some() && !kyu::postgres::is_postgres_url(&url) {
            return Err(Failure::invalid(format!(
                "--postgres takes a postgres:// URL, not {}; to measure another \
                 database, name it with --database; {ACCEPTED}",
                kyu::postgres::redact_url(&url)
            )));
        }
        if url.starts_with("sqlite:") {
            return sqlite(&url, &from, a);
        }
        if kyu::postgres::is_postgres_url(&url) {
            return postgres(&url, &from, a).await;
        }
        Err(Failure::invalid(format!(
            "kyu bench cannot measure {} (from {from}): unknown scheme; {ACCEPTED}",
            kyu::postgres::redact_url(&url)
        )))
    }

    /// The database of one run of one workload.
    pub fn fresh(&self, run: u32, w: Workload) -> anyhow::Result<Fresh> {
        let tag = format!("{}_{run}_{}", std::process::id(), name(w));
        match self {
            Target::Sqlite {
                dir, synchronous, ..
            } => {
                let run_dir = dir.join(format!("kyu-bench-{tag}"));
                std::fs::create_dir(&run_dir)
                    .with_context(|| format!("could not create {}", run_dir.display()))?;
                let file = run_dir.join("bench.db");
                Ok(Fresh {
                    url: format!("sqlite://{}?synchronous={synchronous}", file.display()),
                    store: json!({
                        "dir": dir.display().to_string(),
                        "file": format!("kyu-bench-{tag}/bench.db"),
                        "journal_mode": "wal", "synchronous": synchronous,
                    }),
                    dir: Some(run_dir),
                    schema: None,
                })
            }
            Target::Postgres {
                base,
                options,
                server,
            } => {
                let schema = format!("kyu_bench_{tag}");
                let sep = if base.contains('?') { '&' } else { '?' };
                let mut store = server.facts.clone();
                store.insert("schema".into(), schema.clone().into());
                Ok(Fresh {
                    url: format!("{base}{sep}schema={schema}"),
                    store: store.into(),
                    dir: None,
                    schema: Some((options.as_ref().clone(), schema)),
                })
            }
        }
    }

    /// The facts every run shares, for the summary line.
    pub fn store(&self) -> serde_json::Value {
        match self {
            Target::Sqlite {
                dir,
                beside,
                synchronous,
                ..
            } => json!({
                "dir": dir.display().to_string(),
                "beside": beside.as_ref().map(|b| b.display().to_string()),
                "journal_mode": "wal", "synchronous": synchronous,
            }),
            Target::Postgres { server, .. } => server.facts.clone().into(),
        }
    }

    /// The `backend:` line for people.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite {
                dir,
                beside,
                synchronous,
                _temp,
            } => {
                let place = match beside {
                    Some(b) => format!(
                        "a fresh database per run in {}, beside {}",
                        dir.display(),
                        b.file_name().unwrap_or_default().to_string_lossy()
                    ),
                    None if _temp.is_some() => format!(
                        "a fresh database per run in {} (no database named: a temporary directory)",
                        dir.display()
                    ),
                    None => format!("a fresh database per run in {}", dir.display()),
                };
                format!("sqlite ({place}; WAL, synchronous={synchronous})")
            }
            Target::Postgres { server, .. } => format!(
                "postgres {} at {}:{}/{} (a fresh schema kyu_bench_{}_* per run, dropped \
                 after; fsync={}, synchronous_commit={})",
                server.get("server_version"),
                server.get("host"),
                server.get("port"),
                server.get("database"),
                std::process::id(),
                server.get("fsync"),
                server.get("synchronous_commit"),
            ),
        }
    }

    /// The `settings` column: durability and worker shape.
    pub fn settings(&self, a: &BenchArgs) -> String {
        let store = match self {
            Target::Sqlite { synchronous, .. } => format!(
                "SQLite file, WAL, synchronous={}",
                synchronous.to_uppercase()
            ),
            Target::Postgres { server, .. } => format!(
                "PostgreSQL {} (fsync={}, synchronous_commit={})",
                server.get("server_version"),
                server.get("fsync"),
                server.get("synchronous_commit")
            ),
        };
        match a.via {
            Via::Library => format!(
                "{store}, lease 30s; worker concurrency {}, prefetch {}",
                a.concurrency, a.prefetch
            ),
            Via::Http => format!(
                "{store}, lease 30s; via kyu serve's HTTP API, remote worker claiming up to {} \
                 per long poll, {} claim loop(s)",
                a.http_batch, a.http_pollers
            ),
        }
    }

    /// The directory whose disk holds the data, for the fdatasync probe, or
    /// why it cannot be probed from here.
    pub fn disk(&self) -> Result<PathBuf, String> {
        match self {
            Target::Sqlite { dir, .. } => Ok(dir.clone()),
            Target::Postgres {
                options, server, ..
            } => {
                let host = options.get_host();
                let local =
                    matches!(host, "localhost" | "127.0.0.1" | "::1") || host.starts_with('/');
                match (&server.data_directory, local) {
                    (_, false) => Err(format!("the server {host} is not on this machine")),
                    (None, true) => Err("this role may not read data_directory".into()),
                    // Beside the data directory, as the peer harness does:
                    // the same disk, without writing into the cluster.
                    (Some(d), true) => Ok(d.parent().unwrap_or(d).to_path_buf()),
                }
            }
        }
    }
}

fn sqlite(url: &str, from: &str, a: &BenchArgs) -> Result<Target, Failure> {
    let Some(file) = crate::database::sqlite_file(url) else {
        return Err(Failure::invalid(format!(
            "kyu bench cannot measure {url} (from {from}): an in-memory database cannot \
             be shared by the producer and the worker, which are separate processes; {ACCEPTED}"
        )));
    };
    let mut synchronous = None;
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.to_ascii_lowercase().as_str() {
                "synchronous=normal" => synchronous = Some("normal"),
                "synchronous=full" => synchronous = Some("full"),
                _ => {
                    return Err(Failure::invalid(format!(
                        "kyu bench cannot measure {url} (from {from}): the parameter {pair:?} \
                         is not accepted; accepted: synchronous=normal or synchronous=full"
                    )))
                }
            }
        }
    }
    let dir = parent(&file);
    if a.dir.is_none() && !dir.is_dir() {
        return Err(Failure::invalid(format!(
            "kyu bench cannot measure {url} (from {from}): the directory {} does not exist, \
             and kyu bench makes its fresh database beside the named one; {ACCEPTED}",
            dir.display()
        )));
    }
    let synchronous = a
        .synchronous
        .clone()
        .or(synchronous.map(String::from))
        .unwrap_or_else(|| "normal".into());
    sqlite_in(a.dir.as_deref(), Some(file), synchronous)
}

/// SQLite in `--dir` (created if needed), else beside the named database,
/// else in a new temporary directory.
fn sqlite_in(
    flag: Option<&Path>,
    beside: Option<PathBuf>,
    synchronous: String,
) -> Result<Target, Failure> {
    let (dir, temp) = match (flag, &beside) {
        (Some(dir), _) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create {}", dir.display()))?;
            let abs = std::path::absolute(dir)
                .with_context(|| format!("could not resolve {}", dir.display()))?;
            (abs, None)
        }
        (None, Some(file)) => (parent(file), None),
        (None, None) => {
            let temp = TempDir::new()?;
            (temp.path.clone(), Some(temp))
        }
    };
    Ok(Target::Sqlite {
        dir,
        beside,
        synchronous,
        _temp: temp,
    })
}

fn parent(file: &Path) -> PathBuf {
    file.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

async fn postgres(url: &str, from: &str, a: &BenchArgs) -> Result<Target, Failure> {
    let shown = kyu::postgres::redact_url(url);
    for (flag, given) in [
        ("--synchronous", a.synchronous.is_some()),
        ("--dir", a.dir.is_some()),
    ] {
        if given {
            return Err(Failure::invalid(format!(
                "{flag} is a SQLite setting, but the database to measure is PostgreSQL \
                 ({shown}, from {from}); PostgreSQL's durability is the server's fsync and \
                 synchronous_commit; accepted: {flag} with a sqlite:// database"
            )));
        }
    }
    // A fresh schema per run: the URL's own schema is left alone, and its
    // migrate=false cannot apply to a schema that does not exist yet.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("schema=") && !p.starts_with("migrate="))
        .collect();
    let base = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let (options, _) =
        kyu::postgres::split_url(&base).map_err(|e| Failure::invalid(e.to_string()))?;
    let server = server(&options)
        .await
        .with_context(|| format!("could not connect to {shown} (from {from})"))?;
    Ok(Target::Postgres {
        base,
        options: Box::new(options),
        server,
    })
}

/// The settings the peer harness records (env.mjs), read once.
async fn server(options: &sqlx::postgres::PgConnectOptions) -> anyhow::Result<Server> {
    let mut conn = sqlx::PgConnection::connect_with(options).await?;
    let mut facts = serde_json::Map::new();
    facts.insert("host".into(), options.get_host().into());
    facts.insert("port".into(), options.get_port().into());
    facts.insert(
        "database".into(),
        options.get_database().unwrap_or("?").into(),
    );
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "full_page_writes",
        "shared_buffers",
        "max_wal_size",
    ] {
        let v: String = sqlx::query_scalar(&format!("SHOW {name}"))
            .fetch_one(&mut conn)
            .await?;
        facts.insert(name.into(), v.into());
    }
    let data_directory = sqlx::query_scalar::<_, String>("SHOW data_directory")
        .fetch_one(&mut conn)
        .await
        .ok()
        .map(PathBuf::from);
    let _ = conn.close().await;
    Ok(Server {
        facts,
        data_directory,
    })
}

/// A temporary directory, removed with everything in it when dropped.
pub(super) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(super) fn new() -> anyhow::Result<TempDir> {
        let path = std::env::temp_dir().join(format!(
            "kyu-bench-{}-{}",
            std::process::id(),
            super::mono_ns()
        ));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("could not create {}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl TempDir {
    /// The directory.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
