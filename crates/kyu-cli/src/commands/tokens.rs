//! `kyu tokens create|ls|revoke`: the API tokens `kyu serve` accepts.

use clap::Subcommand;
use kyu::tokens::TokenSpec;
use kyu::{QueuePattern, Scope};

use super::{print_json, Ctx};
use crate::output::{opt_time, time, Table};
use crate::{CmdResult, Failure};

/// Token commands.
#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Make a token and print its secret, once (only its hash is stored).
    Create {
        /// Its name, unique (what `kyu tokens revoke` takes).
        #[arg(long)]
        name: String,
        /// What it may do (repeat): admin, operate, read, read_args, produce, work, metrics.
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// The only queues it may touch (repeat, or comma-separated), e.g.
        /// `tenant-a.*`; default every queue.
        #[arg(long = "queues", value_delimiter = ',', value_parser = parse_pattern)]
        queues: Vec<QueuePattern>,
        /// It stops working after this long, e.g. 90d; default never.
        #[arg(long, value_parser = crate::parse::duration)]
        expires: Option<std::time::Duration>,
    },
    /// List the tokens (names, scopes, queues, times; never secrets).
    Ls,
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's name.
        name: String,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse::<Scope>().map_err(|e| e.problem)
}

fn parse_pattern(s: &str) -> Result<QueuePattern, String> {
    s.parse::<QueuePattern>().map_err(|e| e.problem)
}

pub async fn run(ctx: &Ctx, cmd: TokensCommand) -> CmdResult {
    match cmd {
        TokensCommand::Create {
            name,
            scopes,
            queues,
            expires,
        } => {
            let kyu = ctx.connect().await?;
            let made = kyu
                .create_token(TokenSpec {
                    name,
                    scopes,
                    queues,
                    expires_in: expires,
                })
                .await?;
            if ctx.json {
                let mut v = serde_json::to_value(&made.record).unwrap_or_default();
                v["token"] = made.secret.clone().into();
                if let Some(o) = v.as_object_mut() {
                    o.remove("hash");
                }
                return print_json(&v);
            }
            println!("{}", made.secret);
            eprintln!(
                "token {:?} created; it is shown this once: store it now. Use it as `Authorization: Bearer TOKEN`.",
                made.record.name
            );
            Ok(())
        }
        TokensCommand::Ls => {
            let kyu = ctx.connect_existing().await?;
            let tokens = kyu.tokens().await?;
            if ctx.json {
                let rows: Vec<serde_json::Value> = tokens
                    .iter()
                    .map(|t| {
                        let mut v = serde_json::to_value(t).unwrap_or_default();
                        if let Some(o) = v.as_object_mut() {
                            o.remove("hash");
                        }
                        v
                    })
                    .collect();
                return print_json(&rows);
            }
            if tokens.is_empty() {
                println!("no tokens yet: `kyu serve` makes an admin token on first start, or `kyu tokens create --name NAME --scope read`");
                return Ok(());
            }
            let mut t = Table::new(&["NAME", "SCOPES", "QUEUES", "CREATED", "EXPIRES"]);
            for tok in tokens {
                t.row(vec![
                    tok.name,
                    tok.scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    if tok.queues.is_empty() {
                        "*".to_string()
                    } else {
                        tok.queues
                            .iter()
                            .map(|q| q.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                    time(&tok.created_at),
                    opt_time(&tok.expires_at),
                ]);
            }
            t.print();
            Ok(())
        }
        TokensCommand::Revoke { name } => {
            let kyu = ctx.connect_existing().await?;
            if !kyu.revoke_token(&name).await? {
                return Err(Failure::not_found(format!(
                    "no token named {name:?}; accepted: a name `kyu tokens ls` lists"
                )));
            }
            println!("token {name:?} revoked");
            Ok(())
        }
    }
}
