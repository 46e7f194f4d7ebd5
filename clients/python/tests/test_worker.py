"""kyu.Worker against a real kyu serve's /v1/workers protocol."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest

import kyu
from conftest import KyuServer


@pytest.fixture(scope="module")
def server():
    s = KyuServer(toml="")
    req = urllib.request.Request(f"{s.url}/v1/workers", data=b"{}", method="POST",
                                 headers={"Authorization": f"Bearer {s.admin}", "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10).close()
    except urllib.error.HTTPError as e:
        if e.code in (404, 405):
            s.stop()
            pytest.skip("this kyu serve has no /v1/workers")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server) -> kyu.Client:
    return kyu.Client(server.url, token=server.admin)


def worker(server, queue: str, **kw) -> kyu.Worker:
    """A worker on its own queue; lease 3 s (heartbeat 1 s), claims poll 1 s."""
    opts = dict(queues=[queue], concurrency=4, lease=3, poll_wait=1)
    opts.update(kw)
    return kyu.Worker(server.url, token=server.admin, **opts)


def test_enqueue_worker_result_and_batches(server, client) -> None:
    w = worker(server, "w.basic", name="basic-worker")
    w.register("double", lambda job: {"n": job.args["n"] * 2, "attempt": job.attempt})
    w.start()
    try:
        i = client.enqueue("double", {"n": 21}, queue="w.basic")["id"]
        job = client.wait(i, timeout=20)
        assert job["state"] == "completed"
        assert job["result"] == {"n": 42, "attempt": 1}
        assert "basic-worker" in job["worker"]
        many = client.enqueue_many([{"kind": "double", "args": {"n": n}, "queue": "w.basic"} for n in range(40)])
        assert [client.wait(e["id"], timeout=30)["result"]["n"] for e in many] == [n * 2 for n in range(40)]
    finally:
        w.close()


def test_retry_with_backoff_and_permanent_error(server, client) -> None:
    w = worker(server, "w.retry")

    @w.handler("flaky")
    def flaky(job: kyu.JobContext):
        if job.attempt < 3:
            raise RuntimeError(f"flaked on attempt {job.attempt}")
        return "ok"

    @w.handler("doomed")
    def doomed(job: kyu.JobContext):
        raise kyu.PermanentError("bad input: no recipient")

    w.start()
    try:
        f = client.enqueue("flaky", {}, queue="w.retry", max_attempts=5, retry={"type": "fixed", "delay": 0.05})["id"]
        d = client.enqueue("doomed", {}, queue="w.retry", max_attempts=5)["id"]
        fj = client.wait(f, timeout=20)
        assert (fj["state"], fj["result"], fj["attempt"]) == ("completed", "ok", 3)
        assert [e["message"] for e in fj["errors"]] == ["flaked on attempt 1", "flaked on attempt 2"]
        dj = client.wait(d, timeout=20)
        assert (dj["state"], dj["attempt"]) == ("failed", 1)
        assert "no recipient" in dj["errors"][0]["message"]
    finally:
        w.close()


def test_cancel_sets_the_handlers_flag(server, client) -> None:
    started = threading.Event()
    reasons: list = []
    w = worker(server, "w.cancel")

    @w.handler("long")
    def long(job: kyu.JobContext):
        started.set()
        assert job.cancelled.wait(30)
        reasons.append(job.reason)
        raise RuntimeError("stopped on request")

    w.start()
    try:
        i = client.enqueue("long", {}, queue="w.cancel")["id"]
        assert started.wait(20)
        assert client.cancel(i) == {str(i): "requested"}
        assert client.wait(i, timeout=20)["state"] == "cancelled"
        assert reasons == ["cancelled"]
    finally:
        w.close()


def test_timeout_sets_the_flag_and_fails_the_attempt(server, client) -> None:
    reasons: list = []
    w = worker(server, "w.timeout")

    @w.handler("slow")
    def slow(job: kyu.JobContext):
        job.cancelled.wait(30)
        reasons.append(job.reason)

    w.start()
    try:
        i = client.enqueue("slow", {}, queue="w.timeout", timeout="300ms", max_attempts=1)["id"]
        job = client.wait(i, timeout=20)
        assert job["state"] == "failed"
        assert "timed out after 300 ms" in job["errors"][0]["message"]
        for _ in range(100):
            if reasons:
                break
            time.sleep(0.05)
        assert reasons == ["timeout"]
    finally:
        w.close()


def test_snooze_and_progress(server, client) -> None:
    runs = []
    w = worker(server, "w.snooze")

    @w.handler("later")
    def later(job: kyu.JobContext):
        runs.append(1)
        job.progress(40, f"run {len(runs)}")
        if len(runs) == 1:
            return job.snooze(0.05)
        return {"runs": len(runs)}

    w.start()
    try:
        i = client.enqueue("later", {}, queue="w.snooze")["id"]
        job = client.wait(i, timeout=20)
        assert (job["state"], job["result"], job["attempt"]) == ("completed", {"runs": 2}, 1)
        assert job["errors"] == []
        assert job["progress"] == {"percent": 40, "message": "run 2"}
    finally:
        w.close()


def test_close_finishes_within_grace_and_releases_the_rest(server, client) -> None:
    started = threading.Event()
    release = threading.Event()
    w = worker(server, "w.close", concurrency=2)

    @w.handler("quick")
    def quick(job):
        release.wait(30)
        return "finished in grace"

    @w.handler("stuck")
    def stuck(job):
        started.set()
        job.cancelled.wait(30)
        return "ignored"

    w.start()
    q = client.enqueue("quick", {}, queue="w.close")["id"]
    s = client.enqueue("stuck", {}, queue="w.close")["id"]
    assert started.wait(20)
    while client.get_job(q)["state"] != "running":
        time.sleep(0.02)
    closer = threading.Thread(target=w.close, kwargs={"grace": 3})  # quick finishes within; stuck never
    closer.start()
    release.set()
    closer.join(60)
    assert not closer.is_alive()
    qj = client.get_job(q)
    assert (qj["state"], qj["result"]) == ("completed", "finished in grace")
    sj = client.get_job(s)
    assert sj["state"] == "available", sj
    assert [e["message"] for e in sj["errors"]] == ["the worker closed before the job finished"]
    w2 = worker(server, "w.close")
    w2.register("stuck", lambda job: "second worker")
    w2.start()
    try:
        assert client.wait(s, timeout=20)["result"] == "second worker"
    finally:
        w2.close()


def test_token_without_work_scope_cannot_register(server) -> None:
    w = kyu.Worker(server.url, token=server.token(["produce"]), queues=["w.x"])
    w.register("k", lambda job: 1)
    with pytest.raises(kyu.ForbiddenError) as e:
        w.start()
    assert e.value.code == "forbidden_scope"
    t = kyu.Worker(server.url, token=server.token(["work"], queues="tenant-a.*"), queues=["tenant-b.x"])
    t.register("k", lambda job: 1)
    with pytest.raises(kyu.ForbiddenError) as e:
        t.start()
    assert e.value.code == "forbidden_queue"


def test_forgotten_worker_registers_again(server, client) -> None:
    w = worker(server, "w.again")
    w.register("k", lambda job: "after re-registering")
    w.start()
    try:
        first = w.id
        # the server forgets it (as after three silent lease periods): it leaves behind the worker's back
        client.request("DELETE", f"/v1/workers/{first}")
        # (a claim already waiting when it left may still bring one job: a second job needs the new registration)
        for _ in range(2):
            i = client.enqueue("k", {}, queue="w.again")["id"]
            assert client.wait(i, timeout=20)["result"] == "after re-registering"
        assert w.id != first
    finally:
        w.close()


@pytest.mark.parametrize("cls", [kyu.Worker, kyu.AsyncWorker])
def test_a_worker_refuses_no_queues_and_a_concurrency_below_one_in_the_same_words(cls):
    name = cls.__name__
    with pytest.raises(ValueError) as e:
        cls("http://127.0.0.1:9", "t", queues=[])
    assert str(e.value) == f"{name}: queues: none given; accepted: one or more queue names"
    with pytest.raises(ValueError) as e:
        cls("http://127.0.0.1:9", "t", queues=["q"], concurrency=0)
    assert str(e.value) == f"{name}: concurrency: 0 is not accepted; accepted: 1 or more"
