#!/usr/bin/env python3
"""Seed 003's nightly batch, as a kyu command job.

kyu gives the job in the environment (KYU_JOB_ID, KYU_ATTEMPT, KYU_ARGS) and
the args on stdin; stdout and stderr are kept with the attempt
(`kyu jobs logs ID --follow`). Progress: a `::kyu-progress PCT MESSAGE` line,
or `kyu progress PCT MESSAGE`.

STEPS and STEP_SECONDS in the args shorten or lengthen the run.
"""
import json
import os
import sys
import time

args = json.load(sys.stdin) if not sys.stdin.isatty() else {}
steps = int(args.get("steps", 5))
step_seconds = float(args.get("step_seconds", 1.0))

print(f"job {os.environ.get('KYU_JOB_ID')} attempt {os.environ.get('KYU_ATTEMPT')}: {steps} steps")
for step in range(1, steps + 1):
    time.sleep(step_seconds)
    print(f"::kyu-progress {step * 100 // steps} step {step} of {steps}")
    print(f"synced batch {step}")
print("done")
