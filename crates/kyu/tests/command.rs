//! Command jobs with real child processes: environment and stdin, captured
//! and bounded output, progress lines, exit codes, and cancel / timeout
//! killing the whole process group, grandchildren included.

mod common;

use std::time::Duration;

use common::{eventually, fresh, on_each_backend, quick, Backend};
use kyu::command_job::CommandSpec;
use kyu::{CancelResult, JobState, Kyu, NewJob, Worker, WorkerHandle};

on_each_backend!(
    env_and_stdin_reach_the_command_and_output_is_kept,
    an_api_url_gives_each_attempt_its_own_job_token,
    output_is_bounded_to_the_last_bytes,
    progress_lines_and_json_result,
    exit_codes_map_to_outcomes,
    cancel_kills_the_whole_process_group,
    a_timeout_kills_the_group_and_fails_the_attempt,
    a_missing_program_fails_permanently_with_its_name,
    shutdown_kills_the_whole_group_before_it_releases_the_job,
    a_command_ends_when_it_exits_though_a_detached_process_holds_its_output,
    args_too_big_for_the_environment_arrive_on_stdin,
    the_jobs_own_timeout_wins_over_the_kinds,
);

const WAIT: Duration = Duration::from_secs(30);

fn sh(script: &str) -> CommandSpec {
    let mut spec = CommandSpec::new(vec!["sh".into(), "-c".into(), script.into()]);
    spec.stop_grace = Duration::from_millis(500);
    spec
}

fn start(kyu: &Kyu, spec: CommandSpec) -> WorkerHandle {
    Worker::new(kyu)
        .command("cmd", spec)
        .configure(|c| {
            quick(c);
            c.cancel_grace = Duration::from_secs(5);
        })
        .start()
}

/// True while `pid` runs: a zombie (dead, not yet reaped by whoever
/// inherited it) counts as dead.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => !matches!(
            stat.rsplit_once(") ").map(|(_, r)| r.as_bytes()[0]),
            Some(b'Z')
        ),
        Err(_) => true,
    }
}

fn read_pid(path: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

async fn env_and_stdin_reach_the_command_and_output_is_kept(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = start(
        &kyu,
        sh(
            r#"echo "id=$KYU_JOB_ID attempt=$KYU_ATTEMPT queue=$KYU_QUEUE kind=$KYU_KIND args=$KYU_ARGS py=$PYTHONUNBUFFERED"; echo "stdin=$(cat)"; echo oops >&2"#,
        ),
    );
    let e = kyu
        .enqueue(NewJob::new("cmd", serde_json::json!({"user": 42})))
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Completed, "{:?}", job.errors);
    let logs = kyu.logs(e.id).await.unwrap();
    let last = logs.last().expect("output recorded");
    assert_eq!(last.attempt, 1);
    assert!(
        last.stdout.contains(&format!(
            "id={} attempt=1 queue=default kind=cmd args={{\"user\":42}} py=1",
            e.id
        )),
        "{}",
        last.stdout
    );
    assert!(
        last.stdout.contains("stdin={\"user\":42}"),
        "{}",
        last.stdout
    );
    assert_eq!(last.stderr, "oops\n");
    worker.shutdown().await;
}

async fn an_api_url_gives_each_attempt_its_own_job_token(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let mut spec =
        sh(r#"echo "url=$KYU_API_URL token=$KYU_JOB_TOKEN"; [ "$KYU_ATTEMPT" = 2 ] || exit 3"#);
    spec.api_url = Some("http://127.0.0.1:7070".into());
    let worker = start(&kyu, spec);
    let e = kyu
        .enqueue(
            NewJob::new("cmd", serde_json::json!({}))
                .max_attempts(2)
                .retry(kyu::RetryPolicy::fixed(Duration::ZERO)),
        )
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Completed, "{:?}", job.errors);
    let logs = kyu.logs(e.id).await.unwrap();
    assert_eq!(logs.len(), 2, "{logs:?}");
    for (n, log) in logs.iter().enumerate() {
        let attempt = n as u32 + 1;
        let token = kyu.job_token(e.id, attempt).await.unwrap();
        assert_eq!(
            log.stdout,
            format!("url=http://127.0.0.1:7070 token={token}\n"),
            "attempt {attempt}"
        );
        let grant = kyu.job_grant(&token).await.unwrap().unwrap();
        assert_eq!((grant.job, grant.attempt), (e.id, attempt));
    }
    worker.shutdown().await;
}

async fn output_is_bounded_to_the_last_bytes(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let mut spec = sh("i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done");
    spec.log_limit = 100;
    let worker = start(&kyu, spec);
    let e = kyu
        .enqueue(NewJob::new("cmd", serde_json::json!({})))
        .await
        .unwrap();
    kyu.wait(e.id).timeout(WAIT).await.unwrap();
    let logs = kyu.logs(e.id).await.unwrap();
    let last = logs.last().unwrap();
    assert_eq!(last.stdout.len(), 100);
    assert!(last.stdout.ends_with("line-1999\n"), "{}", last.stdout);
    assert!(last.stdout_bytes > 10_000, "every byte is counted");
    worker.shutdown().await;
}

async fn progress_lines_and_json_result(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let mut spec = sh(r#"echo "::kyu-progress 40 step 2 of 5"; echo '{"synced": 3}'"#);
    spec.result_from_stdout = true;
    let worker = start(&kyu, spec);
    let e = kyu
        .enqueue(NewJob::new("cmd", serde_json::json!({})))
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    let p = job.progress.expect("progress recorded");
    assert_eq!((p.percent, p.message.as_str()), (40, "step 2 of 5"));
    assert_eq!(job.result.as_deref(), Some(r#"{"synced":3}"#));
    worker.shutdown().await;
}

async fn exit_codes_map_to_outcomes(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = start(
        &kyu,
        sh(r#"echo "failing with $1" >&2; exit $(cat | tr -dc 0-9)"#),
    );
    let retry = kyu
        .enqueue(
            NewJob::new("cmd", serde_json::json!(3))
                .max_attempts(2)
                .retry(kyu::RetryPolicy::fixed(Duration::from_millis(10))),
        )
        .await
        .unwrap();
    let permanent = kyu
        .enqueue(NewJob::new("cmd", serde_json::json!(65)).max_attempts(5))
        .await
        .unwrap();
    let ok = kyu
        .enqueue(NewJob::new("cmd", serde_json::json!(0)))
        .await
        .unwrap();

    let job = kyu.wait(retry.id).timeout(WAIT).await.unwrap();
    assert_eq!(
        (job.state, job.attempt),
        (JobState::Failed, 2),
        "retried by policy"
    );
    assert!(
        job.errors[0].message.starts_with("exited with status 3"),
        "{:?}",
        job.errors
    );
    let job = kyu.wait(permanent.id).timeout(WAIT).await.unwrap();
    assert_eq!(
        (job.state, job.attempt),
        (JobState::Failed, 1),
        "65 is never retried"
    );
    assert!(
        job.errors[0].message.contains("permanent"),
        "{:?}",
        job.errors
    );
    assert_eq!(
        kyu.wait(ok.id).timeout(WAIT).await.unwrap().state,
        JobState::Completed
    );
    worker.shutdown().await;
}

/// A script that starts a grandchild which ignores SIGTERM, writes both pids
/// to files, then waits.
fn stubborn_family(dir: &std::path::Path) -> CommandSpec {
    sh(&format!(
        r#"sh -c 'trap "" TERM; echo $$ > {d}/grandchild; while true; do sleep 0.1; done' &
echo $$ > {d}/child
wait"#,
        d = dir.display()
    ))
}

async fn pids(dir: &std::path::Path) -> (i32, i32) {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    eventually(WAIT, "the command and its grandchild start", || async {
        read("child").is_some() && read("grandchild").is_some()
    })
    .await;
    (read("child").unwrap(), read("grandchild").unwrap())
}

async fn cancel_kills_the_whole_process_group(backend: Backend) {
    let (kyu, dir) = fresh(backend).await;
    let worker = start(&kyu, stubborn_family(dir.path()));
    let e = kyu
        .enqueue(NewJob::new("cmd", serde_json::json!({})))
        .await
        .unwrap();
    let (child, grandchild) = pids(dir.path()).await;
    assert_eq!(
        kyu.cancel(&[e.id]).await.unwrap(),
        vec![CancelResult::Requested]
    );
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    eventually(WAIT, "no process of the job is left", || async {
        !alive(child) && !alive(grandchild)
    })
    .await;
    worker.shutdown().await;
}

async fn a_timeout_kills_the_group_and_fails_the_attempt(backend: Backend) {
    let (kyu, dir) = fresh(backend).await;
    let mut spec = stubborn_family(dir.path());
    spec.timeout = Some(Duration::from_millis(700));
    let worker = start(&kyu, spec);
    let e = kyu
        .enqueue(NewJob::new("cmd", serde_json::json!({})).max_attempts(1))
        .await
        .unwrap();
    let (child, grandchild) = pids(dir.path()).await;
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.errors[0].message, "timed out after 700ms");
    eventually(WAIT, "no process of the job is left", || async {
        !alive(child) && !alive(grandchild)
    })
    .await;
    worker.shutdown().await;
}

async fn a_missing_program_fails_permanently_with_its_name(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = start(&kyu, CommandSpec::new(vec!["/no/such/program".into()]));
    let e = kyu
        .enqueue(NewJob::new("cmd", serde_json::json!({})))
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Failed, 1));
    assert!(
        job.errors[0].message.contains("/no/such/program"),
        "{:?}",
        job.errors
    );
    worker.shutdown().await;
}

async fn shutdown_kills_the_whole_group_before_it_releases_the_job(backend: Backend) {
    let (kyu, dir) = fresh(backend).await;
    let mut spec = stubborn_family(dir.path());
    spec.stop_grace = Duration::from_millis(300);
    let worker = Worker::new(&kyu)
        .command("cmd", spec)
        .configure(|c| {
            quick(c);
            c.shutdown_grace = Duration::from_millis(300);
        })
        .start();
    let e = kyu
        .enqueue(NewJob::new("cmd", serde_json::json!({})))
        .await
        .unwrap();
    let (child, grandchild) = pids(dir.path()).await;
    worker.shutdown().await;
    // No waiting here: once shutdown returns, the job may run elsewhere, so
    // nothing of the old attempt may still be running.
    assert!(!alive(child), "the command outlived the worker's shutdown");
    assert!(
        !alive(grandchild),
        "the command's grandchild (which ignores SIGTERM) outlived the worker's shutdown"
    );
    let job = kyu.job(e.id).await.unwrap();
    assert_eq!(
        job.state,
        JobState::Available,
        "released for another worker"
    );
}

async fn a_command_ends_when_it_exits_though_a_detached_process_holds_its_output(backend: Backend) {
    let (kyu, dir) = fresh(backend).await;
    let mut spec = sh(&format!(
        "setsid sh -c 'echo $$ > {d}/detached; exec sleep 60' & echo started; exit 0",
        d = dir.path().display()
    ));
    spec.timeout = Some(Duration::from_secs(3));
    let worker = start(&kyu, spec);
    let e = kyu
        .enqueue(NewJob::new("cmd", serde_json::json!({})).max_attempts(1))
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(Duration::from_secs(20)).await;
    let detached = read_pid(&dir.path().join("detached"));
    if let Some(pid) = detached {
        // SAFETY: the test's own detached process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let job = job.expect("the job ended while the detached process still ran");
    assert_eq!(job.state, JobState::Completed, "{:?}", job.errors);
    let logs = kyu.logs(e.id).await.unwrap();
    assert_eq!(logs.last().unwrap().stdout, "started\n");
    worker.shutdown().await;
}

async fn args_too_big_for_the_environment_arrive_on_stdin(backend: Backend) {
    let (kyu, _dir) = fresh(backend).await;
    let worker = start(
        &kyu,
        sh(
            r#"if [ -n "${KYU_ARGS+set}" ]; then echo "KYU_ARGS set"; else echo "KYU_ARGS unset"; fi; echo "stdin $(wc -c)""#,
        ),
    );
    let big = "x".repeat(300 * 1024);
    let e = kyu
        .enqueue(NewJob::new("cmd", serde_json::json!(big)).max_attempts(1))
        .await
        .unwrap();
    let job = kyu.wait(e.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Completed, "{:?}", job.errors);
    let out = &kyu.logs(e.id).await.unwrap().last().unwrap().stdout.clone();
    assert_eq!(
        out,
        &format!("KYU_ARGS unset\nstdin {}\n", big.len() + 2),
        "the args came whole on stdin"
    );
    worker.shutdown().await;
}

async fn the_jobs_own_timeout_wins_over_the_kinds(backend: Backend) {
    let (kyu, dir) = fresh(backend).await;
    // Longer than the kind's timeout: the job's wins, the command finishes.
    let mut spec = sh(&format!(
        "trap 'echo term > {d}/term; exit 1' TERM; n=$(cat); sleep $n & wait",
        d = dir.path().display()
    ));
    spec.timeout = Some(Duration::from_millis(300));
    let worker = start(&kyu, spec);
    let longer = kyu
        .enqueue(
            NewJob::new("cmd", serde_json::json!(1))
                .timeout(Duration::from_secs(10))
                .max_attempts(1),
        )
        .await
        .unwrap();
    let job = kyu.wait(longer.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Completed, "{:?}", job.errors);
    worker.shutdown().await;

    // Shorter than the kind's: the command is stopped the usual way (SIGTERM
    // first) at the job's timeout.
    let mut spec = sh(&format!(
        "trap 'echo term > {d}/term; exit 1' TERM; n=$(cat); sleep $n & wait",
        d = dir.path().display()
    ));
    spec.timeout = Some(Duration::from_secs(30));
    let worker = start(&kyu, spec);
    let shorter = kyu
        .enqueue(
            NewJob::new("cmd", serde_json::json!(20))
                .timeout(Duration::from_millis(700))
                .max_attempts(1),
        )
        .await
        .unwrap();
    let job = kyu.wait(shorter.id).timeout(WAIT).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.errors[0].message, "timed out after 700ms");
    assert!(
        dir.path().join("term").exists(),
        "the command was sent SIGTERM before it was killed"
    );
    worker.shutdown().await;
}
