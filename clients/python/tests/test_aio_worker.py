"""kyu.AsyncWorker against a real kyu serve's /v1/workers protocol."""

from __future__ import annotations

import asyncio

import pytest

import kyu
from conftest import KyuServer


@pytest.fixture(scope="module")
def server():
    s = KyuServer(toml="")
    yield s
    s.stop()


def aworker(server, queue: str, **kw) -> kyu.AsyncWorker:
    """An async worker on its own queue; lease 3 s (heartbeat 1 s), claims poll 1 s."""
    opts = dict(queues=[queue], concurrency=4, lease=3, poll_wait=1)
    opts.update(kw)
    return kyu.AsyncWorker(server.url, token=server.admin, **opts)


def test_enqueue_async_worker_result_and_errors(server) -> None:
    async def main() -> None:
        c = kyu.AsyncClient(server.url, token=server.admin)
        w = aworker(server, "aw.basic", name="async-basic")
        seen_concurrently = []
        running = 0

        @w.handler("double")
        async def double(job: kyu.AsyncJobContext):
            nonlocal running
            running += 1
            seen_concurrently.append(running)
            await job.progress(50, "halfway")
            await asyncio.sleep(0.2)  # on the loop: the other handlers run meanwhile
            running -= 1
            return {"n": job.args["n"] * 2, "attempt": job.attempt}

        @w.handler("doomed")
        async def doomed(job: kyu.AsyncJobContext):
            raise kyu.PermanentError("bad input: no recipient")

        @w.handler("flaky")
        async def flaky(job: kyu.AsyncJobContext):
            if job.attempt < 2:
                raise RuntimeError(f"flaked on attempt {job.attempt}")
            return "ok"

        async with w:
            ids = [(await c.enqueue("double", {"n": n}, queue="aw.basic"))["id"] for n in range(4)]
            jobs = await asyncio.gather(*(c.wait(i, timeout=20) for i in ids))
            assert [j["result"] for j in jobs] == [{"n": n * 2, "attempt": 1} for n in range(4)]
            assert all(j["progress"] == {"percent": 50, "message": "halfway"} for j in jobs)
            assert "async-basic" in jobs[0]["worker"]
            assert max(seen_concurrently) > 1, "handlers are tasks that overlap"
            d = (await c.enqueue("doomed", {}, queue="aw.basic", max_attempts=5))["id"]
            dj = await c.wait(d, timeout=20)
            assert (dj["state"], dj["attempt"]) == ("failed", 1)
            assert "no recipient" in dj["errors"][0]["message"]
            f = (await c.enqueue("flaky", {}, queue="aw.basic", max_attempts=3, retry={"type": "fixed", "delay": 0.05}))["id"]
            fj = await c.wait(f, timeout=20)
            assert (fj["state"], fj["result"], fj["attempt"]) == ("completed", "ok", 2)

    asyncio.run(main())


def test_cancel_reaches_the_handler_as_cancelled_error_and_flag(server) -> None:
    async def main() -> None:
        c = kyu.AsyncClient(server.url, token=server.admin)
        w = aworker(server, "aw.cancel")
        started = asyncio.Event()
        seen: list = []

        @w.handler("long")
        async def long(job: kyu.AsyncJobContext):
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                seen.append((job.cancelled.is_set(), job.reason))
                raise
            return "never"

        async with w:
            i = (await c.enqueue("long", {}, queue="aw.cancel"))["id"]
            await asyncio.wait_for(started.wait(), 20)
            assert await c.cancel(i) == {str(i): "requested"}
            job = await c.wait(i, timeout=20)
            assert job["state"] == "cancelled", job
            assert seen == [(True, "cancelled")]

    asyncio.run(main())


def test_timeout_cancels_the_handler_and_fails_the_attempt(server) -> None:
    async def main() -> None:
        c = kyu.AsyncClient(server.url, token=server.admin)
        w = aworker(server, "aw.timeout")
        reasons: list = []

        @w.handler("slow")
        async def slow(job: kyu.AsyncJobContext):
            try:
                await asyncio.sleep(30)
            finally:
                reasons.append(job.reason)

        async with w:
            i = (await c.enqueue("slow", {}, queue="aw.timeout", timeout="300ms", max_attempts=1))["id"]
            job = await c.wait(i, timeout=20)
            assert job["state"] == "failed"
            assert "timed out after 300 ms" in job["errors"][0]["message"]
            assert reasons == ["timeout"]

    asyncio.run(main())


def test_close_finishes_within_grace_and_releases_the_rest(server) -> None:
    async def main() -> None:
        c = kyu.AsyncClient(server.url, token=server.admin)
        w = aworker(server, "aw.close", concurrency=2)
        release = asyncio.Event()
        stuck_started = asyncio.Event()
        stuck_reason: list = []

        @w.handler("quick")
        async def quick(job):
            await release.wait()
            return "finished in grace"

        @w.handler("stuck")
        async def stuck(job):
            stuck_started.set()
            try:
                await asyncio.sleep(60)
            finally:
                stuck_reason.append(job.reason)

        await w.start()
        q = (await c.enqueue("quick", {}, queue="aw.close"))["id"]
        s = (await c.enqueue("stuck", {}, queue="aw.close"))["id"]
        await asyncio.wait_for(stuck_started.wait(), 20)
        while (await c.get_job(q))["state"] != "running":
            await asyncio.sleep(0.02)
        closing = asyncio.create_task(w.close(grace=2))  # quick finishes within; stuck never
        await asyncio.sleep(0.1)
        # after close began: no new claims
        late = (await c.enqueue("quick", {}, queue="aw.close"))["id"]
        release.set()
        await asyncio.wait_for(closing, 60)
        qj = await c.get_job(q)
        assert (qj["state"], qj["result"]) == ("completed", "finished in grace")
        sj = await c.get_job(s)
        assert sj["state"] == "available", sj
        assert [e["message"] for e in sj["errors"]] == ["the worker closed before the job finished"]
        assert stuck_reason == ["closing"]
        assert (await c.get_job(late))["state"] == "available", "claimed nothing after close began"

        w2 = aworker(server, "aw.close")

        @w2.handler("stuck")
        async def again(job):
            return "second worker"

        @w2.handler("quick")
        async def quick2(job):
            return "second worker"

        async with w2:
            assert (await c.wait(s, timeout=20))["result"] == "second worker"
            assert (await c.wait(late, timeout=20))["result"] == "second worker"

    asyncio.run(main())


def test_register_refuses_a_plain_function(server) -> None:
    w = aworker(server, "aw.x")
    with pytest.raises(TypeError, match="coroutine function"):
        w.register("k", lambda job: 1)


def test_token_without_work_scope_cannot_start(server) -> None:
    async def main() -> None:
        w = kyu.AsyncWorker(server.url, token=server.token(["produce"]), queues=["aw.x"])

        @w.handler("k")
        async def k(job):
            return 1

        with pytest.raises(kyu.ForbiddenError) as e:
            await w.start()
        assert e.value.code == "forbidden_scope"

    asyncio.run(main())
