"""kyu.AsyncClient against a real kyu serve."""

from __future__ import annotations

import asyncio

import pytest

import kyu


def test_async_enqueue_wait_list_and_errors(server) -> None:
    async def main() -> None:
        c = kyu.AsyncClient(server.url, token=server.admin)
        ids = await asyncio.gather(*(c.enqueue("echo", {"n": n}) for n in range(5)))
        jobs = await asyncio.gather(*(c.wait(e["id"], timeout=20) for e in ids))
        assert sorted(j["result"]["n"] for j in jobs) == list(range(5))
        page = await c.list_jobs(kind="echo", limit=2)
        assert len(page["jobs"]) == 2
        with pytest.raises(kyu.NotFoundError):
            await c.get_job(999_999)

    asyncio.run(main())
