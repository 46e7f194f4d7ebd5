#!/usr/bin/env python3
"""Seed 000's per-user sync (Google Fit steps, GitHub contributions), as a
kyu command job. The API calls are simulated: each takes a moment.

Args (JSON on stdin): {"user": ID, "name": ..., "simulate": "github_503"?}.
A user whose line says "simulate": "github_503" gets a 503 from GitHub on
every attempt: the job is retried (3 attempts) and then fails, so the
summary shows one failure.

Exit 0: synced; the last JSON line on stdout becomes the job's result.
Exit 65: the args are wrong (no user): failed for good, never retried.
Exit 1: an API error: retried by the kind's policy.

With SYNC_TRACE set to a file, each attempt appends `start KEY NANOS` and
`end KEY NANOS` lines to it (the tests check how many ran at once).
"""
import json
import os
import sys
import time


def trace(what):
    path = os.environ.get("SYNC_TRACE")
    if path:
        key = f"{os.environ.get('KYU_JOB_ID')}.{os.environ.get('KYU_ATTEMPT')}"
        with open(path, "a") as f:
            f.write(f"{what} {key} {time.time_ns()}\n")


args = json.load(sys.stdin)
user = args.get("user")
if user is None:
    print("no user in the args", file=sys.stderr)
    sys.exit(65)

trace("start")
try:
    print(f"🔄 [SYNC] user {user}: Google Fit steps ...")
    time.sleep(0.2)
    steps = 8000 + user * 7
    print(f"🔄 [SYNC] user {user}: GitHub contributions ...")
    time.sleep(0.2)
    if args.get("simulate") == "github_503":
        print(f"❌ [SYNC] user {user}: GitHub answered 503 Service Unavailable",
              file=sys.stderr)
        sys.exit(1)
    contributions = user % 4
finally:
    trace("end")

print(f"✅ [SYNC] user {user}: {steps} steps, {contributions} contributions")
print(json.dumps({"user": user, "steps": steps, "contributions": contributions}))
