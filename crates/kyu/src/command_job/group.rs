//! The process group of one command attempt, and what makes its end certain.
//!
//! Each attempt gets a new process group whose leader is a *keeper*: a tiny
//! `/bin/sh` that ignores SIGHUP, SIGINT and SIGTERM and blocks reading a pipe
//! whose only write end the worker holds (close-on-exec, so no command
//! inherits it). The command joins the keeper's group. When the worker
//! process dies, however it dies (SIGKILL included), the kernel closes the
//! pipe, the keeper's `read` returns and it SIGKILLs its whole group:
//! whatever the command started that stayed in the group ends within
//! milliseconds, long before the job's lease runs out and the job can run
//! again.
//!
//! While the worker lives it ends the group itself: [`Group::end`] once the
//! command has exited or been stopped, and synchronously from `Drop` if the
//! attempt is abandoned (its future dropped). Both return only when no
//! process of the group runs any more (a zombie waiting for its reaper no
//! longer runs), so a job is never released or finished while part of its
//! attempt lives on. The group id stays taken while any member of the group
//! exists (a zombie too), so no unrelated group takes it while we signal it.
//!
//! Not covered: a process that leaves the group (`setsid`, `setpgid`) is not
//! tracked, and a keeper killed by hand leaves only the command's own
//! `PR_SET_PDEATHSIG` (Linux; the command, not its children).

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The keeper: ignore the signals meant for the command, wait for the
/// worker's end of the pipe to close, then kill the whole group, itself too.
const KEEPER: &str = "trap '' HUP INT TERM; read line; kill -s KILL 0";

/// Longest wait for a SIGKILLed group to be gone. SIGKILL cannot be caught,
/// so only a process stuck in the kernel (uninterruptible I/O) takes longer.
const END_WAIT: Duration = Duration::from_secs(5);

/// A running command in its own process group, with its keeper.
pub(super) struct Group {
    pgid: i32,
    /// The command itself.
    pub(super) child: tokio::process::Child,
    /// The keeper, until it is reaped.
    keeper: Option<std::process::Child>,
    /// The write end of the keeper's pipe. Never written; its closing (by
    /// the kernel, when the worker dies) is the keeper's signal.
    _lifeline: OwnedFd,
    /// False once the group was ended.
    live: bool,
}

impl Group {
    /// Starts the keeper, then `cmd` in the keeper's process group. The
    /// error is the command's spawn error, or the keeper's.
    pub(super) fn spawn(mut cmd: tokio::process::Command) -> std::io::Result<Group> {
        let (read, write) = cloexec_pipe()?;
        let mut keeper = std::process::Command::new("/bin/sh")
            .args(["-c", KEEPER])
            .stdin(Stdio::from(read))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("the process-group keeper /bin/sh could not start: {e}"),
                )
            })?;
        let pgid = keeper.id() as i32;
        cmd.process_group(pgid);
        match cmd.spawn() {
            Ok(child) => Ok(Group {
                pgid,
                child,
                keeper: Some(keeper),
                _lifeline: write,
                live: true,
            }),
            Err(e) => {
                signal(pgid, libc::SIGKILL);
                let _ = keeper.wait();
                Err(e)
            }
        }
    }

    /// The group's id (the keeper's pid).
    pub(super) fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Sends `sig` to every process of the group.
    pub(super) fn signal(&self, sig: i32) {
        if self.live {
            signal(self.pgid, sig);
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace` if the command has not
    /// exited; returns the command's exit status. The rest of the group is
    /// left to [`end`](Group::end).
    pub(super) async fn stop(
        &mut self,
        grace: Duration,
    ) -> std::io::Result<std::process::ExitStatus> {
        tracing::info!(pgid = self.pgid, "stopping the command: SIGTERM");
        self.signal(libc::SIGTERM);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(s) => s,
            Err(_) => {
                tracing::warn!(pgid = self.pgid, grace = ?grace, "the command ignored SIGTERM; SIGKILL");
                self.signal(libc::SIGKILL);
                self.child.wait().await
            }
        }
    }

    /// Kills whatever is left of the group and returns once none of it runs.
    pub(super) async fn end(&mut self) {
        if !self.live {
            return;
        }
        signal(self.pgid, libc::SIGKILL);
        let _ = self.child.wait().await;
        let until = Instant::now() + END_WAIT;
        // With the command and the keeper reaped, only what the command
        // started is left in the group: usually nothing, which one kill(2)
        // tells, without a /proc scan.
        while !self.reap_keeper() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        while running(self.pgid) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.finish();
    }

    /// [`end`](Group::end) without a runtime: blocks (briefly: SIGKILL is
    /// quick) so that an abandoned attempt leaves nothing behind.
    fn end_now(&mut self) {
        signal(self.pgid, libc::SIGKILL);
        let until = Instant::now() + END_WAIT;
        while !self.reap_keeper() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        while running(self.pgid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Reaps the command if it is dead; otherwise tokio reaps it later.
        let _ = self.child.try_wait();
        self.finish();
    }

    /// Reaps the keeper if it has exited; true once it is reaped.
    fn reap_keeper(&mut self) -> bool {
        match self.keeper.as_mut().map(|k| k.try_wait()) {
            Some(Ok(None)) => false,
            _ => {
                self.keeper = None;
                true
            }
        }
    }

    /// Marks the group ended; says so if part of it would not die.
    fn finish(&mut self) {
        self.live = false;
        if let Some(mut keeper) = self.keeper.take() {
            // Not dead within END_WAIT: reap it off the runtime, whenever.
            std::thread::spawn(move || keeper.wait());
        }
        if running(self.pgid) {
            tracing::warn!(
                pgid = self.pgid,
                waited = ?END_WAIT,
                "a process of the command's group survived SIGKILL (stuck in the kernel?)"
            );
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.live {
            tracing::warn!(
                pgid = self.pgid,
                "command abandoned: killing its process group"
            );
            self.end_now();
        }
    }
}

/// A pipe with both ends close-on-exec: no command inherits either.
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    #[cfg(target_os = "linux")]
    // SAFETY: pipe2 writes two fds into the array we pass.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    #[cfg(not(target_os = "linux"))]
    // SAFETY: pipe writes two fds into the array we pass; fcntl only sets flags on them.
    let rc = unsafe {
        let rc = libc::pipe(fds.as_mut_ptr());
        if rc == 0 {
            libc::fcntl(fds[0], libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(fds[1], libc::F_SETFD, libc::FD_CLOEXEC);
        }
        rc
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn signal(pgid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// True while a process of group `pgid` runs. Zombies do not count: an
/// orphan's zombie waits for its reaper (init, which in a container may never
/// reap it), but it runs nothing.
fn running(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks that the group has a member.
    if unsafe { libc::kill(-pgid, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    }
    #[cfg(target_os = "linux")]
    if let Some(live) = linux_live_member(pgid) {
        return live;
    }
    true
}

/// Whether /proc lists a process of group `pgid` that is not a zombie;
/// `None` if /proc cannot be read.
#[cfg(target_os = "linux")]
fn linux_live_member(pgid: i32) -> Option<bool> {
    let pgid = pgid.to_string();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut fields = rest.split(' ');
        let (state, _ppid, pgrp) = (fields.next(), fields.next(), fields.next());
        if pgrp == Some(pgid.as_str()) && !matches!(state, Some("Z") | Some("X")) {
            return Some(true);
        }
    }
    Some(false)
}
