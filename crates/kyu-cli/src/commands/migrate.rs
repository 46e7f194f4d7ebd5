//! `kyu migrate`: bring the database's kyu schema up to date.
//!
//! Every kyu process migrates on connect, so this is for deployments that
//! connect with `?migrate=false` (the application's role may not create
//! tables) and migrate once, as a release step, with a role that can.

use super::{print_json, Ctx};
use crate::{CmdResult, Failure};

/// Arguments of `kyu migrate`.
#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// The PostgreSQL schema [default: the URL's `schema=` parameter, else "kyu"]
    #[arg(long)]
    schema: Option<String>,
}

pub async fn run(ctx: &Ctx, args: MigrateArgs) -> CmdResult {
    let url = ctx.database()?;
    if kyu::postgres::is_postgres_url(&url) {
        let applied = kyu::postgres::PgStore::migrate(&url, args.schema.as_deref())
            .await
            .map_err(kyu::Error::from)?;
        let schema = match &args.schema {
            Some(s) => s.clone(),
            None => kyu::postgres::split_url(&url)
                .map_err(kyu::Error::from)?
                .1
                .schema
                .unwrap_or_else(|| kyu::postgres::DEFAULT_SCHEMA.to_string()),
        };
        let latest = kyu::postgres::latest_version();
        if ctx.json {
            return print_json(&serde_json::json!({
                "backend": "postgres", "schema": schema, "applied": applied, "version": latest,
            }));
        }
        if applied.is_empty() {
            println!("schema {schema} is up to date (version {latest})");
        } else {
            let list: Vec<String> = applied.iter().map(|v| v.to_string()).collect();
            println!(
                "schema {schema}: applied migration{} {}; now at version {latest}",
                if applied.len() == 1 { "" } else { "s" },
                list.join(", ")
            );
        }
        return Ok(());
    }
    if args.schema.is_some() {
        return Err(Failure::invalid(
            "--schema applies to PostgreSQL only; a SQLite database has no schemas",
        ));
    }
    // SQLite migrates whenever it is opened.
    ctx.connect().await?;
    if ctx.json {
        return print_json(&serde_json::json!({ "backend": "sqlite", "database": url }));
    }
    println!("{url} is up to date");
    Ok(())
}
