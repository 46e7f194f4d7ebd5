//! Waiting for a job to finish: `kyu.wait(id).await`, or with a deadline,
//! `kyu.wait(id).timeout(d).await`.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use kyu_core::{JobId, JobRecord};

use crate::{Error, Kyu, Result};

/// A wait for one job to be completed, failed or cancelled, made by
/// [`Kyu::wait`]. `.await` it; [`timeout`](Wait::timeout) sets a deadline
/// first, so a job nobody runs (no worker for its kind, a paused queue) ends
/// the wait with [`Error::WaitTimedOut`] instead of hanging.
///
/// ```
/// # async fn demo(kyu: kyu::Kyu, id: kyu::JobId) -> Result<(), kyu::Error> {
/// use std::time::Duration;
/// let done = kyu.wait(id).await?;                                  // however long it takes
/// let done = kyu.wait(id).timeout(Duration::from_secs(30)).await?; // or give up after 30 s
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a wait does nothing until it is awaited"]
pub struct Wait {
    kyu: Kyu,
    id: JobId,
    limit: Option<Duration>,
}

impl Wait {
    pub(crate) fn new(kyu: Kyu, id: JobId) -> Wait {
        Wait {
            kyu,
            id,
            limit: None,
        }
    }

    /// Gives up after `limit` with [`Error::WaitTimedOut`] (the job itself
    /// is left as it is).
    pub fn timeout(mut self, limit: Duration) -> Wait {
        self.limit = Some(limit);
        self
    }

    async fn until_finished(kyu: Kyu, id: JobId) -> Result<JobRecord> {
        let mut pause = Duration::from_millis(2);
        loop {
            let job = kyu.job(id).await?;
            if job.state.is_finished() {
                return Ok(job);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

impl IntoFuture for Wait {
    type Output = Result<JobRecord>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<JobRecord>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let Wait { kyu, id, limit } = self;
        Box::pin(async move {
            let wait = Wait::until_finished(kyu, id);
            match limit {
                None => wait.await,
                Some(limit) => match tokio::time::timeout(limit, wait).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::WaitTimedOut { id, waited: limit }),
                },
            }
        })
    }
}
