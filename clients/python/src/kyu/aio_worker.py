"""An asyncio worker over kyu's HTTP worker protocol (``/v1/workers``): the same protocol and
behaviour as :class:`kyu.Worker`, with coroutine handlers run as tasks on the event loop::

    worker = kyu.AsyncWorker(url, token=token, queues=["mail"], concurrency=50)

    @worker.handler("send_email")
    async def send_email(job: kyu.AsyncJobContext):
        await job.progress(50, "sending")
        await smtp.send(job.args["to"])          # a cancel or timeout raises CancelledError here
        return {"sent": True}

    await worker.run()    # until SIGTERM/SIGINT or await worker.close()

Standard library only: each HTTP call runs in a thread (``asyncio.to_thread`` over the same
urllib client the sync API uses), so a long-poll claim or an acknowledgement never blocks the
loop; the handlers themselves run on the loop.

Cancel, timeout, a lost lease and a close past its grace reach the handler two ways: its task
is cancelled (``asyncio.CancelledError`` at its next ``await``: clean up in ``finally`` or
``except CancelledError``) and ``job.cancelled`` (an :class:`asyncio.Event`) is set, with
``job.reason`` saying which.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal as _signal
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

from .errors import ConflictError, KyuError
from .types import Duration, duration_seconds
from . import _ends, _options
from ._ends import Snooze


@dataclass
class AsyncJobContext:
    """What an async handler gets."""

    id: int
    attempt: int
    max_attempts: int
    queue: str
    kind: str
    args: Any
    tags: list[str]
    #: Set when the job is cancelled, its timeout passes, its lease is lost or the worker
    #: closes past its grace (the handler's task is cancelled too); ``reason`` says which.
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    reason: Optional[str] = None
    _progress: Callable[[int, str], Awaitable[None]] = field(default=None, repr=False)  # type: ignore[assignment]

    async def progress(self, percent: int, message: str = "") -> None:
        """Reports progress (0..100, a short note); recorded on the job at once."""
        await self._progress(percent, message)

    def snooze(self, seconds: Duration) -> Snooze:
        """A value to return (or raise) to run the job again after ``seconds``, no attempt used."""
        return Snooze(duration_seconds(seconds))


AsyncHandler = Callable[[AsyncJobContext], Awaitable[Any]]


@dataclass
class _Running:
    job: dict[str, Any]
    ctx: AsyncJobContext
    acked: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: Optional["asyncio.Task[None]"] = None
    timer: Optional[asyncio.TimerHandle] = None


async def _first(*aws: Awaitable[Any], timeout: Optional[float] = None) -> None:
    """Waits until the first of ``aws`` is done (or ``timeout``), then cancels the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


class AsyncWorker:
    """A worker of kyu over HTTP for asyncio (see the module docs)."""

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        queues: list[str],
        concurrency: int = 10,
        name: Optional[str] = None,
        lease: Optional[Duration] = None,
        poll_wait: Optional[Duration] = 5.0,
        shutdown_grace: Duration = 10.0,
        on_error: Optional[Callable[[BaseException], None]] = None,
    ) -> None:
        _options.check("AsyncWorker", queues, concurrency)
        self.http = _options.http(url, token)
        self.queues = list(queues)
        self.concurrency = concurrency
        self.name = name or f"python-async-{os.getpid()}"
        self.lease = lease
        self.poll_wait = poll_wait
        self.shutdown_grace = duration_seconds(shutdown_grace)
        self.on_error = on_error or (lambda e: None)
        self.handlers: dict[str, AsyncHandler] = {}
        self.id: Optional[str] = None
        self._running: dict[int, _Running] = {}
        self._free = concurrency
        self._heartbeat_s = 10.0
        self._max_wait_ms = 30_000
        # made in start(), on the loop that runs the worker
        self._slot_freed: Optional[asyncio.Event] = None
        self._closing: Optional[asyncio.Event] = None
        self._closed: Optional[asyncio.Event] = None
        self._acks: Optional["asyncio.Queue[Optional[dict[str, Any]]]"] = None
        self._claim_task: Optional["asyncio.Task[None]"] = None
        self._ack_task: Optional["asyncio.Task[None]"] = None
        self._heartbeat_task: Optional["asyncio.Task[None]"] = None
        self._close_lock: Optional[asyncio.Lock] = None

    def register(self, kind: str, handler: AsyncHandler) -> "AsyncWorker":
        """Runs the coroutine function ``handler`` for jobs of ``kind``. Call before :meth:`start`."""
        if self.id is not None:
            raise RuntimeError(f"register({kind}): the worker has started; register every kind before start()")
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"register({kind}): {handler!r} is not a coroutine function; accepted: an `async def` handler (kyu.Worker runs plain functions)")
        self.handlers[kind] = handler
        return self

    def handler(self, kind: str) -> Callable[[AsyncHandler], AsyncHandler]:
        """A decorator form of :meth:`register`."""

        def wrap(fn: AsyncHandler) -> AsyncHandler:
            self.register(kind, fn)
            return fn

        return wrap

    async def _call(self, method: str, path: str, body: Any = None, timeout: Optional[float] = None) -> Any:
        return await asyncio.to_thread(self.http.request, method, path, body=body, timeout=timeout)

    def _path(self, tail: str = "") -> str:
        import urllib.parse

        return f"/v1/workers/{urllib.parse.quote(self.id or '', safe='')}{tail}"

    async def start(self) -> None:
        """Registers with the server and starts claiming in tasks on the running loop."""
        if not self.handlers:
            raise RuntimeError("start: no handler registered; call register(kind, handler) first")
        self._slot_freed = asyncio.Event()
        self._closing = asyncio.Event()
        self._closed = asyncio.Event()
        self._acks = asyncio.Queue()
        self._close_lock = asyncio.Lock()
        await self._register()
        self._claim_task = asyncio.create_task(self._claim_loop(), name="kyu-claim")
        self._ack_task = asyncio.create_task(self._ack_loop(), name="kyu-ack")
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name="kyu-heartbeat")

    async def _register(self) -> None:
        """Registers (again, after the server forgot this worker: ``unknown_worker``)."""
        body: dict[str, Any] = {"name": self.name, "queues": self.queues, "kinds": list(self.handlers), "capacity": self.concurrency}
        if self.lease is not None:
            body["lease_ms"] = round(duration_seconds(self.lease) * 1000)
        reply = await self._call("POST", "/v1/workers", body)
        self.id = reply["worker_id"]
        self._heartbeat_s = reply["heartbeat_interval_ms"] / 1000
        wait = reply["max_wait_ms"] if self.poll_wait is None else min(reply["max_wait_ms"], round(duration_seconds(self.poll_wait) * 1000))
        self._max_wait_ms = wait

    async def run(self) -> None:
        """:meth:`start`, then wait until SIGTERM/SIGINT (where the loop can take signal handlers)
        or :meth:`close`; closes gracefully."""
        await self.start()
        assert self._closed is not None
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (_signal.SIGTERM, _signal.SIGINT):
            try:
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.close()))
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or a loop without signal support
        try:
            await self._closed.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def __aenter__(self) -> "AsyncWorker":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self, grace: Optional[Duration] = None) -> None:
        """Stops claiming, lets running handlers finish within ``grace`` (default ``shutdown_grace``),
        then gives the rest back (``release``) and cancels their tasks (``reason`` "closing"), and leaves."""
        if self._close_lock is None or self._closing is None or self._closed is None or self._acks is None:
            return  # never started
        async with self._close_lock:
            if self._closed.is_set():
                return
            self._closing.set()
            limit = self.shutdown_grace if grace is None else duration_seconds(grace)
            running = self._snapshot()
            if running:
                await asyncio.wait([asyncio.ensure_future(r.done.wait()) for r in running], timeout=limit)
            for r in self._snapshot():
                if not r.acked:
                    self._ack(r, {"outcome": "release", "message": "the worker closed before the job finished"})
                    self._abort(r, "closing")
            running = self._snapshot()
            if running:
                await asyncio.wait([asyncio.ensure_future(r.done.wait()) for r in running], timeout=10)
            if self._claim_task is not None:
                # a claim in flight ends within its long poll; jobs it brings are released
                await asyncio.wait([self._claim_task], timeout=self._max_wait_ms / 1000 + 10)
            self._acks.put_nowait(None)
            if self._ack_task is not None:
                await asyncio.wait([self._ack_task], timeout=30)
            if self._heartbeat_task is not None:
                self._heartbeat_task.cancel()
            if self.id is not None:
                try:
                    await self._call("DELETE", self._path())
                except KyuError as e:
                    self.on_error(e)
            self._closed.set()

    def _snapshot(self) -> list[_Running]:
        return list(self._running.values())

    async def _claim_loop(self) -> None:
        assert self._closing is not None and self._slot_freed is not None
        backoff = 0.1
        while not self._closing.is_set():
            while self._free == 0 and not self._closing.is_set():
                self._slot_freed.clear()
                await _first(self._slot_freed.wait(), self._closing.wait())
            if self._closing.is_set():
                return
            free, self._free = self._free, 0
            try:
                reply = await self._call(
                    "POST",
                    self._path("/claim"),
                    {"max": free, "wait_ms": self._max_wait_ms},
                    timeout=60 + self._max_wait_ms / 1000,
                )
                backoff = 0.1
            except KyuError as e:
                self._free += free
                self.on_error(e)
                if e.code == "unknown_worker":
                    # the server forgot this worker (it left, or was silent three lease periods):
                    # register again; held jobs are finished with their lease tokens as before
                    try:
                        await self._register()
                        continue
                    except KyuError as again:
                        self.on_error(again)
                await _first(self._closing.wait(), timeout=backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            jobs = reply["jobs"]
            self._free += free - len(jobs)
            for job in jobs:
                r = self._track(job)
                if self._closing.is_set():
                    self._ack(r, {"outcome": "release", "message": "the worker closed before starting it"})
                else:
                    r.task = asyncio.create_task(self._run(r), name=f"kyu-job-{job['id']}")
            self._command(reply["command"])

    def _command(self, command: str) -> None:
        assert self._closing is not None
        if command in ("quiet", "stop"):
            self._closing.set()
            if command == "stop":
                asyncio.ensure_future(self.close(grace=0))

    def _track(self, job: dict[str, Any]) -> _Running:
        ctx = AsyncJobContext(
            id=job["id"],
            attempt=job["attempt"],
            max_attempts=job["max_attempts"],
            queue=job["queue"],
            kind=job["kind"],
            args=job["args"],
            tags=job.get("tags", []),
        )
        r = _Running(job=job, ctx=ctx)

        async def progress(percent: int, message: str) -> None:
            await self._call(
                "POST",
                self._path(f"/jobs/{job['id']}/progress"),
                {"attempt": job["attempt"], "lease_token": job["lease_token"], "percent": percent, "message": message},
            )

        ctx._progress = progress
        self._running[job["id"]] = r
        return r

    def _finished(self, r: _Running) -> None:
        assert self._slot_freed is not None
        if self._running.get(r.job["id"]) is r:
            del self._running[r.job["id"]]
        if not r.done.is_set():
            r.done.set()
            self._free += 1
            self._slot_freed.set()

    @staticmethod
    def _abort(r: _Running, reason: str) -> None:
        if not r.ctx.cancelled.is_set():
            r.ctx.reason = reason
            r.ctx.cancelled.set()
            if r.task is not None and not r.task.done():
                r.task.cancel()

    async def _run(self, r: _Running) -> None:
        job = r.job
        handler = self.handlers.get(job["kind"])
        if handler is None:
            self._ack(r, _ends.no_handler(job["kind"]))
            return
        if job.get("timeout_ms"):
            ms = job["timeout_ms"]

            def on_timeout() -> None:
                self._ack(r, _ends.timed_out(ms))
                self._abort(r, "timeout")

            r.timer = asyncio.get_running_loop().call_later(ms / 1000, on_timeout)
        try:
            out = await handler(r.ctx)
        except asyncio.CancelledError:
            if r.ctx.reason is None:
                raise  # not ours: the loop is shutting down
            # ours: a timeout, lease loss or close has acknowledged already; a cancel fails the
            # attempt, which the server records as cancelled
            self._ack(r, {"outcome": "fail", "message": f"stopped: {r.ctx.reason}"})
        except Exception as e:  # noqa: BLE001 - any error fails the attempt
            self._ack(r, _ends.raised(e))
        else:
            self._ack(r, _ends.returned(out))

    def _ack(self, r: _Running, end: dict[str, Any]) -> None:
        assert self._acks is not None
        if r.acked:
            return
        r.acked = True
        if r.timer:
            r.timer.cancel()
        self._acks.put_nowait({**_ends.ack_item(r.job, end), "_r": r})

    async def _ack_loop(self) -> None:
        """Sends the queued acknowledgements, everything queued in one request."""
        assert self._acks is not None
        stop = False
        while not stop:
            first = await self._acks.get()
            batch = []
            if first is None:
                stop = True
            else:
                batch.append(first)
            while not self._acks.empty():
                nxt = self._acks.get_nowait()
                if nxt is None:
                    stop = True
                else:
                    batch.append(nxt)
            if not batch:
                continue
            items = [{k: v for k, v in b.items() if k != "_r"} for b in batch]
            for tries in range(5):
                try:
                    await self._call("POST", self._path("/ack"), {"acks": items})
                    break
                except KyuError as e:
                    self.on_error(e)
                    if 400 <= e.status < 500:
                        break
                    await asyncio.sleep(0.1 * 2**tries)
            for b in batch:
                self._finished(b["_r"])

    async def _heartbeat_loop(self) -> None:
        assert self._closed is not None and self._closing is not None
        while not self._closed.is_set():
            await asyncio.sleep(self._heartbeat_s)
            held = [r for r in self._snapshot() if not r.acked]
            try:
                reply = await self._call(
                    "POST",
                    self._path("/heartbeat"),
                    {"leases": [{"job_id": r.job["id"], "attempt": r.job["attempt"], "lease_token": r.job["lease_token"]} for r in held]},
                )
            except ConflictError:
                continue
            except KyuError as e:
                self.on_error(e)
                continue
            by_id = {r.job["id"]: r for r in held}
            for lease in reply["leases"]:
                r = by_id.get(lease["job_id"])
                if r is None or r.job["attempt"] != lease["attempt"]:
                    continue
                if lease["status"] == "lost":
                    r.acked = True
                    self._abort(r, "lease_lost")
                    self._finished(r)
                elif lease["cancel_requested"]:
                    self._abort(r, "cancelled")
            self._command(reply["command"])


__all__ = ["AsyncWorker", "AsyncJobContext", "AsyncHandler"]
