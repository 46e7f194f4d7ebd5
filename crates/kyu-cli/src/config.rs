//! `kyu.toml`: the database, queues, command job kinds and schedules.
//!
//! Unknown keys and bad values are refused with the file, the line and what
//! is accepted. Precedence: command-line flag, then `KYU_*` environment
//! variable, then `kyu.toml`, then the default.
//!
//! ```toml
//! database = "sqlite://kyu.db"
//!
//! [queues.default]
//! concurrency = 4
//! global_concurrency = 8    # across every worker process and host
//! rate = "5000/1h"          # at most 5000 starts in any hour
//! # rate_key = "args.api"   # ... per value of the jobs' args.api (one window each)
//!
//! [http]
//! listen = "127.0.0.1:7070"   # kyu serve's API, /metrics, /healthz, /readyz
//! body_limit = "2MiB"         # 413 above it (args alone: 1 MiB, as the library)
//! page_size_limit = 1000      # lists, batch enqueues, actions by ids
//! max_wait = "30s"            # longest long poll (?wait=)
//! sse_streams_per_token = 8   # open GET /v1/events streams per token (429 above)
//! long_polls_per_token = 64   # open long polls per token (429 above)
//!
//! [api]
//! url = "http://kyu.internal:7070"   # where command jobs report (KYU_API_URL); default: this process's own listener
//!
//! [jobs.sync]
//! command = ["python3", "-u", "scripts/sync.py"]
//! timeout = "1h"
//! max_attempts = 3
//! retry = "exponential:2s:60s"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kyu::command_job::{CommandSpec, DEFAULT_PERMANENT_EXIT};
use kyu::RetryPolicy;
use serde::{Deserialize, Deserializer};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Database URL. A relative SQLite path is relative to this file's
    /// directory. Default `sqlite://kyu.db` (beside this file).
    pub database: Option<String>,
    /// Queues by name.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
    /// Command job kinds by name.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobKindConfig>,
    /// Cron schedules.
    #[serde(default)]
    pub schedules: Vec<ScheduleConfig>,
    /// Worker settings.
    #[serde(default)]
    pub worker: WorkerSection,
    /// The HTTP listener of `kyu serve`.
    #[serde(default)]
    pub http: HttpSection,
    /// The HTTP API command jobs report to.
    #[serde(default)]
    pub api: ApiSection,
    /// The event log.
    #[serde(default)]
    pub events: EventsSection,
    /// How long `kyu serve` keeps finished jobs.
    #[serde(default)]
    pub retention: RetentionSection,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Where `kyu serve` listens (`/metrics`, `/healthz`, `/readyz`):
    /// `IP:PORT`, or `off`. Default `127.0.0.1:7070`. `kyu worker` does not
    /// read it (it listens only with `--http`), so a worker beside a serve
    /// on one host does not take its port.
    #[serde(default, deserialize_with = "opt_listen")]
    pub listen: Option<crate::parse::Listen>,
    /// Largest request body: bytes (`2097152`) or with a unit (`"2MiB"`,
    /// `"512KiB"`); a larger body is refused with 413. Default 2 MiB: the
    /// library's 1 MiB args limit and room for the rest of the job.
    #[serde(default, deserialize_with = "opt_size")]
    pub body_limit: Option<usize>,
    /// Largest page of a list, batch enqueue or action by ids, 1 to 10000.
    /// Default 1000.
    #[serde(default)]
    pub page_size_limit: Option<usize>,
    /// Longest long poll (`GET /v1/jobs/{id}?wait=`), e.g. `"30s"`, at most
    /// 1 h. Default 30 s.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_wait: Option<Duration>,
    /// Event streams (`GET /v1/events`) one token may hold open at once;
    /// one more is refused with 429. Default 8.
    #[serde(default)]
    pub sse_streams_per_token: Option<usize>,
    /// Long polls one token may hold open at once; one more is refused with
    /// 429. Default 64.
    #[serde(default)]
    pub long_polls_per_token: Option<usize>,
}

impl HttpSection {
    /// The server options with this section's limits (defaults for what it leaves out).
    pub fn server_options(&self) -> kyu_server::Options {
        let mut o = kyu_server::Options::default();
        if let Some(n) = self.body_limit {
            o.body_limit = n;
        }
        if let Some(n) = self.page_size_limit {
            o.max_page = n;
        }
        if let Some(d) = self.max_wait {
            o.max_wait = d;
        }
        if let Some(n) = self.sse_streams_per_token {
            o.sse_streams_per_token = n;
        }
        if let Some(n) = self.long_polls_per_token {
            o.long_polls_per_token = n;
        }
        o
    }
}

/// Reads a size: a whole number of bytes, or text with a unit B, KiB, MiB, GiB.
fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    let bad = |v: &str| {
        serde::de::Error::custom(format!(
            "{v:?} is not a size; accepted: bytes (2097152) or a number with B, KiB, MiB or GiB (\"2MiB\")"
        ))
    };
    let bytes = match Size::deserialize(d)? {
        Size::Bytes(n) => n,
        Size::Text(t) => {
            let t = t.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (n, unit) = t.split_at(split);
            let n: u64 = n.parse().map_err(|_| bad(t))?;
            let mult = match unit.trim() {
                "" | "B" => 1,
                "KiB" => 1 << 10,
                "MiB" => 1 << 20,
                "GiB" => 1 << 30,
                _ => return Err(bad(t)),
            };
            n.checked_mul(mult).ok_or_else(|| bad(t))?
        }
    };
    usize::try_from(bytes)
        .map(Some)
        .map_err(|_| bad(&bytes.to_string()))
}

/// `[api]`: the kyu HTTP API a command job reports to (`KYU_API_URL` and
/// `KYU_JOB_TOKEN` in its environment).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Its base address, e.g. `"http://kyu.internal:7070"`: for a `kyu
    /// worker` whose commands report to a `kyu serve` elsewhere, or an API
    /// behind a proxy. Default: the process's own listener (`kyu serve`;
    /// `kyu worker --http`); with neither, commands get no API address.
    /// `--api-url` (or `KYU_API_URL`) wins over it.
    #[serde(default, deserialize_with = "opt_api_url")]
    pub url: Option<String>,
}

fn opt_api_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    crate::parse::api_url(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `[events]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// How long events are kept (pruned by `kyu serve`'s retention). Default 24 h.
    #[serde(default, deserialize_with = "opt_duration")]
    pub retention: Option<Duration>,
}

/// `[retention]`: applied by `kyu serve` (`kyu worker` leaves retention to it).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Completed jobs are deleted after this age. Default 24 h.
    #[serde(default, deserialize_with = "opt_duration")]
    pub completed: Option<Duration>,
    /// Failed and cancelled jobs are deleted after this age. Default 7 days.
    #[serde(default, deserialize_with = "opt_duration")]
    pub failed: Option<Duration>,
    /// How often retention runs. Default 1 min.
    #[serde(default, deserialize_with = "opt_duration")]
    pub every: Option<Duration>,
}

/// `[queues.NAME]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Jobs of this queue run at once per worker process. Default 10.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Start paused. Default false.
    #[serde(default)]
    pub paused: bool,
    /// At most this many jobs of the queue running at once across every
    /// process and host (stored in the database by `kyu serve` and `kyu
    /// worker` at start). Default: no limit. Leaving the key out keeps what
    /// is stored (`kyu queues set NAME --global-concurrency none` clears it).
    #[serde(default)]
    pub global_concurrency: Option<u32>,
    /// At most this many job starts in any window of this length across
    /// every process and host, e.g. `"5000/1h"`, `"10/1s"`, `"10000/1d"`.
    /// Default: no limit; stored like `global_concurrency`.
    #[serde(default)]
    pub rate: Option<kyu::RateLimit>,
    /// Apply `rate` per key: the value at this path in each job's args,
    /// e.g. `"args.api"` or `"args.tenant.id"` (a key given at enqueue
    /// wins; jobs without one share one window). Needs `rate` in the same
    /// table. Default: none; stored like `global_concurrency`.
    #[serde(default)]
    pub rate_key: Option<kyu::RateKeyPath>,
}

impl QueueConfig {
    /// The limits this table declares, as a change that keeps the ones it
    /// leaves out; `None` if it declares none.
    pub fn limits(&self) -> Option<kyu::LimitsUpdate> {
        let u = kyu::LimitsUpdate {
            global_concurrency: self.global_concurrency.map(Some),
            rate: self.rate.map(Some),
            rate_key: self.rate_key.clone().map(Some),
        };
        (u != kyu::LimitsUpdate::default()).then_some(u)
    }
}

fn default_concurrency() -> usize {
    10
}

/// `[worker]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct WorkerSection {
    /// On SIGTERM, how long running jobs get before they are stopped. Default 10 s.
    #[serde(default, deserialize_with = "opt_duration")]
    pub shutdown_grace: Option<Duration>,
    /// Lease length. Default 30 s.
    #[serde(default, deserialize_with = "opt_duration")]
    pub lease: Option<Duration>,
}

/// `[jobs.NAME]`: a kind that runs a command.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobKindConfig {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Working directory, relative to the config file's directory.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The queue its jobs go to. Default `default`.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Time limit of one attempt, e.g. "1h": stamped on each job of the kind
    /// enqueued without one; a job's own timeout wins.
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Attempts. Default 5.
    pub max_attempts: Option<u32>,
    /// Retry policy: "exponential:1s:16s" or "fixed:2s".
    #[serde(default, deserialize_with = "opt_retry")]
    pub retry: Option<RetryPolicy>,
    /// Priority of its jobs (lower first). Default 0.
    #[serde(default)]
    pub priority: i32,
    /// SIGTERM → SIGKILL grace on cancel, timeout or shutdown. Default "10s".
    #[serde(default, deserialize_with = "opt_duration")]
    pub stop_grace: Option<Duration>,
    /// Bytes of stdout and stderr kept. Default 65536.
    pub log_limit: Option<usize>,
    /// Take the last stdout line that is JSON as the result. Default false.
    #[serde(default)]
    pub result_from_stdout: bool,
    /// Exit codes that fail without retry. Default `[65]`.
    pub permanent_exit_codes: Option<Vec<i32>>,
}

fn default_queue() -> String {
    "default".into()
}

/// `[[schedules]]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique name.
    pub name: String,
    /// Cron expression.
    pub cron: String,
    /// IANA time zone. Default UTC.
    #[serde(default = "default_zone")]
    pub zone: String,
    /// The kind to enqueue.
    pub kind: String,
    /// Args of each job.
    #[serde(default = "empty_args")]
    pub args: toml::Value,
    /// Queue; default: the kind's.
    pub queue: Option<String>,
    /// `allow`, `skip` or `buffer_one`. Default `skip`.
    #[serde(default = "default_overlap")]
    pub overlap: String,
    /// `skip` or `run_once`. Default `skip`.
    #[serde(default = "default_misfire")]
    pub misfire: String,
    /// `true` or `false` applies at every `kyu serve` start. Not given: a new
    /// schedule starts enabled and a stored one keeps its state, so an
    /// operator's `kyu schedules disable` survives restarts.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Priority of its jobs; default: the kind's, else 0.
    pub priority: Option<i32>,
    /// Attempts; default: the kind's, else 5.
    pub max_attempts: Option<u32>,
    /// Retry policy; default: the kind's, else exponential:1s:16s.
    #[serde(default, deserialize_with = "opt_retry")]
    pub retry: Option<RetryPolicy>,
    /// Time limit of one attempt, e.g. "10m"; default: the kind's, else none.
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Tags of its jobs (each also gets `schedule:NAME`).
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_zone() -> String {
    "UTC".into()
}
fn empty_args() -> toml::Value {
    toml::Value::Table(Default::default())
}
fn default_overlap() -> String {
    "skip".into()
}
fn default_misfire() -> String {
    "skip".into()
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    crate::parse::duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn opt_listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<crate::parse::Listen>, D::Error> {
    let s = String::deserialize(d)?;
    crate::parse::listen(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn opt_retry<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RetryPolicy>, D::Error> {
    let s = String::deserialize(d)?;
    crate::parse::retry(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A config file that could not be used: the file, the line, and why.
#[derive(Debug)]
pub struct ConfigError {
    file: String,
    location: String,
    message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}: {}", self.file, self.location, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn at(file: &Path, line: Option<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.display().to_string(),
            location: line.map(|l| format!(":{l}")).unwrap_or_default(),
            message: message.into(),
        }
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where `needle` first appears after `from`, for checks made after parsing.
fn find_line(text: &str, needle: &str) -> Option<usize> {
    text.find(needle).map(|o| line_of(text, o))
}

/// The line of the header of table `[prefix.name]` (`name` bare or quoted).
fn table_line(text: &str, prefix: &str, name: &str) -> Option<usize> {
    find_line(text, &format!("[{prefix}.{name}]"))
        .or_else(|| find_line(text, &format!("[{prefix}.\"{name}\"]")))
}

/// The line of `key = …` in the table whose header is on line `header`
/// (1-based), else the header's line.
fn key_line_in_table(text: &str, header: Option<usize>, key: &str) -> Option<usize> {
    let header = header?;
    text.lines()
        .enumerate()
        .skip(header)
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
        .or(Some(header))
}

/// The line of `key = …` in the `[[schedules]]` entry named `name`.
fn find_key_line(text: &str, name: &str, key: &str) -> Option<usize> {
    let start = text.find(&format!("\"{name}\""))?;
    let block_start = text[..start].rfind("[[schedules]]").unwrap_or(0);
    let block_end = text[start..]
        .find("\n[")
        .map(|o| start + o)
        .unwrap_or(text.len());
    let block = &text[block_start..block_end];
    block
        .lines()
        .scan(block_start, |offset, l| {
            let here = *offset;
            *offset += l.len() + 1;
            Some((here, l))
        })
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(o, _)| line_of(text, o))
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::at(path, None, format!("could not read the file: {e}")))?;
        Config::parse(path, &text)
    }

    /// Parses and checks `text`, naming `path` in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            ConfigError::at(path, line, e.message().trim().to_string())
        })?;
        config.check(path, text)?;
        Ok(config)
    }

    fn check(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        use kyu::validate;
        if let Some(lease) = self.worker.lease {
            validate::lease("worker.lease", lease).map_err(|e| {
                ConfigError::at(
                    path,
                    key_line_in_table(text, find_line(text, "[worker]"), "lease"),
                    e.to_string(),
                )
            })?;
        }
        let http_line = |key: &str| key_line_in_table(text, find_line(text, "[http]"), key);
        let h = &self.http;
        if let Some(n) = h.body_limit {
            if !(1024..=1 << 30).contains(&n) {
                return Err(ConfigError::at(
                    path,
                    http_line("body_limit"),
                    format!("http.body_limit: {n} bytes is not accepted; accepted: 1KiB to 1GiB"),
                ));
            }
        }
        if let Some(n) = h.page_size_limit {
            if !(1..=10_000).contains(&n) {
                return Err(ConfigError::at(
                    path,
                    http_line("page_size_limit"),
                    format!("http.page_size_limit: {n} is not accepted; accepted: 1 to 10000"),
                ));
            }
        }
        if let Some(d) = h.max_wait {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(ConfigError::at(
                    path,
                    http_line("max_wait"),
                    format!(
                        "http.max_wait: {d:?} is not accepted; accepted: more than 0s, up to 1h"
                    ),
                ));
            }
        }
        for (key, v) in [
            ("sse_streams_per_token", h.sse_streams_per_token),
            ("long_polls_per_token", h.long_polls_per_token),
        ] {
            if v == Some(0) {
                return Err(ConfigError::at(
                    path,
                    http_line(key),
                    format!("http.{key}: 0 is not accepted; give 1 or more"),
                ));
            }
        }
        if self.retention.every == Some(Duration::ZERO) {
            return Err(ConfigError::at(
                path,
                key_line_in_table(text, find_line(text, "[retention]"), "every"),
                "retention.every: 0s is not accepted; give a positive duration, e.g. 1m",
            ));
        }
        for (name, q) in &self.queues {
            validate::queue_name("queues", name).map_err(|e| {
                ConfigError::at(path, table_line(text, "queues", name), e.to_string())
            })?;
            if q.concurrency == 0 {
                return Err(ConfigError::at(
                    path,
                    find_line(text, &format!("[queues.{name}]")),
                    format!("queues.{name}.concurrency: 0 is not accepted; give 1 or more"),
                ));
            }
            if q.rate_key.is_some() && q.rate.is_none() {
                return Err(ConfigError::at(
                    path,
                    key_line_in_table(
                        text,
                        find_line(text, &format!("[queues.{name}]")),
                        "rate_key",
                    ),
                    format!(
                        "queues.{name}.rate_key: a rate key needs a rate in the same table; \
                         add one, e.g. rate = \"10/1s\""
                    ),
                ));
            }
            if let Some(n) = q.global_concurrency {
                let field = format!("queues.{name}.global_concurrency");
                kyu::limits::check_global_concurrency(&field, n).map_err(|e| {
                    ConfigError::at(
                        path,
                        key_line_in_table(
                            text,
                            find_line(text, &format!("[queues.{name}]")),
                            "global_concurrency",
                        ),
                        e.to_string(),
                    )
                })?;
            }
        }
        for (name, j) in &self.jobs {
            let line = table_line(text, "jobs", name);
            validate::kind_name("jobs", name).map_err(|e| {
                ConfigError::at(path, line, format!("{e} (the table name is the kind)"))
            })?;
            validate::queue_name(&format!("jobs.{name}.queue"), &j.queue).map_err(|e| {
                ConfigError::at(path, key_line_in_table(text, line, "queue"), e.to_string())
            })?;
            if let Some(t) = j.timeout {
                validate::timeout(&format!("jobs.{name}.timeout"), t).map_err(|e| {
                    ConfigError::at(
                        path,
                        key_line_in_table(text, line, "timeout"),
                        e.to_string(),
                    )
                })?;
            }
            if j.command.is_empty() || j.command[0].is_empty() {
                return Err(ConfigError::at(
                    path,
                    line,
                    format!("jobs.{name}.command: empty; give the program and its arguments, e.g. [\"python3\", \"-u\", \"sync.py\"]"),
                ));
            }
            if j.max_attempts == Some(0) {
                return Err(ConfigError::at(
                    path,
                    line,
                    format!("jobs.{name}.max_attempts: 0 is not accepted; give 1 or more"),
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.schedules {
            let line = find_line(text, &format!("\"{}\"", s.name));
            if !names.insert(&s.name) {
                return Err(ConfigError::at(
                    path,
                    line,
                    format!(
                        "schedule name {:?} is used twice; names must be unique",
                        s.name
                    ),
                ));
            }
            if !["allow", "skip", "buffer_one"].contains(&s.overlap.as_str()) {
                return Err(ConfigError::at(path, line, format!("schedules.{}: overlap {:?} is not accepted; accepted: allow, skip, buffer_one", s.name, s.overlap)));
            }
            if !["skip", "run_once"].contains(&s.misfire.as_str()) {
                return Err(ConfigError::at(
                    path,
                    line,
                    format!(
                        "schedules.{}: misfire {:?} is not accepted; accepted: skip, run_once",
                        s.name, s.misfire
                    ),
                ));
            }
            self.schedule_spec(s).map_err(|e| {
                let key = e.field.split('.').next_back().unwrap_or_default();
                let key = match key {
                    "timezone" => "zone",
                    "name" => "name",
                    k => k,
                };
                ConfigError::at(
                    path,
                    find_key_line(text, &s.name, key).or(line),
                    format!("schedules.{}: {e}", s.name),
                )
            })?;
        }
        Ok(())
    }

    /// The command spec of kind `name`, with paths resolved against `base`
    /// (the config file's directory).
    pub fn command_spec(&self, name: &str, base: &Path) -> Option<CommandSpec> {
        let j = self.jobs.get(name)?;
        let mut spec = CommandSpec::new(j.command.clone());
        spec.cwd = Some(match &j.cwd {
            Some(c) if c.is_absolute() => c.clone(),
            Some(c) => base.join(c),
            None => base.to_path_buf(),
        });
        spec.env = j.env.clone();
        if let Some(g) = j.stop_grace {
            spec.stop_grace = g;
        }
        if let Some(l) = j.log_limit {
            spec.log_limit = l;
        }
        spec.timeout = j.timeout;
        spec.result_from_stdout = j.result_from_stdout;
        spec.permanent_exit_codes = j
            .permanent_exit_codes
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_PERMANENT_EXIT]);
        Some(spec)
    }

    /// The `[[schedules]]` entry `s` as a validated spec: the kind's defaults
    /// (queue, priority, attempts, retry, timeout) first, then the entry's own fields.
    pub fn schedule_spec(
        &self,
        s: &ScheduleConfig,
    ) -> Result<kyu::ScheduleSpec, kyu::InvalidInput> {
        let cron: kyu::CronExpr = s.cron.parse()?;
        let zone = kyu::parse_zone(&s.zone)?;
        let args = serde_json::to_string(&s.args)
            .map_err(|e| kyu::InvalidInput::new("args", format!("not expressible as JSON: {e}")))?;
        let job =
            self.apply_kind_defaults(&s.kind, kyu::NewJob::from_json_text(s.kind.clone(), args));
        // The entry's own fields, applied the same way over the kind's.
        let own = kyu_server::KindDefaults {
            queue: s.queue.clone(),
            priority: s.priority,
            max_attempts: s.max_attempts,
            retry: s.retry,
            timeout: s.timeout,
        };
        let mut job = own.apply(job);
        for t in &s.tags {
            job = job.tag(t.clone());
        }
        let spec = kyu::ScheduleSpec::new(s.name.clone(), cron, job)
            .zone(zone)
            .overlap(s.overlap.parse()?)
            .misfire(s.misfire.parse()?)
            .enabled(s.enabled.unwrap_or(true));
        spec.validate(&kyu::Limits::default())?;
        Ok(spec)
    }

    /// Every kind's defaults for the HTTP server, so a job enqueued over
    /// HTTP gets the stamp [`Config::apply_kind_defaults`] gives `kyu enqueue`.
    pub fn kind_defaults(&self) -> std::collections::HashMap<String, kyu_server::KindDefaults> {
        self.jobs
            .keys()
            .filter_map(|name| Some((name.clone(), self.kind_default(name)?)))
            .collect()
    }

    /// The defaults `[jobs.NAME]` gives its jobs, if kyu.toml declares it.
    fn kind_default(&self, name: &str) -> Option<kyu_server::KindDefaults> {
        let j = self.jobs.get(name)?;
        Some(kyu_server::KindDefaults {
            queue: Some(j.queue.clone()),
            priority: Some(j.priority),
            max_attempts: j.max_attempts,
            retry: j.retry,
            timeout: j.timeout,
        })
    }

    /// Applies kind `name`'s defaults (queue, priority, attempts, retry,
    /// timeout) to a new job. The timeout is stamped on the job so that every
    /// reader (`kyu jobs show`, the API) sees the one that applies: the job's
    /// own if given, else the kind's.
    /// One rule with `kyu serve`'s HTTP enqueue ([`kyu_server::KindDefaults::apply`]).
    pub fn apply_kind_defaults(&self, name: &str, job: kyu::NewJob) -> kyu::NewJob {
        match self.kind_default(name) {
            Some(d) => d.apply(job),
            None => job,
        }
    }
}

#[cfg(test)]
mod kind_defaults_tests {
    use super::*;

    /// A schedule's job: the kind's defaults, then the entry's own fields over them.
    #[test]
    fn a_schedule_entry_overrides_its_kinds_defaults_field_by_field() {
        let text = r#"
[jobs.sync]
command = ["true"]
queue = "batch"
priority = -3
timeout = "1h"
max_attempts = 3

[[schedules]]
name = "nightly"
cron = "0 3 * * *"
kind = "sync"
priority = 5
max_attempts = 9
"#;
        let config = Config::parse(Path::new("kyu.toml"), text).expect("config");
        let spec = config.schedule_spec(&config.schedules[0]).expect("spec");
        assert_eq!(spec.job.queue, "batch", "the kind's queue");
        assert_eq!(spec.job.timeout_ms, Some(3_600_000), "the kind's timeout");
        assert_eq!(spec.job.priority, 5, "the entry's priority");
        assert_eq!(spec.job.max_attempts, 9, "the entry's attempts");
    }

    /// `kyu serve` hands the server the same defaults `kyu enqueue` stamps.
    #[test]
    fn kind_defaults_are_what_kyu_enqueue_applies() {
        let text = r#"
[jobs.sync]
command = ["true"]
queue = "batch"
priority = -3
timeout = "1h"
max_attempts = 3
retry = "fixed:7s"
"#;
        let config = Config::parse(Path::new("kyu.toml"), text).expect("config");
        let d = config.kind_defaults();
        assert_eq!(
            d["sync"],
            kyu_server::KindDefaults {
                queue: Some("batch".into()),
                priority: Some(-3),
                max_attempts: Some(3),
                retry: Some(kyu::RetryPolicy::fixed(Duration::from_secs(7))),
                timeout: Some(Duration::from_secs(3600)),
            }
        );
        assert_eq!(d.len(), 1);
    }
}
