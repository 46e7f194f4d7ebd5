//! `kyu bench` as a user runs it: it measures the backend the database URL
//! names (`--database`, `KYU_DATABASE_URL`, kyu.toml), in a fresh file or
//! schema beside it that it removes afterwards, repeats `--runs` times with a
//! summary, and reports its `--preload`. Short runs only: these tests check
//! what is measured and printed, never how fast.

use std::path::Path;
use std::process::{Command, Output};

const KYU: &str = env!("CARGO_BIN_EXE_kyu");

/// `kyu ARGS` in `dir`, with no database or config from the environment.
fn kyu_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(KYU)
        .current_dir(dir)
        .args(args)
        .env_remove("KYU_DATABASE_URL")
        .env_remove("KYU_CONFIG")
        .output()
        .expect("run kyu")
}

fn kyu(args: &[&str]) -> Output {
    kyu_in(&std::env::temp_dir(), args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON lines of a successful run.
fn rows(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "kyu bench failed: {}", stderr(o));
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// The test PostgreSQL, or `None` (the test is skipped) when
/// `KYU_TEST_POSTGRES_URL` is not set.
fn postgres_url() -> Option<String> {
    match std::env::var("KYU_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!("KYU_TEST_POSTGRES_URL is not set: skipped");
            None
        }
    }
}

/// The schemas of the test database whose names start with `prefix`.
fn schemas_like(url: &str, prefix: &str) -> Vec<String> {
    use kyu::postgres::sqlx::{self, Connection};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (options, _) = kyu::postgres::split_url(url).expect("url");
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .expect("connect");
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
            .bind(prefix)
            .fetch_all(&mut conn)
            .await
            .expect("schemas")
    })
}

#[test]
fn bench_runs_both_workloads_in_separate_processes() {
    let o = kyu(&[
        "bench",
        "--json",
        "--runs",
        "1",
        "--jobs",
        "300",
        "--w2-jobs",
        "30",
        "--w2-warmup",
        "3",
    ]);
    let rows = rows(&o);
    let runs: Vec<_> = rows.iter().filter(|r| r["summary"] != true).collect();
    assert_eq!(runs.len(), 2, "{rows:?}");
    assert_eq!(runs[0]["workload"], "W1");
    assert_eq!(runs[0]["completed"], 300);
    assert_eq!(runs[0]["duplicates"], 0);
    assert!(runs[0]["process_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(runs[1]["workload"], "W2");
    assert_eq!(runs[1]["measured"], 30);
    assert!(runs[1]["p99_ms"].as_f64().unwrap() >= runs[1]["p50_ms"].as_f64().unwrap());
}

/// `--database sqlite://DIR/app.db`: the fresh database is made in DIR (the
/// disk the user asked about), and nothing is left there afterwards, not
/// even the named database.
#[test]
fn bench_measures_sqlite_beside_the_named_database_and_leaves_no_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().canonicalize().expect("canonical");
    let url = format!("sqlite://{}/app.db", dir.display());
    let o = kyu(&[
        "--database",
        &url,
        "bench",
        "--json",
        "--workload",
        "w1",
        "--jobs",
        "200",
    ]);
    let rows = rows(&o);
    assert_eq!(rows[0]["backend"], "sqlite", "{rows:?}");
    assert_eq!(rows[0]["completed"], 200, "{rows:?}");
    assert_eq!(
        rows[0]["store"]["dir"],
        dir.display().to_string(),
        "{rows:?}"
    );
    assert_eq!(
        files_in(&dir),
        Vec::<String>::new(),
        "left behind in {dir:?}"
    );
}

/// `database` in kyu.toml is honoured as the other commands honour it
/// (relative to the file).
#[test]
fn bench_measures_the_database_named_in_kyu_toml() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path().canonicalize().expect("canonical");
    std::fs::create_dir(root.join("data")).expect("data dir");
    std::fs::write(
        root.join("kyu.toml"),
        "database = \"sqlite://data/app.db\"\n",
    )
    .expect("toml");
    let o = kyu_in(
        &root,
        &["bench", "--json", "--workload", "w1", "--jobs", "200"],
    );
    let rows = rows(&o);
    assert_eq!(
        rows[0]["store"]["dir"],
        root.join("data").display().to_string(),
        "{rows:?}"
    );
    assert_eq!(files_in(&root.join("data")), Vec::<String>::new());
}

/// `--database postgres://…` measures PostgreSQL, in a fresh schema that is
/// dropped afterwards; the schema the URL names is not touched.
#[test]
fn bench_measures_postgres_when_the_database_is_postgres_and_drops_its_schema() {
    let Some(base) = postgres_url() else { return };
    let mine = format!("t_bench_{}", std::process::id());
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema={mine}");
    let o = kyu(&[
        "--database",
        &url,
        "bench",
        "--json",
        "--workload",
        "w1",
        "--jobs",
        "200",
        "--preload",
        "300",
    ]);
    let rows = rows(&o);
    assert_eq!(rows[0]["backend"], "postgres", "{rows:?}");
    assert_eq!(rows[0]["completed"], 200, "{rows:?}");
    // The preload was vacuumed and checkpointed before the clock started.
    assert_eq!(rows[0]["preload"], 300, "{rows:?}");
    assert_eq!(rows[0]["preload_settled"], true, "{rows:?}");
    let schema = rows[0]["store"]["schema"]
        .as_str()
        .expect("schema")
        .to_string();
    assert!(schema.starts_with("kyu_bench_"), "{schema}");
    assert_eq!(
        schemas_like(&base, &schema),
        Vec::<String>::new(),
        "dropped"
    );
    assert_eq!(
        schemas_like(&base, &mine),
        Vec::<String>::new(),
        "untouched"
    );
}

/// `--postgres URL`, the old spelling, still works and says to use --database.
#[test]
fn bench_postgres_flag_is_a_deprecated_alias_of_database() {
    let Some(base) = postgres_url() else { return };
    let o = kyu(&[
        "bench",
        "--json",
        "--runs",
        "1",
        "--workload",
        "w1",
        "--jobs",
        "200",
        "--postgres",
        &base,
    ]);
    let rows = rows(&o);
    assert_eq!(rows[0]["backend"], "postgres", "{rows:?}");
    assert!(stderr(&o).contains("use --database"), "{}", stderr(&o));
}

/// What kyu bench cannot measure is refused, before anything is written,
/// with exit 2 and a message naming the URL and what is accepted.
#[test]
fn bench_refuses_a_database_it_cannot_measure_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = format!("sqlite://{}/no/such/dir/app.db", dir.path().display());
    for (url, needle) in [
        ("mysql://u@h/db", "mysql://"),
        ("sqlite::memory:", "memory"),
        (missing.as_str(), "no/such/dir"),
    ] {
        let o = kyu(&[
            "--database",
            url,
            "bench",
            "--workload",
            "w1",
            "--jobs",
            "200",
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains(needle), "{url}: {err}");
        assert!(err.contains("accepted"), "{url}: {err}");
    }
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
}

/// `--runs 2`: two runs, each on a fresh database, then a summary with the
/// median, min and max; the human output says the same.
#[test]
fn bench_runs_k_times_and_prints_median_min_and_max() {
    let args = ["bench", "--runs", "2", "--workload", "w1", "--jobs", "200"];
    let rows = rows(&kyu(&[&args[..], &["--json"]].concat()));
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["run"], 1);
    assert_eq!(rows[1]["run"], 2);
    let summary = &rows[2];
    assert_eq!(summary["summary"], true, "{summary}");
    assert_eq!(summary["runs"], 2, "{summary}");
    assert_eq!(summary["backend"], "sqlite", "{summary}");
    assert!(
        summary["machine"]["nproc"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    let p = &summary["process_per_s"];
    let (lo, mid, hi) = (
        p["min"].as_f64().unwrap(),
        p["median"].as_f64().unwrap(),
        p["max"].as_f64().unwrap(),
    );
    let runs = [&rows[0], &rows[1]].map(|r| r["process_per_s"].as_f64().unwrap());
    assert_eq!(lo, runs[0].min(runs[1]), "{summary}");
    assert_eq!(hi, runs[0].max(runs[1]), "{summary}");
    assert!(lo <= mid && mid <= hi, "{summary}");

    let o = kyu(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "backend: sqlite (",
        "cores",
        "W1 run 1",
        "W1 run 2",
        "median of 2",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

/// `--preload N`: N completed jobs are in the queue before the clock starts;
/// the run counts only its own jobs and says how many were preloaded.
#[test]
fn bench_reports_its_preload() {
    let args = [
        "bench",
        "--runs",
        "1",
        "--workload",
        "w1",
        "--jobs",
        "200",
        "--preload",
        "500",
    ];
    let rows = rows(&kyu(&[&args[..], &["--json"]].concat()));
    assert_eq!(rows[0]["preload"], 500, "{rows:?}");
    assert_eq!(rows[0]["completed"], 200, "{rows:?}");
    // SQLite has nothing to settle.
    assert_eq!(rows[0]["preload_settled"], false, "{rows:?}");
    assert_eq!(rows[1]["preload"], 500, "{rows:?}");
    let o = kyu(&args);
    assert!(stdout(&o).contains("preload 500"), "{}", stdout(&o));
}

#[test]
fn bench_help_states_each_option_and_its_default() {
    let o = kyu(&["bench", "--help"]);
    let help = stdout(&o);
    for needle in [
        "--runs <K>",
        "[default: 3]",
        "--preload <N>",
        "--database",
        "KYU_DATABASE_URL",
        "kyu.toml",
        "--postgres <URL>",
        "Deprecated: use --database",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}

/// `--via http`: the bench starts a real `kyu serve` on each run's database
/// and speaks only its HTTP API (W1: `POST /v1/jobs/batch` and a remote
/// worker claiming in batches; W2: `POST /v1/jobs` one at a time), then stops
/// the server and removes the database like the native runs.
fn bench_via_http_measures_w1_and_w2_through_kyu_serve(
    database: &str,
    dir: Option<&Path>,
) -> Vec<serde_json::Value> {
    let o = kyu(&[
        "--database",
        database,
        "bench",
        "--via",
        "http",
        "--json",
        "--workload",
        "w1",
        "--jobs",
        "200",
        "--chunk",
        "50",
        "--runs",
        "1",
    ]);
    let first = crate::rows(&o);
    let rows = &first;
    let w1 = &rows[0];
    assert_eq!(w1["workload"], "W1", "{rows:?}");
    assert_eq!(w1["via"], "http", "{rows:?}");
    assert_eq!(w1["bulk_api"], "POST /v1/jobs/batch", "{rows:?}");
    assert_eq!(w1["completed"], 200, "{rows:?}");
    assert_eq!(w1["timed_out"], false, "{rows:?}");
    assert_eq!(w1["duplicates"], 0, "{rows:?}");
    assert!(w1["process_per_s"].as_f64().unwrap() > 0.0, "{rows:?}");
    assert!(w1["enqueue_per_s"].as_f64().unwrap() > 0.0, "{rows:?}");
    assert!(w1["server_max_rss_mib"].as_f64().unwrap() > 0.0, "{rows:?}");
    assert_eq!(rows[1]["summary"], true, "{rows:?}");
    assert_eq!(rows[1]["via"], "http", "{rows:?}");

    let o = kyu(&[
        "--database",
        database,
        "bench",
        "--via",
        "http",
        "--json",
        "--workload",
        "w2",
        "--w2-jobs",
        "60",
        "--w2-warmup",
        "5",
        "--runs",
        "1",
    ]);
    let rows = crate::rows(&o);
    let w2 = &rows[0];
    assert_eq!(w2["workload"], "W2", "{rows:?}");
    assert_eq!(w2["via"], "http", "{rows:?}");
    assert_eq!(w2["single_api"], "POST /v1/jobs", "{rows:?}");
    assert_eq!(w2["measured"], 60, "{rows:?}");
    assert_eq!(w2["completed"], 60, "{rows:?}");
    assert_eq!(w2["duplicates"], 0, "{rows:?}");
    assert!(w2.get("saturated").is_none(), "{rows:?}");
    let p50 = w2["p50_ms"].as_f64().expect("p50");
    let p99 = w2["p99_ms"].as_f64().expect("p99");
    let max = w2["max_ms"].as_f64().expect("max");
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{rows:?}");
    assert!(
        rows[1]["p99_ms"]["median"].as_f64().unwrap() > 0.0,
        "{rows:?}"
    );
    if let Some(dir) = dir {
        assert_eq!(
            files_in(dir),
            Vec::<String>::new(),
            "left behind in {dir:?}"
        );
    }

    // People are told the mode.
    let o = kyu(&[
        "--database",
        database,
        "bench",
        "--via",
        "http",
        "--workload",
        "w1",
        "--jobs",
        "50",
        "--runs",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("via http"), "{}", stdout(&o));
    vec![first[0]["store"].clone(), rows[0]["store"].clone()]
}

#[test]
fn bench_via_http_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().canonicalize().expect("canonical");
    let url = format!("sqlite://{}/app.db", dir.display());
    bench_via_http_measures_w1_and_w2_through_kyu_serve(&url, Some(&dir));
}

#[test]
fn bench_via_http_on_postgres() {
    let Some(base) = postgres_url() else { return };
    for store in bench_via_http_measures_w1_and_w2_through_kyu_serve(&base, None) {
        let schema = store["schema"].as_str().expect("schema");
        assert!(schema.starts_with("kyu_bench_"), "{schema}");
        assert_eq!(schemas_like(&base, schema), Vec::<String>::new(), "dropped");
    }
}
