//! The fuzz targets on the stable toolchain, for machines without nightly
//! (cargo-fuzz's libFuzzer needs `-Zsanitizer`). No coverage feedback: it
//! replays the seeds and every kept crash, then runs random mutations of the
//! seeds (bit flips, interesting bytes, dictionary tokens, cuts, repeats and
//! splices) for the given time. A panic saves the input under
//! `fuzz/artifacts/TARGET/` and exits 1.
//!
//! Usage: `stable TARGET SECONDS [SEED]`

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Tokens the mutator inserts: the words of each grammar, so random inputs
/// reach past the first check.
const DICTIONARY: &[&str] = &[
    "*",
    "/",
    "-",
    ",",
    " ",
    "@daily",
    "@hourly",
    "@yearly",
    "MON",
    "SUN",
    "JAN",
    "DEC",
    "L",
    "?",
    "#",
    "59",
    "60",
    "0",
    "31",
    "29",
    "2",
    "7",
    "4294967296",
    "99999999999",
    "=",
    "\"",
    "[",
    "]",
    "[[schedules]]",
    "[jobs.a]",
    "[queues.a]",
    "[worker]",
    "[retention]",
    "command = [\"x\"]",
    "cron = \"* * * * *\"",
    "zone = \"America/Juneau\"",
    "timeout = \"0s\"",
    "lease = \"1ns\"",
    "every = \"0s\"",
    "retry = \"exponential:1s:0s\"",
    "max_attempts = 0",
    "concurrency = 0",
    "\n",
    "sqlite://",
    "sqlite:",
    "postgres://",
    "postgresql://",
    "u:p@h:5432/db",
    "?",
    "&",
    "sslmode=",
    "sslrootcert=",
    "schema=",
    "migrate=",
    "connect_timeout=",
    "statement_timeout=",
    "%",
    "%ff",
    ":memory:",
    "{",
    "}",
    "\"kind\":",
    "\"queue\":",
    "\"args\":",
    "\"run_at\":",
    "\"retry\":",
    "\"timeout\":",
    "\"max_attempts\":",
    "\"uniqueness\":",
    "\"tags\":[]",
    "18446744073709551615",
    "-1",
    "1e999",
    "\"262143-12-31T23:59:59Z\"",
    "{\"type\":\"exponential\",\"initial_ms\":1,\"cap_ms\":18446744073709551615}",
    "\u{0}",
    "\u{202e}",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: stable TARGET SECONDS [SEED]");
        std::process::exit(2);
    }
    let name = args[1].as_str();
    let Some(&(_, target)) = kyu_fuzz::TARGETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = kyu_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("unknown target {name:?}; accepted: {}", names.join(", "));
        std::process::exit(2);
    };
    let seconds: u64 = args[2].parse().unwrap_or_else(|_| {
        eprintln!("{:?} is not a number of seconds", args[2]);
        std::process::exit(2);
    });
    let seed: u64 = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    let mut corpus = read_dir(&root.join("seeds").join(name));
    let kept = read_dir(&root.join("regressions").join(name));
    corpus.extend(kept.iter().cloned());
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    // Quiet panics: the runner reports the one that matters.
    std::panic::set_hook(Box::new(|_| {}));
    let mut execs: u64 = 0;
    for input in &corpus {
        run_one(name, target, input, root);
        execs += 1;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let budget = Duration::from_secs(seconds);
    while start.elapsed() < budget {
        for _ in 0..256 {
            let mut input = corpus[rng.gen_range(0..corpus.len())].clone();
            for _ in 0..rng.gen_range(1..=8) {
                mutate(&mut input, &corpus, &mut rng);
            }
            input.truncate(4096);
            run_one(name, target, &input, root);
            execs += 1;
        }
    }
    println!(
        "{name}: {execs} executions in {:.0} s (stable runner, seed {seed}), {} seeds and {} kept crash inputs replayed, 0 crashes",
        start.elapsed().as_secs_f64(),
        corpus.len() - kept.len(),
        kept.len()
    );
}

fn read_dir(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

fn run_one(name: &str, target: kyu_fuzz::Target, input: &[u8], root: &Path) {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| target(input)));
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let dir = root.join("artifacts").join(name);
        let _ = std::fs::create_dir_all(&dir);
        let hash = input.iter().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ *b as u64).wrapping_mul(0x100000001b3)
        });
        let file = dir.join(format!("crash-{hash:016x}"));
        let _ = std::fs::write(&file, input);
        eprintln!(
            "{name}: CRASH: {message}\ninput ({} bytes, saved to {}): {:?}",
            input.len(),
            file.display(),
            String::from_utf8_lossy(input)
        );
        std::process::exit(1);
    }
}

fn mutate(input: &mut Vec<u8>, corpus: &[Vec<u8>], rng: &mut StdRng) {
    let len = input.len();
    match rng.gen_range(0..8) {
        0 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] = *[0u8, 0xff, 0x7f, 0x80, b'0', b'9', b' ', b'\n', b'"']
                .get(rng.gen_range(0..9))
                .unwrap();
        }
        2 | 3 => {
            let token = DICTIONARY[rng.gen_range(0..DICTIONARY.len())].as_bytes();
            let at = rng.gen_range(0..=len);
            input.splice(at..at, token.iter().copied());
        }
        4 if len > 0 => {
            let a = rng.gen_range(0..len);
            let b = rng.gen_range(a..=len.min(a + 16));
            input.drain(a..b);
        }
        5 if len > 0 => {
            let a = rng.gen_range(0..len);
            let b = rng.gen_range(a..=len.min(a + 16));
            let piece = input[a..b].to_vec();
            for _ in 0..rng.gen_range(1..=4) {
                input.splice(b..b, piece.iter().copied());
            }
        }
        6 => {
            let other = &corpus[rng.gen_range(0..corpus.len())];
            if !other.is_empty() {
                let a = rng.gen_range(0..other.len());
                let at = rng.gen_range(0..=len);
                input.splice(at..at, other[a..].iter().copied());
            }
        }
        _ if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] = rng.gen();
        }
        _ => input.push(rng.gen()),
    }
}
