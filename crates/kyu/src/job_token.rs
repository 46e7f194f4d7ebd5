//! Job tokens: the bearer token a command job gets in `KYU_JOB_TOKEN`, good
//! for reporting on that one job (its progress, reading it) through the HTTP
//! API, and only while that attempt runs.
//!
//! A job token is `kyuj_<job id>_<attempt>_<HMAC>`: HMAC-SHA256 over the job
//! id and attempt, keyed by the database's secret `job_token`
//! ([`Kyu::secret`]: the same for every process on the database). Nothing
//! is written per attempt: the worker that starts a command signs its
//! (job, attempt), and any server on the database checks the signature and
//! then that the job is running that very attempt. Once the attempt ends
//! (finished, failed, retried, rescued after a lost lease, cancelled) the job
//! is no longer running it, so the token is refused from then on, with no
//! revocation to forget.
//!
//! ```
//! # async fn demo() -> Result<(), kyu::Error> {
//! let kyu = kyu::Kyu::connect("sqlite::memory:").await?;
//! let token = kyu.job_token(7, 2).await?;
//! assert!(token.starts_with(kyu::job_token::JOB_TOKEN_PREFIX));
//! let grant = kyu.job_grant(&token).await?.expect("signed by this database");
//! assert_eq!((grant.job, grant.attempt), (7, 2));
//! assert!(kyu.job_grant("kyuj_7_3_00").await?.is_none(), "another attempt, a wrong signature");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use hmac::{Hmac, Mac};
use kyu_core::JobId;
use sha2::Sha256;

use crate::{Kyu, Result};

/// What every job token starts with (API tokens start with `kyu_`), so the
/// server tells the two apart before any lookup.
pub const JOB_TOKEN_PREFIX: &str = "kyuj_";

/// The name of the database secret job tokens are signed with.
const SECRET_NAME: &str = "job_token";

/// What a valid job token grants: reporting on attempt `attempt` of job `job`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobGrant {
    /// The job.
    pub job: JobId,
    /// The attempt the token was made for (1 for the first run).
    pub attempt: u32,
}

/// Whether `secret` has the shape of a job token (not whether it is valid).
pub fn is_job_token(secret: &str) -> bool {
    secret.starts_with(JOB_TOKEN_PREFIX)
}

/// The token of (`job`, `attempt`) signed with `key`.
pub fn sign(key: &[u8], job: JobId, attempt: u32) -> String {
    let tag = hex::encode(mac(key, job, attempt).finalize().into_bytes());
    format!("{JOB_TOKEN_PREFIX}{job}_{attempt}_{tag}")
}

/// The grant of `secret` if it is a job token signed with `key` (checked in
/// constant time); `None` for anything else.
pub fn verify(key: &[u8], secret: &str) -> Option<JobGrant> {
    let rest = secret.strip_prefix(JOB_TOKEN_PREFIX)?;
    let mut parts = rest.splitn(3, '_');
    let job: JobId = parts.next()?.parse().ok()?;
    let attempt: u32 = parts.next()?.parse().ok()?;
    let tag = hex::decode(parts.next()?).ok()?;
    mac(key, job, attempt)
        .verify_slice(&tag)
        .ok()
        .map(|()| JobGrant { job, attempt })
}

fn mac(key: &[u8], job: JobId, attempt: u32) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    // A domain label, so a MAC made for another purpose with this key (there
    // is none today) can never pass as a job token.
    mac.update(format!("kyu job token\0{job}\0{attempt}").as_bytes());
    mac
}

/// Job tokens.
impl Kyu {
    /// The signing key: the database's secret `job_token`, read once per
    /// [`Kyu`] (and its clones), so a job start costs no store access.
    async fn job_token_key(&self) -> Result<&[u8]> {
        self.job_token_key
            .get_or_try_init(|| async { Ok(self.secret(SECRET_NAME).await?.into_bytes()) })
            .await
            .map(Vec::as_slice)
    }

    /// The job token of attempt `attempt` of job `job` (see the module docs).
    pub async fn job_token(&self, job: JobId, attempt: u32) -> Result<String> {
        Ok(sign(self.job_token_key().await?, job, attempt))
    }

    /// What `secret` grants if it is a job token signed for this database;
    /// `None` otherwise. It does not look at the job: whether the attempt
    /// still runs is the caller's check (the HTTP API's, on every request).
    pub async fn job_grant(&self, secret: &str) -> Result<Option<JobGrant>> {
        if !is_job_token(secret) {
            return Ok(None);
        }
        Ok(verify(self.job_token_key().await?, secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_token_verifies_only_for_its_job_attempt_and_key() {
        let t = sign(b"k", 7, 2);
        assert_eq!(verify(b"k", &t), Some(JobGrant { job: 7, attempt: 2 }));
        assert_eq!(verify(b"j", &t), None, "another database's key");
        let forged = t.replacen("kyuj_7_2_", "kyuj_8_2_", 1);
        assert_eq!(verify(b"k", &forged), None, "another job, same tag");
        let forged = t.replacen("kyuj_7_2_", "kyuj_7_3_", 1);
        assert_eq!(verify(b"k", &forged), None, "another attempt, same tag");
        assert_eq!(verify(b"k", &t[..t.len() - 2]), None, "truncated");
        assert_eq!(verify(b"k", "kyuj_7_2_zz"), None, "not hex");
        assert_eq!(verify(b"k", "kyu_7_2_00"), None, "an API token's prefix");
        assert_eq!(verify(b"k", "kyuj_x_2_00"), None, "not a job id");
    }
}
