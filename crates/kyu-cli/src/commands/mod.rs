//! One module per command group.

pub mod config;
pub mod enqueue;
pub mod jobs;
pub mod progress;
pub mod queues;
pub mod schedules;
pub mod serve;

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

    /// The database URL: flag, then environment, then kyu.toml, then the default.
    pub fn database(&self) -> Result<String, Failure> {
        if let Some(d) = &self.database_flag {
            return Ok(d.clone());
        }
        Ok(self
            .config()?
            .and_then(|(c, _)| c.database)
            .unwrap_or_else(|| crate::DEFAULT_DATABASE.to_string()))
    }

    /// Opens the database (creating it on first use).
    pub async fn connect(&self) -> Result<Kyu, Failure> {
        let url = self.database()?;
        let kyu = Kyu::connect(&url).await;
        match kyu {
            Ok(k) => Ok(k),
            Err(e @ kyu::Error::Store(kyu::StoreError::BadUrl { .. })) => Err(e.into()),
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
