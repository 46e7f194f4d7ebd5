//! One module per command group.

pub mod batches;
pub mod config;
pub mod enqueue;
pub mod enqueue_jsonl;
pub mod events;
pub mod jobs;
pub mod migrate;
pub mod progress;
pub mod queues;
pub mod schedules;
pub mod serve;
pub mod tokens;

use std::path::{Path, PathBuf};

use anyhow::Context;
use kyu::Kyu;

use crate::config::Config;
use crate::Failure;

/// What every command gets: the global options, and the config file.
pub struct Ctx {
    /// `--database` or `KYU_DATABASE_URL`.
    database_flag: Option<String>,
    /// `--config` or `KYU_CONFIG`.
    config_flag: Option<PathBuf>,
    /// Print JSON instead of tables.
    pub json: bool,
}

impl Ctx {
    /// The global options as given.
    pub fn new(database: Option<String>, config: Option<PathBuf>, json: bool) -> Ctx {
        Ctx {
            database_flag: database,
            config_flag: config,
            json,
        }
    }

    /// The config file and its directory: `--config` (which must exist), else
    /// `./kyu.toml` if it exists, else none.
    pub fn config(&self) -> Result<Option<(Config, PathBuf)>, Failure> {
        let path = match &self.config_flag {
            Some(p) => p.clone(),
            None => {
                let p = PathBuf::from("kyu.toml");
                if !p.exists() {
                    return Ok(None);
                }
                p
            }
        };
        let config = Config::load(&path).map_err(Failure::invalid)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Some((config, dir)))
    }

    /// The database URL: flag, then environment, then kyu.toml, then the
    /// default; a SQLite path made absolute by the rule of [`crate::database`]
    /// (kyu.toml's relative to the file, the flag's to the current directory).
    pub fn database(&self) -> Result<String, Failure> {
        if let Some((url, _)) = self.named_database()? {
            return Ok(url);
        }
        Ok(match self.config()? {
            Some((_, dir)) => crate::database::absolute(crate::DEFAULT_DATABASE, &dir),
            None => crate::database::absolute(crate::DEFAULT_DATABASE, Path::new(".")),
        })
    }

    /// The database URL someone chose (flag, environment or kyu.toml, made
    /// absolute as in [`Ctx::database`]) and where it was chosen, or `None`
    /// when only the default applies: `kyu bench` measures a database that
    /// was named and makes its own otherwise.
    pub fn named_database(&self) -> Result<Option<(String, String)>, Failure> {
        if let Some(d) = &self.database_flag {
            let url = crate::database::absolute(d, Path::new("."));
            return Ok(Some((url, "--database or KYU_DATABASE_URL".into())));
        }
        Ok(match self.config()? {
            Some((c, dir)) => c.database.as_deref().map(|d| {
                let from = match &self.config_flag {
                    Some(p) => format!("`database` in {}", p.display()),
                    None => "`database` in ./kyu.toml".to_string(),
                };
                (crate::database::absolute(d, &dir), from)
            }),
            None => None,
        })
    }

    /// Opens the database (creating it on first use): for commands that
    /// write something new (enqueue, schedules add, serve, …).
    pub async fn connect(&self) -> Result<Kyu, Failure> {
        let url = self.database()?;
        self.open(&url).await
    }

    /// Opens the database only if it exists: for commands that read or act
    /// on what is there (`jobs ls`, `queues ls`, …), which must not leave an
    /// empty database behind when pointed at the wrong place.
    pub async fn connect_existing(&self) -> Result<Kyu, Failure> {
        let url = self.database()?;
        if let Some(file) = crate::database::sqlite_file(&url) {
            if !file.exists() {
                return Err(anyhow::anyhow!(
                    "no kyu database at {}; it is made by `kyu serve`, `kyu enqueue` or \
                     `kyu schedules add`; choose another with --database, KYU_DATABASE_URL \
                     or `database` in kyu.toml",
                    file.display()
                )
                .into());
            }
        }
        self.open(&url).await
    }

    async fn open(&self, url: &str) -> Result<Kyu, Failure> {
        let url = url.to_string();
        let kyu = Kyu::connect(&url).await;
        match kyu {
            Ok(k) => Ok(k),
            Err(e @ kyu::Error::Store(kyu::StoreError::BadUrl { .. })) => Err(e.into()),
            // The PostgreSQL store's message already names the server.
            Err(e) if kyu::postgres::is_postgres_url(&url) => Err(e.into()),
            Err(e) => Err(Failure::from(
                anyhow::Error::from(e).context(format!("could not open the database {url}")),
            )),
        }
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).context("could not print JSON")?;
    println!("{text}");
    Ok(())
}

/// The job options `kyu enqueue` and `kyu schedules add` share. Each one not
/// given falls back to the kind's setting in kyu.toml, then the default.
#[derive(clap::Args, Debug)]
pub struct JobFlags {
    /// The queue [default: the kind's queue in kyu.toml, else "default"]
    #[arg(long, short)]
    queue: Option<String>,
    /// Lower runs first [default: the kind's in kyu.toml, else 0]
    #[arg(long, short, allow_negative_numbers = true)]
    priority: Option<i32>,
    /// Attempts before the job fails for good [default: the kind's in kyu.toml, else 5]
    #[arg(long, allow_negative_numbers = true, value_parser = crate::parse::attempts)]
    max_attempts: Option<u32>,
    /// Retry policy: exponential:INITIAL:CAP or fixed:DELAY
    /// [default: the kind's in kyu.toml, else exponential:1s:16s]
    #[arg(long, value_parser = crate::parse::retry)]
    retry: Option<kyu::RetryPolicy>,
    /// Fail an attempt that runs longer than this, e.g. 5m.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::parse::duration)]
    timeout: Option<std::time::Duration>,
    /// A tag to filter by later (repeat for more).
    #[arg(long = "tag", short = 't')]
    tags: Vec<String>,
}

impl JobFlags {
    /// A job of `kind` with `args`: the kind's kyu.toml defaults, then these flags.
    pub fn build(self, ctx: &Ctx, kind: &str, args: String) -> Result<kyu::NewJob, Failure> {
        let mut job = kyu::NewJob::from_json_text(kind, args);
        if let Some((config, _)) = ctx.config()? {
            job = config.apply_kind_defaults(kind, job);
        }
        if let Some(q) = self.queue {
            job = job.queue(q);
        }
        if let Some(p) = self.priority {
            job = job.priority(p);
        }
        if let Some(n) = self.max_attempts {
            job = job.max_attempts(n);
        }
        if let Some(r) = self.retry {
            job = job.retry(r);
        }
        if let Some(t) = self.timeout {
            job = job.timeout(t);
        }
        for t in self.tags {
            job = job.tag(t);
        }
        Ok(job)
    }
}
