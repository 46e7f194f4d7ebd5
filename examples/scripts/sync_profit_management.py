#!/usr/bin/env python3
"""Seed 003's nightly batch, as a kyu command job.

kyu gives the job in the environment (KYU_JOB_ID, KYU_ATTEMPT, KYU_QUEUE,
KYU_KIND, KYU_ARGS) and the args on stdin; stdout and stderr are kept with
the attempt (`kyu jobs logs ID --follow`).

Progress (seed 003's `update_job_progress()`): `kyu.progress(pct, msg)` from
the Python client (clients/python: `pip install -e clients/python`), with
`kyu.current_job()` for the job: through kyu's HTTP API with the token kyu
gives this attempt (KYU_API_URL, KYU_JOB_TOKEN), else as the stdout line
below. Without the client, the zero-dependency
form is the line kyu reads from stdout, `::kyu-progress PCT MESSAGE` (or
`kyu progress PCT MESSAGE` from a shell script): the fallback below.

STEPS and STEP_SECONDS in the args shorten or lengthen the run.
"""
import json
import os
import sys
import time

try:
    import kyu

    progress = kyu.progress
    job = kyu.current_job()
    job_id, attempt = (job.id, job.attempt) if job else (None, None)
except ImportError:  # no client: print the line kyu reads from stdout

    def progress(percent, message=""):
        print(f"::kyu-progress {percent} {message}", flush=True)

    job_id, attempt = os.environ.get("KYU_JOB_ID"), os.environ.get("KYU_ATTEMPT")

args = json.load(sys.stdin) if not sys.stdin.isatty() else {}
steps = int(args.get("steps", 5))
step_seconds = float(args.get("step_seconds", 1.0))

print(f"job {job_id} attempt {attempt}: {steps} steps")
for step in range(1, steps + 1):
    time.sleep(step_seconds)
    progress(step * 100 // steps, f"step {step} of {steps}")
    print(f"synced batch {step}")
print("done")
