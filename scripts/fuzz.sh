#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] — runs every fuzz target of fuzz/ for SECONDS
# each (default 60).
#
# With a nightly toolchain it uses cargo-fuzz (libFuzzer, AddressSanitizer,
# coverage-guided), installing cargo-fuzz from crates.io if missing. Without
# nightly (cargo-fuzz needs -Zsanitizer), or with KYU_FUZZ_MODE=stable, it runs
# the same target bodies with the stable runner (fuzz/src/bin/stable.rs:
# seeds, kept crash inputs, then random mutations; no coverage feedback). It
# says which it used. .ci/run uses KYU_FUZZ_MODE=stable: cargo-fuzz's
# sanitizer build of every dependency would take CI ten minutes.
#
# Each target starts from fuzz/seeds/TARGET and replays fuzz/regressions/TARGET
# (inputs of crashes found and fixed). A crash stops the script (exit 1) and
# leaves the input in fuzz/artifacts/TARGET/. Figures per target are printed
# and appended to fuzz/artifacts/summary.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-60}"
targets=(cron config_toml database_url new_job api_request)
cd "$root/fuzz"
mkdir -p artifacts

mode="${KYU_FUZZ_MODE:-}"
if [ -z "$mode" ]; then
  if cargo +nightly --version > /dev/null 2>&1; then
    if ! cargo +nightly fuzz --version > /dev/null 2>&1; then
      echo "fuzz: installing cargo-fuzz from crates.io (nightly toolchain found)"
      cargo install --locked cargo-fuzz > /dev/null 2>&1 || echo "fuzz: cargo-fuzz did not install"
    fi
    if cargo +nightly fuzz --version > /dev/null 2>&1; then mode=libfuzzer; else mode=stable; fi
  else
    echo "fuzz: no nightly toolchain (cargo-fuzz needs -Zsanitizer): using the stable runner"
    mode=stable
  fi
fi

summary=artifacts/summary.txt
if [ "$mode" = libfuzzer ]; then
  echo "fuzz: cargo-fuzz (libFuzzer + AddressSanitizer), ${secs}s per target"
  cargo +nightly fuzz build -O
  for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    dirs=("corpus/$t" "seeds/$t")
    [ -d "regressions/$t" ] && dirs+=("regressions/$t")
    log="artifacts/$t.log"
    if ! cargo +nightly fuzz run -O "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 > "$log" 2>&1; then
      tail -40 "$log"
      echo "fuzz: $t CRASHED; the input is in fuzz/artifacts/$t/" >&2
      exit 1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
    line="$t: $execs executions in ${secs} s (cargo-fuzz), coverage $cov edges, 0 crashes"
    echo "$line" | tee -a "$summary"
  done
else
  # Built in the main target/ directory with its dev profile, so that it
  # reuses the dependencies `cargo test` compiled (CI builds nothing twice).
  profile="${KYU_FUZZ_PROFILE:-dev}"
  echo "fuzz: stable runner (no coverage feedback, $profile profile), ${secs}s per target"
  CARGO_TARGET_DIR="$root/target" cargo build -q --profile "$profile" \
    --no-default-features --features stable-runner --bin stable
  dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
  for t in "${targets[@]}"; do
    "$root/target/$dir/stable" "$t" "$secs" | tee -a "$summary"
  done
fi
