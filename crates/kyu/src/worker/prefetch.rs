//! How far ahead of its free slots a queue claims ([`Prefetch`]).
//!
//! Claiming only what free slots can start makes every claim small when
//! jobs are short: a queue of 10 slots running no-op jobs claims ten at a
//! time and pays a store round trip (and, for most stores, a commit) per
//! ten jobs. Claiming far ahead makes claims big but hoards jobs that other
//! workers could start, and with long jobs a held job waits a whole job's
//! time. [`Prefetch::Auto`] holds what the queue will start within
//! [`HORIZON`] at the pace it has been starting jobs: hundreds of no-op jobs,
//! none of one-second jobs.
//!
//! A held job's start is recorded in the store before its handler runs (so
//! a crash never charges it an attempt, module `start`), and that round trip
//! is paid per batch of held starts: measured with `kyu bench`, a larger
//! concurrency makes short jobs faster than a prefetch does, so the default
//! is [`Prefetch::Off`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many jobs a queue claims beyond its free slots and holds, leased,
/// until a slot frees up ([`WorkerConfig::prefetch`](super::WorkerConfig::prefetch)).
///
/// A held job is heartbeated and can be cancelled. Until it starts it has
/// not used an attempt: on shutdown it is released silently, and if its
/// worker dies it is rescued without an attempt charged or an error recorded.
///
/// ```
/// use kyu::{Prefetch, WorkerConfig};
///
/// let mut config = WorkerConfig::default();
/// assert_eq!(config.prefetch, Prefetch::Off);
/// config.prefetch = Prefetch::Auto; // what the queue starts in 5 ms
/// config.prefetch = Prefetch::Fixed(100); // always 100 ahead
/// config.prefetch = Prefetch::Off; // only what free slots can start
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prefetch {
    /// Claim only what free slots can start now. The default.
    #[default]
    Off,
    /// Hold this many jobs beyond the free slots, whatever the jobs take.
    Fixed(usize),
    /// Hold what the queue starts in 5 ms at its pace over the last 100 ms,
    /// at most 256 jobs: big claims for short jobs, none held for long ones.
    Auto,
}

/// The most jobs [`Prefetch::Auto`] holds beyond a queue's free slots.
pub(crate) const AUTO_MAX: usize = 256;

/// [`Prefetch::Auto`] holds what the queue starts in this long.
pub(crate) const HORIZON: Duration = Duration::from_millis(5);

impl std::fmt::Display for Prefetch {
    /// `off`, `auto`, or the number: what [`Prefetch::from_str`](std::str::FromStr) reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prefetch::Off => f.write_str("off"),
            Prefetch::Fixed(n) => write!(f, "{n}"),
            Prefetch::Auto => f.write_str("auto"),
        }
    }
}

impl std::str::FromStr for Prefetch {
    type Err = String;

    /// `auto`, `off` (or `0`), or a number of jobs.
    fn from_str(s: &str) -> Result<Prefetch, String> {
        match s.trim() {
            "auto" => Ok(Prefetch::Auto),
            "off" | "0" => Ok(Prefetch::Off),
            n => n.parse::<usize>().map(Prefetch::Fixed).map_err(|_| {
                format!("prefetch {s:?} is not accepted: give auto, off, or a number of jobs")
            }),
        }
    }
}

/// The recent past over which the pace is measured.
const WINDOW: Duration = Duration::from_millis(100);

impl Prefetch {
    /// The most jobs this setting ever holds beyond the free slots.
    pub(crate) fn max(self) -> usize {
        match self {
            Prefetch::Off => 0,
            Prefetch::Fixed(n) => n,
            Prefetch::Auto => AUTO_MAX,
        }
    }
}

/// A queue's recent pace: jobs claimed in the last [`WINDOW`].
#[derive(Default)]
pub(crate) struct Pace {
    claims: VecDeque<(Instant, usize)>,
    jobs: usize,
}

impl Pace {
    /// Records `n` jobs claimed at `now`.
    pub(crate) fn claimed(&mut self, now: Instant, n: usize) {
        if n > 0 {
            self.claims.push_back((now, n));
            self.jobs += n;
        }
        while let Some(&(at, k)) = self.claims.front() {
            if now.duration_since(at) <= WINDOW {
                break;
            }
            self.claims.pop_front();
            self.jobs -= k;
        }
    }

    /// How many jobs to hold beyond the free slots under `prefetch`.
    pub(crate) fn ahead(&self, prefetch: Prefetch) -> usize {
        match prefetch {
            Prefetch::Off => 0,
            Prefetch::Fixed(n) => n,
            // jobs per WINDOW, scaled to HORIZON.
            Prefetch::Auto => (self.jobs as u128 * HORIZON.as_micros() / WINDOW.as_micros())
                .min(AUTO_MAX as u128) as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_holds_what_the_recent_pace_starts_within_the_horizon() {
        let t0 = Instant::now();
        let mut pace = Pace::default();
        assert_eq!(pace.ahead(Prefetch::Auto), 0, "nothing known: nothing held");
        // 2,000 jobs in 100 ms: 20,000/s, 100 in 5 ms.
        for i in 0..100 {
            pace.claimed(t0 + Duration::from_millis(i), 20);
        }
        assert_eq!(pace.ahead(Prefetch::Auto), 100);
        // One-second jobs on 10 slots: 10 per second holds nothing.
        let mut slow = Pace::default();
        slow.claimed(t0, 1);
        assert_eq!(slow.ahead(Prefetch::Auto), 0);
        // A burst far above the cap is capped.
        pace.claimed(t0 + Duration::from_millis(100), 100_000);
        assert_eq!(pace.ahead(Prefetch::Auto), AUTO_MAX);
        // The pace forgets what is older than the window.
        pace.claimed(t0 + Duration::from_millis(250), 0);
        assert_eq!(pace.ahead(Prefetch::Auto), 0);
        assert_eq!(pace.ahead(Prefetch::Fixed(7)), 7);
        assert_eq!(pace.ahead(Prefetch::Off), 0);
    }

    #[test]
    fn prefetch_reads_what_it_prints() {
        for p in [Prefetch::Auto, Prefetch::Off, Prefetch::Fixed(100)] {
            assert_eq!(p.to_string().parse::<Prefetch>(), Ok(p));
        }
        assert_eq!("0".parse::<Prefetch>(), Ok(Prefetch::Off));
        let e = "lots".parse::<Prefetch>().unwrap_err();
        assert!(e.contains("auto, off, or a number"), "{e}");
    }
}
