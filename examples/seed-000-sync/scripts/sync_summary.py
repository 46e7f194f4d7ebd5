#!/usr/bin/env python3
"""The on_complete callback of a sync batch: logs seed 000's summary line.

kyu adds the batch's counts to the args (JSON on stdin):
{"tick_job": ..., "batch": {"id", "total", "succeeded", "failed", "cancelled"}}.
A cancelled sync counts as a failure, as in the seed.
"""
import json
import sys

args = json.load(sys.stdin)
b = args["batch"]
ok = b["succeeded"]
failed = b["failed"] + b["cancelled"]
print(f"✅ [SYNC] 全ユーザー同期完了: 成功{ok}/失敗{failed}")
print(f"📊 [SYNC] 統計 - 処理ユーザー数: {b['total']}, 成功: {ok}, 失敗: {failed} (batch {b['id']})")
