#!/bin/sh
# Seed 000's 15-minute tick, as a kyu command job: one sync_user job per
# active user (one JSON object per line of users.jsonl; a real system would
# query its users table here), enqueued as one batch. When every one of them
# has finished, kyu enqueues sync_summary once, with the batch's counts.
#
# Runs from the directory of kyu.toml, with KYU_DATABASE_URL set by kyu.
set -eu
exec kyu enqueue sync_user --batch \
    --on-complete "sync_summary:{\"tick_job\":${KYU_JOB_ID:-0}}" \
    --callback-queue default \
    < users.jsonl
