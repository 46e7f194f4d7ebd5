"""Batches through kyu.Client and kyu.AsyncClient against a real kyu serve: create, add, seal,
counts, and the callbacks run once (by a real worker) with the counts."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import kyu
from conftest import KyuServer


@pytest.fixture(scope="module")
def server():
    s = KyuServer(toml="")
    yield s
    s.stop()


def eventually(check, what: str, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


COUNTS = ("state", "total", "pending", "running", "succeeded", "failed", "cancelled")


def test_batch_create_add_seal_and_on_complete_runs_once_with_counts(server) -> None:
    c = kyu.Client(server.url, token=server.admin)
    callbacks: list = []
    lock = threading.Lock()
    w = kyu.Worker(server.url, token=server.admin, queues=["b.sync"], concurrency=4, poll_wait=0.5)

    @w.handler("sync_user")
    def sync_user(job: kyu.JobContext):
        if job.args["user"] == "bob":
            raise kyu.PermanentError("bob has no token")
        return {"synced": job.args["user"]}

    @w.handler("report")
    def report(job: kyu.JobContext):
        with lock:
            callbacks.append((job.id, job.args))
        return "reported"

    w.start()
    try:
        made = c.create_batch(
            [{"kind": "sync_user", "args": {"user": "ada"}, "queue": "b.sync"}],
            on_complete={"kind": "report", "args": {"label": "all users"}, "queue": "b.sync"},
            on_success={"kind": "report", "args": {"label": "all good"}, "queue": "b.sync"},
        )
        bid = made["batch"]["id"]
        assert made["batch"]["state"] == "open" and len(made["jobs"]) == 1
        added = c.add_to_batch(
            bid,
            [{"kind": "sync_user", "args": {"user": u}, "queue": "b.sync", "max_attempts": 3} for u in ("bob", "cy")],
        )
        assert added["batch"]["total"] == 3 and len(added["jobs"]) == 2
        eventually(lambda: (lambda b: b["pending"] + b["running"] == 0)(c.get_batch(bid)), "the jobs finished")
        assert c.get_batch(bid)["state"] == "open"
        assert callbacks == [], "no callback before the seal"
        c.seal_batch(bid)
        eventually(lambda: len(callbacks) == 1, "on_complete ran")
        b = c.get_batch(bid)
        assert {k: b[k] for k in COUNTS} == {
            "state": "done", "total": 3, "pending": 0, "running": 0, "succeeded": 2, "failed": 1, "cancelled": 0,
        }
        assert b["callback_jobs"] == [callbacks[0][0]], "on_complete only: one job failed"
        assert callbacks[0][1] == {"label": "all users", "batch": {"id": bid, "total": 3, "succeeded": 2, "failed": 1, "cancelled": 0}}
        c.seal_batch(bid)  # again: changes nothing
        time.sleep(0.7)
        assert len(callbacks) == 1, "the callback ran once"
        with pytest.raises(kyu.InvalidError):
            c.add_to_batch(bid, [{"kind": "sync_user", "args": {"user": "late"}, "queue": "b.sync"}])
    finally:
        w.close()


def test_async_batch_with_async_worker_both_callbacks_once(server) -> None:
    async def main() -> None:
        c = kyu.AsyncClient(server.url, token=server.admin)
        callbacks: list = []
        w = kyu.AsyncWorker(server.url, token=server.admin, queues=["b.async"], concurrency=4, poll_wait=0.5)

        @w.handler("sync_user")
        async def sync_user(job: kyu.AsyncJobContext):
            await asyncio.sleep(0.01)
            return job.args["user"]

        @w.handler("report")
        async def report(job: kyu.AsyncJobContext):
            callbacks.append(job.args)

        async with w:
            made = await c.create_batch(
                [{"kind": "sync_user", "args": {"user": u}, "queue": "b.async"} for u in ("dee", "eve", "fay")],
                on_complete={"kind": "report", "args": {"label": "complete"}, "queue": "b.async"},
                on_success={"kind": "report", "args": {"label": "success"}, "queue": "b.async"},
                seal=True,
            )
            bid = made["batch"]["id"]
            for _ in range(400):
                if len(callbacks) >= 2:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            assert sorted(a["label"] for a in callbacks) == ["complete", "success"]
            for a in callbacks:
                assert a["batch"] == {"id": bid, "total": 3, "succeeded": 3, "failed": 0, "cancelled": 0}
            b = await c.get_batch(bid)
            assert (b["state"], b["succeeded"], len(b["callback_jobs"])) == ("done", 3, 2)
            again = await c.seal_batch(bid)
            assert again["callback_jobs"] == b["callback_jobs"]

    asyncio.run(main())


def test_batch_errors(server) -> None:
    c = kyu.Client(server.url, token=server.admin)
    with pytest.raises(kyu.NotFoundError):
        c.get_batch(999_999)
    with pytest.raises(kyu.InvalidError) as e:
        c.create_batch(on_complete={"kind": "report", "args": [1, 2]})
    assert "on_complete" in (e.value.field or e.value.message)
    tenant = kyu.Client(server.url, token=server.token(["produce", "read"], queues="tenant-a.*"))
    with pytest.raises(kyu.ForbiddenError) as e:
        tenant.create_batch([{"kind": "k", "queue": "tenant-a.x"}])
    assert e.value.code == "forbidden_queue"
