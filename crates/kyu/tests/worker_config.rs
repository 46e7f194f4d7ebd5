//! A worker configuration that cannot work is refused when the worker starts,
//! with the field and what is accepted: never a panic in a worker task (a zero
//! lease used to panic the heartbeat task and let every job run twice).

use std::time::Duration;

use kyu::{Kyu, Worker, WorkerConfig};

#[tokio::test]
async fn worker_refuses_a_zero_lease_instead_of_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kyu = Kyu::connect(&format!("sqlite://{}/kyu.db", dir.path().display()))
        .await
        .expect("connect");
    type Change = fn(&mut WorkerConfig);
    let cases: [(&str, Change); 4] = [
        ("lease", |c| c.lease = Duration::ZERO),
        ("lease", |c| c.lease = Duration::from_millis(10)),
        ("heartbeat_every", |c| c.heartbeat_every = Duration::ZERO),
        ("cancel_poll", |c| c.cancel_poll = Duration::ZERO),
    ];
    for (field, set) in cases {
        let mut config = WorkerConfig::default();
        set(&mut config);
        match Worker::new(&kyu).config(config).try_start() {
            Err(kyu::Error::Invalid(e)) => {
                assert_eq!(e.field, field, "{e}");
                assert!(e.problem.contains("accepted"), "{e}");
            }
            Err(e) => panic!("{field}: expected an invalid-input error, got {e}"),
            Ok(_) => panic!("{field}: a worker started with an unusable config"),
        }
    }
    let ok = WorkerConfig {
        lease: Duration::from_secs(2),
        heartbeat_every: Duration::from_millis(500),
        ..WorkerConfig::default()
    };
    let handle = Worker::new(&kyu)
        .config(ok)
        .try_start()
        .expect("a sound config starts");
    handle.shutdown().await;
}
