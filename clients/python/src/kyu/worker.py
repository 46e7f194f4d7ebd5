"""A worker over kyu's HTTP worker protocol (``/v1/workers``), sync API with threads:
it registers, claims jobs by long poll in batches, runs a handler per kind in a pool
of ``concurrency`` threads, heartbeats every lease in one request, acknowledges
finished attempts in batches, and closes gracefully::

    worker = kyu.Worker(url, token=token, queues=["mail"], concurrency=8)

    @worker.handler("send_email")
    def send_email(job: kyu.JobContext):
        job.progress(50, "sending")
        if job.cancelled.is_set(): ...
        return {"sent": True}

    worker.run()          # until SIGTERM/SIGINT or worker.close()
"""

from __future__ import annotations

import os
import queue as _queue
import signal as _signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from . import _ends, _options
from ._ends import PermanentError, RetryAfter, Snooze
from .errors import ConflictError, KyuError
from .types import Duration, duration_seconds


@dataclass
class JobContext:
    """What a handler gets."""

    id: int
    attempt: int
    max_attempts: int
    queue: str
    kind: str
    args: Any
    tags: list[str]
    #: Set when the job is cancelled, its timeout passes, its lease is lost or the worker
    #: closes past its grace; ``reason`` says which.
    cancelled: threading.Event = field(default_factory=threading.Event)
    reason: Optional[str] = None
    _progress: Callable[[int, str], None] = field(default=lambda p, m: None, repr=False)

    def progress(self, percent: int, message: str = "") -> None:
        """Reports progress (0..100, a short note); recorded on the job at once."""
        self._progress(percent, message)

    def snooze(self, seconds: Duration) -> Snooze:
        """A value to return (or raise) to run the job again after ``seconds``, no attempt used."""
        return Snooze(duration_seconds(seconds))


Handler = Callable[[JobContext], Any]


@dataclass
class _Running:
    job: dict[str, Any]
    ctx: JobContext
    acked: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    timer: Optional[threading.Timer] = None


class Worker:
    """A worker of kyu over HTTP (see the module docs)."""

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
        _options.check("Worker", queues, concurrency)
        self.http = _options.http(url, token)
        self.queues = list(queues)
        self.concurrency = concurrency
        self.name = name or f"python-{os.getpid()}"
        self.lease = lease
        self.poll_wait = poll_wait
        self.shutdown_grace = duration_seconds(shutdown_grace)
        self.on_error = on_error or (lambda e: None)
        self.handlers: dict[str, Handler] = {}
        self.id: Optional[str] = None
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(concurrency)
        self._closing = threading.Event()
        self._closed = threading.Event()
        self._acks: "_queue.Queue[Optional[dict[str, Any]]]" = _queue.Queue()
        self._threads: list[threading.Thread] = []
        self._heartbeat_s = 10.0
        self._max_wait_ms = 30_000
        self._close_lock = threading.Lock()

    def register(self, kind: str, handler: Handler) -> "Worker":
        """Runs ``handler`` for jobs of ``kind``. Call before :meth:`start`."""
        if self.id is not None:
            raise RuntimeError(f"register({kind}): the worker has started; register every kind before start()")
        self.handlers[kind] = handler
        return self

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        """A decorator form of :meth:`register`."""

        def wrap(fn: Handler) -> Handler:
            self.register(kind, fn)
            return fn

        return wrap

    def _path(self, tail: str = "") -> str:
        import urllib.parse

        return f"/v1/workers/{urllib.parse.quote(self.id or '', safe='')}{tail}"

    def start(self) -> None:
        """Registers with the server and starts claiming in background threads."""
        if not self.handlers:
            raise RuntimeError("start: no handler registered; call register(kind, handler) first")
        self._register()
        for target in (self._claim_loop, self._heartbeat_loop, self._ack_loop):
            t = threading.Thread(target=target, name=f"kyu-{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)

    def _register(self) -> None:
        """Registers (again, after the server forgot this worker: ``unknown_worker``)."""
        body: dict[str, Any] = {"name": self.name, "queues": self.queues, "kinds": list(self.handlers), "capacity": self.concurrency}
        if self.lease is not None:
            body["lease_ms"] = round(duration_seconds(self.lease) * 1000)
        reply = self.http.request("POST", "/v1/workers", body=body)
        self.id = reply["worker_id"]
        self._heartbeat_s = reply["heartbeat_interval_ms"] / 1000
        wait = reply["max_wait_ms"] if self.poll_wait is None else min(reply["max_wait_ms"], round(duration_seconds(self.poll_wait) * 1000))
        self._max_wait_ms = wait

    def run(self) -> None:
        """:meth:`start`, then block until SIGTERM/SIGINT (main thread) or :meth:`close`; closes gracefully."""
        self.start()
        if threading.current_thread() is threading.main_thread():
            for sig in (_signal.SIGTERM, _signal.SIGINT):
                _signal.signal(sig, lambda *_: threading.Thread(target=self.close, daemon=True).start())
        self._closed.wait()

    def close(self, grace: Optional[Duration] = None) -> None:
        """Stops claiming, lets running handlers finish within ``grace`` (default ``shutdown_grace``),
        then flags the rest (``cancelled`` set, ``reason`` "closing") and gives their jobs back, and leaves."""
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closing.set()
            self._slots.release()  # wakes the claim loop if it waits for a free slot
            limit = self.shutdown_grace if grace is None else duration_seconds(grace)
            deadline = time.monotonic() + limit
            for r in self._snapshot():
                r.done.wait(max(0.0, deadline - time.monotonic()))
            for r in self._snapshot():
                if not r.acked:
                    self._abort(r, "closing")
                    self._ack(r, {"outcome": "release", "message": "the worker closed before the job finished"})
            for r in self._snapshot():
                r.done.wait(10)
            self._acks.put(None)
            for t in self._threads:
                if t is not threading.current_thread():
                    t.join(self._max_wait_ms / 1000 + 10)
            if self.id is not None:
                try:
                    self.http.request("DELETE", self._path())
                except KyuError as e:
                    self.on_error(e)
            self._closed.set()

    def _snapshot(self) -> list[_Running]:
        with self._lock:
            return list(self._running.values())

    def _claim_loop(self) -> None:
        backoff = 0.1
        while not self._closing.is_set():
            self._slots.acquire()
            free = 1
            while self._slots.acquire(blocking=False):
                free += 1
            if self._closing.is_set():
                for _ in range(free):
                    self._slots.release()
                return
            try:
                reply = self.http.request(
                    "POST",
                    self._path("/claim"),
                    body={"max": free, "wait_ms": self._max_wait_ms},
                    timeout=60 + self._max_wait_ms / 1000,
                )
                backoff = 0.1
            except KyuError as e:
                for _ in range(free):
                    self._slots.release()
                self.on_error(e)
                if e.code == "unknown_worker":
                    # the server forgot this worker (it left, or was silent three lease periods):
                    # register again; held jobs are finished with their lease tokens as before
                    try:
                        self._register()
                        continue
                    except KyuError as again:
                        self.on_error(again)
                self._closing.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            jobs = reply["jobs"]
            for _ in range(free - len(jobs)):
                self._slots.release()
            for job in jobs:
                r = self._track(job)
                if self._closing.is_set():
                    self._ack(r, {"outcome": "release", "message": "the worker closed before starting it"})
                else:
                    threading.Thread(target=self._run, args=(r,), name=f"kyu-job-{job['id']}", daemon=True).start()
            self._command(reply["command"])

    def _command(self, command: str) -> None:
        if command in ("quiet", "stop"):
            self._closing.set()
            if command == "stop":
                threading.Thread(target=self.close, kwargs={"grace": 0}, daemon=True).start()

    def _track(self, job: dict[str, Any]) -> _Running:
        ctx = JobContext(
            id=job["id"],
            attempt=job["attempt"],
            max_attempts=job["max_attempts"],
            queue=job["queue"],
            kind=job["kind"],
            args=job["args"],
            tags=job.get("tags", []),
        )
        r = _Running(job=job, ctx=ctx)

        def progress(percent: int, message: str) -> None:
            self.http.request(
                "POST",
                self._path(f"/jobs/{job['id']}/progress"),
                body={"attempt": job["attempt"], "lease_token": job["lease_token"], "percent": percent, "message": message},
            )

        ctx._progress = progress
        with self._lock:
            self._running[job["id"]] = r
        return r

    def _finished(self, r: _Running) -> None:
        with self._lock:
            if self._running.get(r.job["id"]) is r:
                del self._running[r.job["id"]]
        if not r.done.is_set():
            r.done.set()
            self._slots.release()

    @staticmethod
    def _abort(r: _Running, reason: str) -> None:
        if not r.ctx.cancelled.is_set():
            r.ctx.reason = reason
            r.ctx.cancelled.set()

    def _run(self, r: _Running) -> None:
        job = r.job
        handler = self.handlers.get(job["kind"])
        if handler is None:
            self._ack(r, _ends.no_handler(job["kind"]))
            return
        if job.get("timeout_ms"):
            ms = job["timeout_ms"]

            def on_timeout() -> None:
                self._abort(r, "timeout")
                self._ack(r, _ends.timed_out(ms))

            r.timer = threading.Timer(ms / 1000, on_timeout)
            r.timer.daemon = True
            r.timer.start()
        try:
            out = handler(r.ctx)
        except BaseException as e:  # noqa: BLE001 - any error fails the attempt
            self._ack(r, _ends.raised(e))
        else:
            self._ack(r, _ends.returned(out))

    def _ack(self, r: _Running, end: dict[str, Any]) -> None:
        with self._lock:
            if r.acked:
                return
            r.acked = True
        if r.timer:
            r.timer.cancel()
        self._acks.put({**_ends.ack_item(r.job, end), "_r": r})

    def _ack_loop(self) -> None:
        """Sends the queued acknowledgements, everything queued in one request."""
        stop = False
        while not stop:
            first = self._acks.get()
            batch = []
            if first is None:
                stop = True
            else:
                batch.append(first)
            while True:
                try:
                    nxt = self._acks.get_nowait()
                except _queue.Empty:
                    break
                if nxt is None:
                    stop = True
                else:
                    batch.append(nxt)
            if not batch:
                continue
            items = [{k: v for k, v in b.items() if k != "_r"} for b in batch]
            for tries in range(5):
                try:
                    self.http.request("POST", self._path("/ack"), body={"acks": items})
                    break
                except KyuError as e:
                    self.on_error(e)
                    if 400 <= e.status < 500:
                        break
                    time.sleep(0.1 * 2**tries)
            for b in batch:
                self._finished(b["_r"])

    def _heartbeat_loop(self) -> None:
        while not self._closed.wait(self._heartbeat_s):
            held = [r for r in self._snapshot() if not r.acked]
            try:
                reply = self.http.request(
                    "POST",
                    self._path("/heartbeat"),
                    body={"leases": [{"job_id": r.job["id"], "attempt": r.job["attempt"], "lease_token": r.job["lease_token"]} for r in held]},
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
                    self._abort(r, "lease_lost")
                    with self._lock:
                        r.acked = True
                    self._finished(r)
                elif lease["cancel_requested"]:
                    self._abort(r, "cancelled")
            self._command(reply["command"])
            if self._closing.is_set() and not self._snapshot():
                return


__all__ = ["Worker", "JobContext", "PermanentError", "RetryAfter", "Snooze", "Handler", "Union"]
