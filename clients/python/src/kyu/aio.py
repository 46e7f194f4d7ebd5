"""An asyncio face of :class:`kyu.Client`: the same methods as coroutines, each run in
a worker thread (``asyncio.to_thread``), so an async application never blocks its loop::

    client = kyu.AsyncClient("http://127.0.0.1:7070", token=token)
    job = await client.enqueue("send_email", {"to": "ada@example.com"})
    done = await client.wait(job["id"], timeout="1m")
    async for e in client.events(since=0):
        ...
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Iterable, Mapping, Optional, Sequence, Union

from .client import Client
from .types import AttemptLogs, Batch, BatchJobs, Duration, Enqueued, Job, JobPage, QueueInfo, Schedule


class AsyncClient:
    """:class:`kyu.Client`'s methods as coroutines (see the module docs)."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, timeout: float = 60.0) -> None:
        #: The sync client the coroutines run.
        self.sync = Client(url, token=token, timeout=timeout)

    async def enqueue(self, kind: str, args: Any = None, *, idempotency_key: Optional[str] = None, **options: Any) -> Enqueued:
        """:meth:`Client.enqueue`."""
        return await asyncio.to_thread(self.sync.enqueue, kind, args, idempotency_key=idempotency_key, **options)

    async def enqueue_many(self, jobs: Sequence[Mapping[str, Any]]) -> list[Enqueued]:
        """:meth:`Client.enqueue_many`."""
        return await asyncio.to_thread(self.sync.enqueue_many, jobs)

    async def create_batch(
        self,
        jobs: Sequence[Mapping[str, Any]] = (),
        *,
        on_complete: Optional[Mapping[str, Any]] = None,
        on_success: Optional[Mapping[str, Any]] = None,
        seal: bool = False,
    ) -> BatchJobs:
        """:meth:`Client.create_batch`."""
        return await asyncio.to_thread(lambda: self.sync.create_batch(jobs, on_complete=on_complete, on_success=on_success, seal=seal))

    async def add_to_batch(self, id: int, jobs: Sequence[Mapping[str, Any]], *, seal: bool = False) -> BatchJobs:
        """:meth:`Client.add_to_batch`."""
        return await asyncio.to_thread(lambda: self.sync.add_to_batch(id, jobs, seal=seal))

    async def seal_batch(self, id: int) -> Batch:
        """:meth:`Client.seal_batch`."""
        return await asyncio.to_thread(self.sync.seal_batch, id)

    async def get_batch(self, id: int) -> Batch:
        """:meth:`Client.get_batch`."""
        return await asyncio.to_thread(self.sync.get_batch, id)

    async def get_job(self, id: int) -> Job:
        """:meth:`Client.get_job`."""
        return await asyncio.to_thread(self.sync.get_job, id)

    async def wait(self, id: int, timeout: Optional[Duration] = None) -> Job:
        """:meth:`Client.wait`."""
        return await asyncio.to_thread(self.sync.wait, id, timeout)

    async def cancel(self, ids: Union[int, Iterable[int]]) -> dict[str, str]:
        """:meth:`Client.cancel`."""
        return await asyncio.to_thread(self.sync.cancel, ids)

    async def retry(self, ids: Union[int, Iterable[int]]) -> dict[str, str]:
        """:meth:`Client.retry`."""
        return await asyncio.to_thread(self.sync.retry, ids)

    async def list_jobs(self, **filter: Any) -> JobPage:
        """:meth:`Client.list_jobs`."""
        return await asyncio.to_thread(lambda: self.sync.list_jobs(**filter))

    async def logs(self, id: int) -> list[AttemptLogs]:
        """:meth:`Client.logs`."""
        return await asyncio.to_thread(self.sync.logs, id)

    async def queues(self) -> list[QueueInfo]:
        """:meth:`Client.queues`."""
        return await asyncio.to_thread(self.sync.queues)

    async def schedules(self) -> list[Schedule]:
        """:meth:`Client.schedules`."""
        return await asyncio.to_thread(self.sync.schedules)

    async def put_schedule(self, name: str, **spec: Any) -> Schedule:
        """:meth:`Client.put_schedule`."""
        return await asyncio.to_thread(lambda: self.sync.put_schedule(name, **spec))

    async def delete_schedule(self, name: str) -> None:
        """:meth:`Client.delete_schedule`."""
        await asyncio.to_thread(self.sync.delete_schedule, name)

    async def events(self, **options: Any) -> AsyncIterator[dict[str, Any]]:
        """:meth:`Client.events` as an async iterator (leaving the ``async for`` stops the stream at its
        next event or keep-alive)."""
        import threading

        stop = threading.Event()
        it = self.sync.events(stop=stop, **options)
        done = object()
        try:
            while True:
                e = await asyncio.to_thread(next, it, done)
                if e is done:
                    return
                yield e  # type: ignore[misc]
        finally:
            stop.set()
