"""kyu.progress() / kyu.current_job() inside a real command job of a real kyu serve
(seed 003's batch script, examples/scripts/sync_profit_management.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import kyu
from conftest import KyuServer

ROOT = Path(__file__).resolve().parents[3]
SRC = Path(__file__).resolve().parents[1] / "src"

PROBE = """
import json, kyu
job = kyu.current_job()
print(json.dumps({"id": job.id, "attempt": job.attempt, "queue": job.queue, "kind": job.kind, "args": job.args}))
"""


@pytest.fixture(scope="module")
def server():
    q = json.dumps  # a JSON string is a TOML basic string
    toml = f"""
[queues.batch]
concurrency = 1

[jobs.probe]
command = [{q(sys.executable)}, "-c", {q(PROBE)}]
queue = "batch"
result_from_stdout = true
env = {{ PYTHONPATH = {q(str(SRC))} }}

[jobs.sync_profit_management]
command = [{q(sys.executable)}, "-u", {q(str(ROOT / "examples/scripts/sync_profit_management.py"))}]
queue = "batch"
env = {{ PYTHONPATH = {q(str(SRC))} }}
"""
    s = KyuServer(toml=toml)
    yield s
    s.stop()


def test_current_job_reads_the_environment(server) -> None:
    c = kyu.Client(server.url, token=server.admin)
    i = c.enqueue("probe", {"day": "2026-11-27"}, queue="batch")["id"]
    job = c.wait(i, timeout=30)
    assert job["state"] == "completed", job
    assert job["result"] == {"id": i, "attempt": 1, "queue": "batch", "kind": "probe", "args": {"day": "2026-11-27"}}


def test_seed_003_script_reports_progress_through_the_client(server) -> None:
    c = kyu.Client(server.url, token=server.admin)
    i = c.enqueue("sync_profit_management", {"steps": 4, "step_seconds": 0}, queue="batch")["id"]
    job = c.wait(i, timeout=30)
    assert job["state"] == "completed", job
    assert job["progress"] == {"percent": 100, "message": "step 4 of 4"}
    out = c.logs(i)[0]["stdout"]
    assert "synced batch 4" in out


def test_current_job_outside_kyu_is_none(monkeypatch) -> None:
    monkeypatch.delenv("KYU_JOB_ID", raising=False)
    assert kyu.current_job() is None


def test_progress_refuses_bad_percent(capsys) -> None:
    with pytest.raises(ValueError, match="0 to 100"):
        kyu.progress(101, "x")
    kyu.progress(40, "step 2\nof 5")
    assert capsys.readouterr().out == "::kyu-progress 40 step 2 of 5\n"
