#!/usr/bin/env python3
"""Seed 000's per-user sync, as a kyu command job.

Exit 0: done; the last JSON line on stdout becomes the job's result.
Exit 65: the args are wrong (no user): a permanent failure, never retried.
Any other exit: a retryable failure.
"""
import json
import sys

args = json.load(sys.stdin)
user = args.get("user")
if user is None:
    print("no user in the args", file=sys.stderr)
    sys.exit(65)
print(f"syncing steps and contributions of user {user}")
print(json.dumps({"user": user, "steps": 8042, "contributions": 3}))
