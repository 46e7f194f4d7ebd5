//! The machine facts the peer harness records beside its figures (cores,
//! CPU, memory, kernel, how fast the disk makes a write durable), so a figure
//! can be put next to the peers' and reproduced.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long the fdatasync probe runs: long enough for thousands of flushes
/// on an SSD, short enough to run before every bench.
const PROBE: Duration = Duration::from_millis(500);

/// What `kyu bench` records about the machine.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Machine {
    /// Cores this process may use (`nproc`).
    pub nproc: usize,
    pub cpu: Option<String>,
    pub mem_gib: Option<f64>,
    pub kernel: Option<String>,
    /// 8 kB write + fdatasync per second in `fdatasync_dir`: pg_test_fsync's
    /// "one 8kB write" line, the cost of one durable commit.
    pub fdatasync_per_s: Option<f64>,
    pub fdatasync_dir: Option<String>,
    /// Why there is no fdatasync figure, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fdatasync_note: Option<String>,
}

impl Machine {
    /// Reads the machine's facts and, when `disk` is given, probes the disk
    /// of that directory; `None` says why not in `fdatasync_note`.
    pub async fn probe(disk: Result<PathBuf, String>) -> Machine {
        let (fdatasync_per_s, fdatasync_dir, fdatasync_note) = match disk {
            Ok(dir) => {
                let d = dir.clone();
                match tokio::task::spawn_blocking(move || fdatasync_rate(&d)).await {
                    Ok(Ok(rate)) => (Some(rate), Some(dir.display().to_string()), None),
                    Ok(Err(e)) => (None, None, Some(format!("{}: {e}", dir.display()))),
                    Err(e) => (None, None, Some(e.to_string())),
                }
            }
            Err(why) => (None, None, Some(why)),
        };
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: read("/proc/cpuinfo").and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            }),
            mem_gib: read("/proc/meminfo").and_then(|s| {
                let kib: f64 = s
                    .lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some(super::round(kib / (1024.0 * 1024.0), 1))
            }),
            kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
            fdatasync_per_s,
            fdatasync_dir,
            fdatasync_note,
        }
    }

    /// One line for people: `2 cores (AMD EPYC), 23.4 GiB memory, Linux …`.
    pub fn describe(&self) -> String {
        let mut out = format!("{} cores", self.nproc);
        if let Some(cpu) = &self.cpu {
            out += &format!(" ({cpu})");
        }
        if let Some(m) = self.mem_gib {
            out += &format!(", {m} GiB memory");
        }
        if let Some(k) = &self.kernel {
            out += &format!(", Linux {k}");
        }
        match (
            &self.fdatasync_per_s,
            &self.fdatasync_dir,
            &self.fdatasync_note,
        ) {
            (Some(r), Some(d), _) => {
                out += &format!(
                    "; 8 kB write + fdatasync: {}/s in {d}",
                    super::summary::thousands(*r)
                )
            }
            (_, _, Some(why)) => out += &format!("; fdatasync not measured ({why})"),
            _ => {}
        }
        out
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Rewrites one 8 kB block and flushes it to the disk, again and again for
/// [`PROBE`], in a scratch file of `dir` that is removed afterwards.
fn fdatasync_rate(dir: &Path) -> std::io::Result<f64> {
    let path = dir.join(format!("kyu-bench-fsync-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let block = [0x5au8; 8192];
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < PROBE {
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&block)?;
            f.sync_data()?;
            n += 1;
        }
        Ok(super::round(n as f64 / start.elapsed().as_secs_f64(), 0))
    })();
    let _ = std::fs::remove_file(&path);
    result
}
