#!/usr/bin/env bash
# scripts/soak.sh [DURATION] — a long run of `kyu serve` under steady traffic.
#
# DURATION: seconds, or with a unit (30m, 2h). Default 30m.
#
# Traffic (all through the real `kyu` binary on one SQLite file):
#   - a producer enqueues 10 `ok` jobs, 2 `flaky` jobs (fail attempt 1, pass
#     attempt 2: fail-and-retry) and 1 `doomed` job (exit 65: fails for good)
#     every second, with `kyu enqueue KIND --jsonl`;
#   - a schedule fires every second (`* * * * * *`, overlap allow);
#   - every job is a command job (a real process per attempt);
#   - retention keeps finished jobs 2 minutes and runs every 10 s.
# Every 10 s it samples the `kyu serve` process's RSS, open file descriptors,
# the database's size on disk (file + WAL + SHM) and the jobs completed in the
# interval, into a CSV; at the end it renders a PNG chart (python3 +
# matplotlib, installed with pip into a private directory if missing; gnuplot
# if that fails) and prints the start / end figures after warm-up and whether
# RSS and descriptors stayed within 10 %.
#
# Output: $SOAK_OUT (default scripts/results/): soak.csv, soak.png, soak.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${SOAK_OUT:-$root/scripts/results}"
dur_arg="${1:-30m}"
case "$dur_arg" in
  *h) duration=$(( ${dur_arg%h} * 3600 )) ;;
  *m) duration=$(( ${dur_arg%m} * 60 )) ;;
  *s) duration=${dur_arg%s} ;;
  *) duration=$dur_arg ;;
esac
# Warm-up: until the first jobs leave by retention (2 min) and the schedule's
# jobs by their fire-time key (10 min): from then on the store is full.
warmup="${SOAK_WARMUP:-$(( duration >= 1800 ? 720 : duration / 3 ))}"
mkdir -p "$out"

echo "soak: building kyu (release)"
cargo build --release -q -p kyu-cli --manifest-path "$root/Cargo.toml"
kyu="$root/target/release/kyu"

work="$(mktemp -d -t kyu-soak.XXXXXX)"
serve_pid=""
producer_pid=""
cleanup() {
  [ -n "$producer_pid" ] && kill "$producer_pid" 2>/dev/null || true
  [ -n "$serve_pid" ] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/kyu.toml" <<'EOF'
database = "sqlite://kyu.db"

[retention]
completed = "2m"
failed = "2m"
every = "10s"

[queues.default]
concurrency = 8

[jobs.ok]
command = ["sh", "-c", "printf . >> ok.count"]

[jobs.flaky]
command = ["sh", "-c", "[ \"$KYU_ATTEMPT\" -ge 2 ] && printf . >> flaky.count"]
retry = "fixed:1s"
max_attempts = 3

[jobs.doomed]
command = ["sh", "-c", "printf . >> doomed.count; exit 65"]

[[schedules]]
name = "every-second"
cron = "* * * * * *"
kind = "ok"
overlap = "allow"
EOF
: > "$work/ok.count"; : > "$work/flaky.count"; : > "$work/doomed.count"

cd "$work"
"$kyu" serve 2> serve.log &
serve_pid=$!
for _ in $(seq 1 100); do grep -q "started" serve.log 2>/dev/null && break; sleep 0.1; done
grep -q "started" serve.log || { cat serve.log; echo "soak: kyu serve did not start" >&2; exit 1; }
echo "soak: kyu serve pid $serve_pid in $work for ${duration}s (warm-up ${warmup}s)"

ok_lines="$(for i in $(seq 1 10); do echo "{\"i\":$i}"; done)"
(
  enq=0
  while true; do
    echo "$ok_lines" | "$kyu" enqueue ok --jsonl > /dev/null
    printf '{"f":1}\n{"f":2}\n' | "$kyu" enqueue flaky --jsonl > /dev/null
    echo '{"d":1}' | "$kyu" enqueue doomed --jsonl > /dev/null
    enq=$((enq + 13))
    echo "$enq" > enqueued.count
    sleep 1
  done
) &
producer_pid=$!

csv="$out/soak.csv"
echo "elapsed_s,rss_kib,fds,db_bytes,completed_total,jobs_per_s,enqueued_total,wal_bytes,job_rows,page_count,freelist_pages" > "$csv"
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
completed() { echo $(( $(size ok.count) + $(size flaky.count) + $(size doomed.count) )); }
start=$(date +%s)
last_done=$(completed)
last_t=$start
while true; do
  now=$(date +%s)
  elapsed=$((now - start))
  kill -0 "$serve_pid" 2>/dev/null || { tail -20 serve.log; echo "soak: kyu serve died" >&2; exit 1; }
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$serve_pid/status")
  fds=$(ls "/proc/$serve_pid/fd" | wc -l)
  db=$(( $(size kyu.db) + $(size kyu.db-wal) + $(size kyu.db-shm) ))
  done_now=$(completed)
  dt=$((now - last_t)); [ "$dt" -gt 0 ] || dt=1
  rate=$(( (done_now - last_done) / dt ))
  enq=$(cat enqueued.count 2>/dev/null || echo 0)
  # Rows kept and the file's pages, read as any reader would.
  rows=$(python3 -c "
import sqlite3
c = sqlite3.connect('file:kyu.db?mode=ro', uri=True, timeout=5)
print(c.execute('SELECT count(*) FROM jobs').fetchone()[0], c.execute('PRAGMA page_count').fetchone()[0], c.execute('PRAGMA freelist_count').fetchone()[0], sep=',')
" 2>/dev/null || echo ",,")
  echo "$elapsed,$rss,$fds,$db,$done_now,$rate,$enq,$(size kyu.db-wal),$rows" >> "$csv"
  last_done=$done_now; last_t=$now
  [ "$elapsed" -ge "$duration" ] && break
  sleep 10
done
kill "$producer_pid" 2>/dev/null || true; producer_pid=""
kill -TERM "$serve_pid"; wait "$serve_pid" || true; serve_pid=""
integrity=$(python3 -c "import sqlite3,sys; print(sqlite3.connect('kyu.db').execute('PRAGMA integrity_check').fetchone()[0])")
cd "$root"

# The verdict, after warm-up: the median RSS and descriptor count of the
# first and of the last 5 minutes differ by at most 10 % (a leak grows; the
# pipes of the commands running at a sample's instant come and go), and the
# database's size levels off (its last 5 minutes within 10 % of the 5 before).
summary="$(python3 - "$out/soak.csv" "$warmup" "$integrity" <<'PY'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if int(r["elapsed_s"]) >= int(sys.argv[2])]
if len(rows) < 60:
    print("soak: too few samples after warm-up for a verdict (run 15 minutes or more)")
    sys.exit(0)
first, last, before_last = rows[:30], rows[-30:], rows[-60:-30]
med = lambda rs, k: statistics.median(int(r[k]) for r in rs)
def spread(k):
    a, b = med(first, k), med(last, k)
    return a, b, abs(b - a) / a * 100
rs, fs, ds = spread("rss_kib"), spread("fds"), (med(before_last, "db_bytes"), med(last, "db_bytes"))
dg = abs(ds[1] - ds[0]) / ds[0] * 100
print(f"after warm-up ({sys.argv[2]} s): {len(rows)} samples, {statistics.mean(int(r['jobs_per_s']) for r in rows):.1f} jobs/s on average, {int(rows[-1]['completed_total']) - int(rows[0]['completed_total'])} jobs completed")
print(f"RSS   median of the first 5 min {rs[0]:.0f} KiB, of the last 5 min {rs[1]:.0f} KiB: {rs[2]:.1f} %; max {max(int(r['rss_kib']) for r in rows)} KiB")
print(f"fds   median of the first 5 min {fs[0]:.0f}, of the last 5 min {fs[1]:.0f}: {fs[2]:.1f} %; momentary max {max(int(r['fds']) for r in rows)} (pipes of running commands)")
print(f"db    {int(rows[0]['db_bytes'])} bytes at the end of warm-up, {int(rows[-1]['db_bytes'])} at the end; last 5 min vs the 5 before: {dg:.1f} %; jobs kept {rows[-1]['job_rows']}, WAL {rows[-1]['wal_bytes']} bytes")
print(f"integrity_check: {sys.argv[3]}")
ok = rs[2] <= 10 and fs[2] <= 10 and dg <= 10 and sys.argv[3] == "ok"
print("verdict: " + ("flat (within 10 %)" if ok else "NOT flat"))
PY
)"
echo "$summary" | tee "$out/soak.txt"

# The chart.
py="python3"
export PYTHONPATH="$root/target/soak-py${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c 'import matplotlib' 2>/dev/null; then
  echo "soak: matplotlib missing; installing it with pip into $root/target/soak-py"
  pip install -q --target "$root/target/soak-py" matplotlib || true
fi
if python3 -c 'import matplotlib' 2>/dev/null; then
  "$py" - "$out/soak.csv" "$out/soak.png" <<'EOF'
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
t = [int(r["elapsed_s"]) / 60 for r in rows]
fig, ax = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
ax[0].plot(t, [int(r["rss_kib"]) / 1024 for r in rows]); ax[0].set_ylabel("RSS (MiB)")
ax[1].plot(t, [int(r["fds"]) for r in rows]); ax[1].set_ylabel("open fds")
ax[2].plot(t, [int(r["db_bytes"]) / 1e6 for r in rows]); ax[2].set_ylabel("database (MB)")
ax[3].plot(t, [int(r["jobs_per_s"]) for r in rows]); ax[3].set_ylabel("jobs completed / s")
for a in ax:
    a.set_ylim(bottom=0); a.grid(alpha=0.3)
ax[3].set_xlabel("minutes")
fig.suptitle("kyu serve soak: steady traffic, retention 2 min")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=80)
EOF
  echo "soak: chart $out/soak.png"
elif command -v gnuplot > /dev/null || (apt-get install -y -q gnuplot-nox > /dev/null 2>&1 && command -v gnuplot > /dev/null); then
  gnuplot -e "set datafile separator ','; set terminal png size 800,900; set output '$out/soak.png'; set multiplot layout 4,1; set key autotitle columnhead; plot '$out/soak.csv' using 1:2 with lines; plot '' using 1:3 with lines; plot '' using 1:4 with lines; plot '' using 1:6 with lines; unset multiplot"
  echo "soak: chart $out/soak.png (gnuplot)"
else
  echo "soak: neither matplotlib nor gnuplot could be installed; no chart (the CSV is $out/soak.csv)" >&2
fi
grep -q "verdict: flat" "$out/soak.txt"
