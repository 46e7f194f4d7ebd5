//! API tokens and per-database secrets: the `api_tokens` table (one row per
//! token, its secret's hash, scopes and queue patterns as text arrays) and
//! `secrets` (name → value, written once).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kyu_core::{InvalidInput, NewToken, StoreError, TokenRecord, TokenStore};
use sqlx::Row;

use crate::row::db;
use crate::PgStore;

const COLUMNS: &str = "name, hash, scopes, queues, created_at, expires_at";

fn token_from_row(r: &sqlx::postgres::PgRow) -> Result<TokenRecord, StoreError> {
    let parse =
        |e: InvalidInput| StoreError::Database(format!("a stored token is unreadable: {e}"));
    let scopes: Vec<String> = r.try_get(2).map_err(db)?;
    let queues: Vec<String> = r.try_get(3).map_err(db)?;
    Ok(TokenRecord {
        name: r.try_get(0).map_err(db)?,
        hash: r.try_get(1).map_err(db)?,
        scopes: scopes
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map_err(parse)?,
        queues: queues
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map_err(parse)?,
        created_at: r.try_get(4).map_err(db)?,
        expires_at: r.try_get::<Option<DateTime<Utc>>, _>(5).map_err(db)?,
    })
}

impl PgStore {
    /// Inserts `t` unless its name is taken (one statement, in `conn`).
    async fn insert_token(
        &self,
        conn: &mut sqlx::PgConnection,
        t: &NewToken,
    ) -> Result<bool, StoreError> {
        let schema = self.schema();
        let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
        let queues: Vec<&str> = t.queues.iter().map(|q| q.as_str()).collect();
        let n = sqlx::query(&format!(
            "INSERT INTO {schema}.api_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT DO NOTHING"
        ))
        .bind(&t.name)
        .bind(&t.hash)
        .bind(&scopes)
        .bind(&queues)
        .bind(self.now())
        .bind(t.expires_at)
        .execute(conn)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(n == 1)
    }
}

/// The tokens of a [`PgStore`].
#[async_trait]
impl TokenStore for PgStore {
    async fn create_token(&self, token: NewToken) -> Result<bool, StoreError> {
        self.limit(async {
            let mut conn = self.pool().acquire().await.map_err(db)?;
            self.insert_token(&mut conn, &token).await
        })
        .await
    }

    async fn create_first_token(&self, token: NewToken) -> Result<bool, StoreError> {
        self.limit(async {
            let schema = self.schema();
            let mut tx = self.pool().begin().await.map_err(db)?;
            // The lock makes "no token yet" and the insert one step: of two
            // first starts, the second waits and then sees the first's token.
            sqlx::query(&format!(
                "LOCK TABLE {schema}.api_tokens IN SHARE ROW EXCLUSIVE MODE"
            ))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let any: Option<i32> =
                sqlx::query_scalar(&format!("SELECT 1 FROM {schema}.api_tokens LIMIT 1"))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            if any.is_some() {
                return Ok(false);
            }
            let made = self.insert_token(&mut tx, &token).await?;
            tx.commit().await.map_err(db)?;
            Ok(made)
        })
        .await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.limit(async {
            let schema = self.schema();
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM {schema}.api_tokens WHERE hash = $1"
            ))
            .bind(hash)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?
            .as_ref()
            .map(token_from_row)
            .transpose()
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.limit(async {
            let schema = self.schema();
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM {schema}.api_tokens ORDER BY name"
            ))
            .fetch_all(self.pool())
            .await
            .map_err(db)?
            .iter()
            .map(token_from_row)
            .collect()
        })
        .await
    }

    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        self.limit(async {
            let schema = self.schema();
            let n = sqlx::query(&format!("DELETE FROM {schema}.api_tokens WHERE name = $1"))
                .bind(name)
                .execute(self.pool())
                .await
                .map_err(db)?
                .rows_affected();
            Ok(n == 1)
        })
        .await
    }

    async fn secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        self.limit(async {
            let schema = self.schema();
            // The no-op update makes RETURNING give the stored row when it exists.
            sqlx::query_scalar(&format!(
                "INSERT INTO {schema}.secrets (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = {schema}.secrets.value RETURNING value"
            ))
            .bind(name)
            .bind(candidate)
            .fetch_one(self.pool())
            .await
            .map_err(db)
        })
        .await
    }
}
