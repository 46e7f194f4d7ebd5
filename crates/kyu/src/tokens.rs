//! API tokens for `kyu serve` (see `kyu_core::tokens`): made here with a
//! random secret that is returned once and stored only as its SHA-256 hash.

use std::time::Duration;

use kyu_core::tokens::{NewToken, QueuePattern, Scope, TokenRecord};
use kyu_core::{validate, InvalidInput};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{Kyu, Result};

/// What every token's secret starts with, so one found in a log or a
/// repository is recognisable.
pub const TOKEN_PREFIX: &str = "kyu_";

/// A token to make with [`Kyu::create_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// Its unique name (what `kyu tokens revoke` takes).
    pub name: String,
    /// What it may do; at least one.
    pub scopes: Vec<Scope>,
    /// The queues it may touch; empty: every queue.
    pub queues: Vec<QueuePattern>,
    /// How long it works; `None`: until revoked.
    pub expires_in: Option<Duration>,
}

/// A token just made: its secret, shown this once, and what was stored.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    /// The bearer secret (`kyu_` and 64 hex digits, 256 random bits).
    pub secret: String,
    /// The stored record.
    pub record: TokenRecord,
}

/// The SHA-256 of a token's secret, lowercase hex: what the store keeps.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// `n` random bytes, lowercase hex, from the OS-seeded thread generator.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl TokenSpec {
    fn into_new(self, kyu: &Kyu) -> Result<(String, NewToken)> {
        validate::name("name", "token", &self.name)?;
        if self.scopes.is_empty() {
            return Err(InvalidInput::new(
                "scope",
                "a token needs at least one scope; accepted: admin, operate, read, read_args, produce, work, metrics",
            )
            .into());
        }
        let secret = format!("{TOKEN_PREFIX}{}", random_hex(32));
        let now = kyu.store().clock().now();
        let expires_at = match self.expires_in {
            None => None,
            Some(d) => Some(
                chrono::Duration::from_std(d)
                    .ok()
                    .and_then(|d| now.checked_add_signed(d))
                    .ok_or_else(|| {
                        InvalidInput::new(
                            "expires",
                            "too far in the future; accepted: up to 100 years",
                        )
                    })?,
            ),
        };
        let mut scopes = self.scopes;
        scopes.sort();
        scopes.dedup();
        Ok((
            secret.clone(),
            NewToken {
                name: self.name,
                hash: token_hash(&secret),
                scopes,
                queues: self.queues,
                expires_at,
            },
        ))
    }
}

/// API tokens.
impl Kyu {
    /// Makes a token; its secret is in the reply and nowhere else.
    /// [`Error::TokenNameTaken`](crate::Error::TokenNameTaken) if a token has this name.
    pub async fn create_token(&self, spec: TokenSpec) -> Result<CreatedToken> {
        let (secret, new) = spec.into_new(self)?;
        let name = new.name.clone();
        if !self.store().create_token(new).await? {
            return Err(crate::Error::TokenNameTaken(name));
        }
        self.stored_token(secret).await
    }

    /// Makes the admin token named `admin` if the database has no token at
    /// all (a first `kyu serve`); `None` if it has one.
    pub async fn create_first_token(&self) -> Result<Option<CreatedToken>> {
        let (secret, new) = TokenSpec {
            name: "admin".into(),
            scopes: vec![Scope::Admin],
            queues: Vec::new(),
            expires_in: None,
        }
        .into_new(self)?;
        if !self.store().create_first_token(new).await? {
            return Ok(None);
        }
        self.stored_token(secret).await.map(Some)
    }

    async fn stored_token(&self, secret: String) -> Result<CreatedToken> {
        let record = self
            .store()
            .token_by_hash(&token_hash(&secret))
            .await?
            .ok_or_else(|| {
                crate::Error::Store(kyu_core::StoreError::Database(
                    "a token just stored could not be read back".into(),
                ))
            })?;
        Ok(CreatedToken { secret, record })
    }

    /// The token whose secret is `secret`, if it exists and has not expired.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<TokenRecord>> {
        let found = self.store().token_by_hash(&token_hash(secret)).await?;
        let now = self.store().clock().now();
        Ok(found.filter(|t| !t.expired(now)))
    }

    /// Every token (without secrets), by name.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        Ok(self.store().list_tokens().await?)
    }

    /// Revokes (deletes) the token `name`; false if there is none.
    pub async fn revoke_token(&self, name: &str) -> Result<bool> {
        Ok(self.store().revoke_token(name).await?)
    }

    /// The database's secret `name` (64 hex digits), made on first use and
    /// the same for every process sharing the database afterwards.
    pub async fn secret(&self, name: &str) -> Result<String> {
        Ok(self.store().secret(name, &random_hex(32)).await?)
    }
}
