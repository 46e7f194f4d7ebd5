//! API tokens and per-database secrets: the `api_tokens` table (one row per
//! token, its secret's hash, scopes and queue patterns as JSON text) and
//! `secrets` (name → value, written once).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::{NewToken, StoreError, TokenRecord, TokenStore};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::row::{db, from_us, parse_json, us};
use crate::{never, SqliteStore};

/// Migration 5: the tokens and the secrets.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE api_tokens (
    name       TEXT    PRIMARY KEY,
    hash       TEXT    NOT NULL UNIQUE,
    scopes     TEXT    NOT NULL,
    queues     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
) WITHOUT ROWID;
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#;

const COLUMNS: &str = "name, hash, scopes, queues, created_at, expires_at";

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        name: r.get(0)?,
        hash: r.get(1)?,
        scopes: parse_json(2, &r.get::<_, String>(2)?)?,
        queues: parse_json(3, &r.get::<_, String>(3)?)?,
        created_at: from_us(r.get(4)?),
        expires_at: r.get::<_, Option<i64>>(5)?.map(from_us),
    })
}

/// Inserts `t` unless its name is taken, or (`only_first`) any token exists.
fn insert(
    conn: &Connection,
    now: DateTime<Utc>,
    t: &NewToken,
    only_first: bool,
) -> Result<bool, StoreError> {
    let scopes = serde_json::to_string(&t.scopes).map_err(StoreError::database)?;
    let queues = serde_json::to_string(&t.queues).map_err(StoreError::database)?;
    let guard = if only_first {
        " AND NOT EXISTS (SELECT 1 FROM api_tokens)"
    } else {
        ""
    };
    let n = conn
        .prepare(&format!(
            "INSERT INTO api_tokens ({COLUMNS}) SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE 1 = 1{guard} \
             ON CONFLICT DO NOTHING"
        ))
        .and_then(|mut s| {
            s.execute(params![
                t.name,
                t.hash,
                scopes,
                queues,
                us(now),
                t.expires_at.map(us)
            ])
        })
        .map_err(db)?;
    Ok(n == 1)
}

fn by_hash(conn: &Connection, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_tokens WHERE hash = ?1"))
        .and_then(|mut s| s.query_row([hash], token_from_row).optional())
        .map_err(db)
}

fn list(conn: &Connection) -> Result<Vec<TokenRecord>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY name"))
        .and_then(|mut s| s.query_map([], token_from_row)?.collect())
        .map_err(db)
}

fn revoke(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("DELETE FROM api_tokens WHERE name = ?1")
        .and_then(|mut s| s.execute([name]))
        .map(|n| n == 1)
        .map_err(db)
}

fn secret(conn: &Connection, name: &str, candidate: &str) -> Result<String, StoreError> {
    conn.prepare_cached("INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
        .and_then(|mut s| s.execute([name, candidate]))
        .map_err(db)?;
    conn.prepare_cached("SELECT value FROM secrets WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)))
        .map_err(db)
}

/// The tokens of a [`SqliteStore`]: writes in the group commit, reads on a reader.
#[async_trait]
impl TokenStore for SqliteStore {
    async fn create_token(&self, token: NewToken) -> Result<bool, StoreError> {
        let now = self.now_fn().now();
        self.write(never, move |c| insert(c, now, &token, false))
            .await
    }

    async fn create_first_token(&self, token: NewToken) -> Result<bool, StoreError> {
        let now = self.now_fn().now();
        self.write(never, move |c| insert(c, now, &token, true))
            .await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let hash = hash.to_string();
        self.read(move |c| by_hash(c, &hash)).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(list).await
    }

    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(never, move |c| revoke(c, &name)).await
    }

    async fn secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let (name, candidate) = (name.to_string(), candidate.to_string());
        self.write(never, move |c| secret(c, &name, &candidate))
            .await
    }
}
