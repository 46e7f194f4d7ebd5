//! A PostgreSQL cluster of a test's own (initdb and pg_ctl from the machine's
//! PostgreSQL, as the `postgres` user when run as root), so a test can
//! restart it or switch TLS on without disturbing anything else. Included
//! with `mod pg_cluster;` by the kyu tests and with `#[path]` by the CLI's.

#![allow(dead_code)] // each test file uses part of it

mod certs;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use certs::TestCa;

/// Whether the PostgreSQL tests are on: `KYU_TEST_POSTGRES_URL` is set (as
/// `.ci/run` does). When it is not, a test prints why it skips and passes.
pub fn postgres_tests_enabled(test: &str) -> bool {
    let on = std::env::var_os("KYU_TEST_POSTGRES_URL").is_some();
    if !on {
        eprintln!(
            "{test}: skipped, KYU_TEST_POSTGRES_URL is not set (see the README's PostgreSQL tests)"
        );
    }
    on
}

/// Whether we run as root: initdb and postgres refuse to, so the tools run as
/// the `postgres` user and the files they read are handed to it.
fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A throw-away cluster listening on 127.0.0.1 at a free port; stopped (the
/// hard way) and deleted when dropped.
pub struct PrivateCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Extra `-c` settings of every start (TLS).
    settings: String,
}

impl PrivateCluster {
    /// The machine's PostgreSQL binaries: the newest under /usr/lib/postgresql.
    fn bin_dir() -> PathBuf {
        if let Ok(b) = std::env::var("KYU_TEST_PG_BIN") {
            return PathBuf::from(b);
        }
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql (or set KYU_TEST_PG_BIN)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists())
            .collect();
        versions.sort();
        versions
            .pop()
            .expect("pg_ctl under /usr/lib/postgresql/*/bin")
    }

    /// A PostgreSQL binary, run as the `postgres` user when we are root.
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        }
    }

    /// Runs a PostgreSQL binary; panics with its output when it fails.
    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The data directory.
    pub fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// A directory the test may write its own files to (CA certificates).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// A new cluster, started, without TLS.
    pub fn new() -> PrivateCluster {
        let c = PrivateCluster::init();
        c.start();
        c
    }

    /// A new cluster, started with `ssl = on` and a server certificate for
    /// `localhost` and 127.0.0.1 signed by `ca`.
    pub fn with_tls(ca: &TestCa) -> PrivateCluster {
        let mut c = PrivateCluster::init();
        let (cert, key) = ca.server_cert(&["localhost", "127.0.0.1"]);
        // The server refuses a key others can read; it must be the
        // cluster user's own.
        c.write_owned("server.crt", &cert, 0o644);
        c.write_owned("server.key", &key, 0o600);
        c.settings = format!(
            "-c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
            c.data()
        );
        c.start();
        c
    }

    fn init() -> PrivateCluster {
        let dir = tempfile::tempdir().unwrap();
        if root() {
            chown_to_postgres(dir.path());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = PrivateCluster {
            dir,
            bin: Self::bin_dir(),
            port,
            settings: String::new(),
        };
        c.run(
            "initdb",
            &[
                "-D",
                &c.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        c
    }

    /// Writes `name` into the data directory with `mode`, owned by the
    /// cluster's user.
    fn write_owned(&self, name: &str, text: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = Path::new(&self.data()).join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        if root() {
            chown_to_postgres(&path);
        }
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let opts = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c fsync=on -c synchronous_commit=on {}",
            self.port,
            self.dir.path().display(),
            self.settings
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-l", &log, "-o", &opts, "-w", "start"],
        );
    }

    /// Stops the server the hard way: no shutdown checkpoint, every client
    /// connection cut (what a crash or a failover looks like to clients).
    pub fn stop_immediately(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// The port it listens on (at 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of its `postgres` database with kyu's tables in `schema`.
    pub fn url(&self, schema: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?schema={schema}",
            self.port
        )
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn chown_to_postgres(path: &Path) {
    let ok = Command::new("chown")
        .arg("postgres:")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown {} to postgres", path.display());
}
