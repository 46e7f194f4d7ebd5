"""kyu.progress() / kyu.current_job() inside a real command job of a real kyu serve
(seed 003's batch script, examples/scripts/sync_profit_management.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
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

# Reports progress through the client, says what kyu gave it, then holds its attempt
# open until the test creates the file named in its args.
REPORTER = """
import json, os, time, kyu
kyu.progress(40, "via the API")
job = kyu.current_job()
print(json.dumps({"token": os.environ.get("KYU_JOB_TOKEN"), "url": os.environ.get("KYU_API_URL"),
                  "state": job.job and job.job["state"], "progress": job.job and job.job["progress"]}), flush=True)
while not os.path.exists(job.args["release"]):
    time.sleep(0.05)
kyu.progress(100, "done")
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

[jobs.reporter]
command = [{q(sys.executable)}, "-c", {q(REPORTER)}]
queue = "reports"
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


def test_progress_refuses_bad_percent(capsys, monkeypatch) -> None:
    monkeypatch.delenv("KYU_API_URL", raising=False)
    with pytest.raises(ValueError, match="0 to 100"):
        kyu.progress(101, "x")
    kyu.progress(40, "step 2\nof 5")
    assert capsys.readouterr().out == "::kyu-progress 40 step 2 of 5\n"


def _reporter_token(c: kyu.Client, i: int) -> dict:
    """The reporter's first stdout line (what kyu gave it), read from its live logs."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logs = c.logs(i)
        if logs and logs[-1]["stdout"].strip():
            return json.loads(logs[-1]["stdout"].splitlines()[0])
        time.sleep(0.1)
    raise AssertionError(f"job {i} printed nothing: {c.get_job(i)}")


def _as(server, token: str) -> kyu.Client:
    return kyu.Client(server.url, token=token)


def check_job_token_run(server, c: kyu.Client, queue: str, tmp_path: Path) -> None:
    """A reporter job run by whatever works ``queue``: its progress goes through the API with
    its job token, which reads its own job only and dies with the attempt."""
    release = tmp_path / f"release-{queue}"
    i = c.enqueue("reporter", {"release": str(release)}, queue=queue)["id"]
    other = c.enqueue("probe", {}, queue="nobody-works-this")["id"]
    seen = _reporter_token(c, i)
    assert seen["url"] and seen["token"].startswith("kyuj_"), seen
    # current_job() read the job through the API: running, with the progress just sent
    assert seen["state"] == "running"
    assert seen["progress"] == {"percent": 40, "message": "via the API"}
    assert c.get_job(i)["progress"] == {"percent": 40, "message": "via the API"}
    mine = _as(server, seen["token"])
    assert mine.get_job(i)["id"] == i
    with pytest.raises(kyu.ForbiddenError) as e:
        mine.get_job(other)
    assert e.value.code == "forbidden_job_token"
    assert f"GET /v1/jobs/{i}" in e.value.message
    with pytest.raises(kyu.ForbiddenError) as e:
        mine.queues()
    assert e.value.code == "forbidden_job_token"
    with pytest.raises(kyu.ForbiddenError):
        mine.enqueue("probe", {}, queue=queue)
    with pytest.raises(kyu.ForbiddenError):
        mine.request("POST", f"/v1/jobs/{other}/progress", body={"percent": 1})
    release.touch()
    job = c.wait(i, timeout=30)
    assert job["state"] == "completed", job
    assert job["progress"] == {"percent": 100, "message": "done"}
    # nothing went through the stdout line: the API took every report
    assert "::kyu-progress" not in c.logs(i)[-1]["stdout"]
    # the attempt ended: the token is refused, its own job included
    with pytest.raises(kyu.UnauthorizedError) as e:
        mine.get_job(i)
    assert "expired with its attempt 1" in e.value.message
    with pytest.raises(kyu.UnauthorizedError):
        mine.request("POST", f"/v1/jobs/{i}/progress", body={"percent": 1})


def test_kyu_serve_gives_commands_a_job_token_for_the_api(server, tmp_path) -> None:
    check_job_token_run(server, kyu.Client(server.url, token=server.admin), "reports", tmp_path)


def test_kyu_worker_with_api_url_gives_commands_a_job_token(server, tmp_path) -> None:
    """A ``kyu worker`` (another process, its own kyu.toml, the same database) told where the
    API is with ``--api-url``."""
    q = json.dumps
    config = Path(server.dir) / "worker.toml"
    config.write_text(
        f"""database = "sqlite://{server.dir}/kyu.db"
[jobs.reporter]
command = [{q(sys.executable)}, "-c", {q(REPORTER)}]
queue = "remote"
result_from_stdout = true
env = {{ PYTHONPATH = {q(str(SRC))} }}
"""
    )
    worker = subprocess.Popen(
        [server.bin, "--config", str(config), "worker", "--api-url", server.url],
        cwd=server.dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        line = ""
        while "started:" not in line:
            line = worker.stderr.readline()
            assert line, "kyu worker exited before starting"
        assert f"commands report to {server.url}" in line, line
        check_job_token_run(server, kyu.Client(server.url, token=server.admin), "remote", tmp_path)
    finally:
        worker.terminate()
        worker.wait(30)


def test_progress_falls_back_to_the_stdout_line_when_the_api_does_not_answer(monkeypatch, capsys) -> None:
    monkeypatch.setenv("KYU_JOB_ID", "7")
    monkeypatch.setenv("KYU_API_URL", "http://127.0.0.1:9")  # discard: nothing listens
    monkeypatch.setenv("KYU_JOB_TOKEN", "kyuj_7_1_00")
    kyu.progress(30, "no API")
    out = capsys.readouterr()
    assert out.out == "::kyu-progress 30 no API\n"
    assert "reporting on stdout instead" in out.err
    job = kyu.current_job()
    assert job is not None and (job.id, job.job) == (7, None)
