//! One module per command group.

pub mod enqueue;
pub mod jobs;
pub mod queues;

use anyhow::Context;
use kyu::Kyu;

use crate::Failure;

/// What every command gets: the global options.
pub struct Ctx {
    /// The database URL.
    pub database: String,
    /// Print JSON instead of tables.
    pub json: bool,
}

impl Ctx {
    /// Opens the database (creating it on first use).
    pub async fn connect(&self) -> Result<Kyu, Failure> {
        let kyu = Kyu::connect(&self.database).await;
        match kyu {
            Ok(k) => Ok(k),
            Err(e @ kyu::Error::Store(kyu::StoreError::BadUrl { .. })) => Err(e.into()),
            Err(e) => Err(Failure::from(
                anyhow::Error::from(e)
                    .context(format!("could not open the database {}", self.database)),
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
