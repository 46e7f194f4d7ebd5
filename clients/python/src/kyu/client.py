"""The producer and operator client: one method per API route."""

from __future__ import annotations

import datetime as _dt
import os
import time
from typing import Any, Iterable, Iterator, Mapping, Sequence, Union, cast

from ._http import Http
from .errors import WaitTimeoutError
from .types import (
    FINISHED,
    AttemptLogs,
    Batch,
    BatchJobs,
    Duration,
    Enqueued,
    Job,
    JobPage,
    QueueInfo,
    Schedule,
    duration_seconds,
    duration_text,
)

#: The longest single long poll the server accepts (``?wait=``), in seconds.
MAX_POLL = 30.0

_OPTION_FIELDS = (
    "queue",
    "priority",
    "run_at",
    "delay",
    "max_attempts",
    "retry",
    "timeout",
    "unique_key",
    "unique_for",
    "tags",
)


def job_body(kind: str, args: Any = None, **options: Any) -> dict[str, Any]:
    """The API's enqueue body of one job (options as :meth:`Client.enqueue` takes them)."""
    unknown = set(options) - set(_OPTION_FIELDS)
    if unknown:
        raise TypeError(f"unknown enqueue option(s) {sorted(unknown)}; accepted: {', '.join(_OPTION_FIELDS)}")
    body: dict[str, Any] = {"kind": kind}
    if args is not None:
        body["args"] = args
    for name in _OPTION_FIELDS:
        v = options.get(name)
        if v is None:
            continue
        if name in ("delay", "timeout", "unique_for"):
            v = duration_text(v)
        elif name == "run_at" and isinstance(v, _dt.datetime):
            v = (v if v.tzinfo else v.replace(tzinfo=_dt.timezone.utc)).isoformat()
        elif name == "retry":
            v = {k: (duration_text(x) if k != "type" else x) for k, x in v.items()}
        elif name == "tags":
            v = list(v)
        body[name] = v
    return body


def job_bodies(jobs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The API's bodies of jobs given as mappings with ``kind``, ``args`` and the options of
    :meth:`Client.enqueue`."""
    bodies = []
    for j in jobs:
        rest = dict(j)
        kind = rest.pop("kind")
        args = rest.pop("args", None)
        bodies.append(job_body(kind, args, **rest))
    return bodies


def _ids(ids: Union[int, Iterable[int]]) -> list[int]:
    return [ids] if isinstance(ids, int) else list(ids)


class Client:
    """A client of kyu's HTTP API (``kyu serve``).

    ::

        client = kyu.Client("http://127.0.0.1:7070", token=os.environ["KYU_TOKEN"])
        job = client.enqueue("send_email", {"to": "ada@example.com"}, queue="mail")
        done = client.wait(job["id"], timeout="1m")
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60.0) -> None:
        """``url`` defaults to ``KYU_URL``, else ``http://127.0.0.1:7070``; ``token`` to ``KYU_TOKEN``.
        ``timeout`` bounds one request (seconds; long polls add their wait)."""
        self.http = Http(
            url or os.environ.get("KYU_URL") or "http://127.0.0.1:7070",
            token if token is not None else os.environ.get("KYU_TOKEN"),
            timeout,
        )

    @property
    def url(self) -> str:
        """The API's base address."""
        return self.http.url

    def request(self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None) -> Any:
        """One request to a route this class does not wrap."""
        return self.http.request(method, path, body=body, query=query)

    def enqueue(self, kind: str, args: Any = None, *, idempotency_key: str | None = None, **options: Any) -> Enqueued:
        """Enqueues one job. Options: ``queue``, ``priority``, ``run_at`` (datetime or RFC 3339),
        ``delay``, ``max_attempts``, ``retry`` (``{"type": "exponential", "initial": "1s", "cap": "1m"}``
        or ``{"type": "fixed", "delay": "30s"}``), ``timeout``, ``unique_key``, ``unique_for``, ``tags``.
        Durations are seconds or text (``"30s"``). With ``idempotency_key``, a repeat of the same request
        (within 24 h) returns the first job with ``duplicate: True``."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        return cast(Enqueued, self.http.request("POST", "/v1/jobs", body=job_body(kind, args, **options), headers=headers))

    def enqueue_many(self, jobs: Sequence[Mapping[str, Any]]) -> list[Enqueued]:
        """Enqueues jobs in one transaction, all or none: each a mapping with ``kind``, ``args`` and the
        options of :meth:`enqueue`. One answer per job, in order."""
        return cast(list[Enqueued], self.http.request("POST", "/v1/jobs/batch", body={"jobs": job_bodies(jobs)})["jobs"])

    def create_batch(
        self,
        jobs: Sequence[Mapping[str, Any]] = (),
        *,
        on_complete: Mapping[str, Any] | None = None,
        on_success: Mapping[str, Any] | None = None,
        seal: bool = False,
    ) -> BatchJobs:
        """Creates a batch with its callbacks and first jobs in one transaction (scope produce; a
        token limited to queues is refused, as a batch may span queues); with ``seal``, sealed after
        them. Jobs and callbacks are mappings as :meth:`enqueue_many` takes them. ``on_complete`` is
        enqueued once when every job of the sealed batch has finished, whatever the outcome;
        ``on_success`` only if all succeeded. A callback's ``args`` must be a dict (or left out): kyu
        adds ``"batch": {"id", "total", "succeeded", "failed", "cancelled"}``::

            made = client.create_batch(
                [{"kind": "sync_user", "args": {"user": u}} for u in users],
                on_complete={"kind": "sync_report", "args": {}},
                seal=True,
            )
            client.get_batch(made["batch"]["id"])["succeeded"]
        """
        body: dict[str, Any] = {"jobs": job_bodies(jobs), "seal": seal}
        if on_complete is not None:
            body["on_complete"] = job_bodies([on_complete])[0]
        if on_success is not None:
            body["on_success"] = job_bodies([on_success])[0]
        return cast(BatchJobs, self.http.request("POST", "/v1/batches", body=body))

    def add_to_batch(self, id: int, jobs: Sequence[Mapping[str, Any]], *, seal: bool = False) -> BatchJobs:
        """Adds jobs to an open batch (one transaction); with ``seal``, seals it after them.
        :class:`InvalidError` if it is sealed."""
        return cast(BatchJobs, self.http.request("POST", f"/v1/batches/{int(id)}/jobs", body={"jobs": job_bodies(jobs), "seal": seal}))

    def seal_batch(self, id: int) -> Batch:
        """Seals a batch: no job can be added after; if every job has finished, its callbacks are
        enqueued now. Sealing twice changes nothing."""
        return cast(Batch, self.http.request("POST", f"/v1/batches/{int(id)}/seal"))

    def get_batch(self, id: int) -> Batch:
        """A batch's state and counts: total, pending, running, succeeded, failed, cancelled."""
        return cast(Batch, self.http.request("GET", f"/v1/batches/{int(id)}"))

    def get_job(self, id: int) -> Job:
        """One job: state, attempts with their errors, progress, result."""
        return cast(Job, self.http.request("GET", f"/v1/jobs/{int(id)}"))

    def wait(self, id: int, timeout: Duration | None = None) -> Job:
        """Waits until the job is completed, failed or cancelled and returns it (long polls of at most
        30 s). With ``timeout``, raises :class:`WaitTimeoutError` when it is not finished by then."""
        limit = None if timeout is None else duration_seconds(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            left = MAX_POLL if deadline is None else max(0.0, deadline - time.monotonic())
            poll = min(left, MAX_POLL)
            job = cast(
                Job,
                self.http.request(
                    "GET", f"/v1/jobs/{int(id)}", query={"wait": f"{round(poll * 1000)}ms"}, timeout=self.http.timeout + poll
                ),
            )
            if job["state"] in FINISHED:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(0, "wait_timeout", f"job {id} is still {job['state']} after {limit} s")

    def cancel(self, ids: Union[int, Iterable[int]]) -> dict[str, str]:
        """Cancels jobs: a waiting job is cancelled, a running one asked to stop. Per id: ``cancelled``,
        ``requested``, ``already_finished`` or ``not_found``."""
        return cast(dict[str, str], self.http.request("POST", "/v1/jobs/cancel", body={"ids": _ids(ids)})["results"])

    def retry(self, ids: Union[int, Iterable[int]]) -> dict[str, str]:
        """Retries failed or cancelled jobs. Per id: ``retried``, ``not_retryable``, ``key_held`` or ``not_found``."""
        return cast(dict[str, str], self.http.request("POST", "/v1/jobs/retry", body={"ids": _ids(ids)})["results"])

    def list_jobs(
        self,
        *,
        state: str | None = None,
        queue: str | None = None,
        kind: str | None = None,
        tag: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> JobPage:
        """One page of jobs, newest first; pass ``next`` as ``cursor`` for the next page."""
        q = {"state": state, "queue": queue, "kind": kind, "tag": tag, "cursor": cursor, "limit": limit}
        return cast(JobPage, self.http.request("GET", "/v1/jobs", query=q))

    def jobs(self, **filter: Any) -> Iterator[Job]:
        """Every job matching the filter of :meth:`list_jobs`, newest first, page after page."""
        cursor = None
        while True:
            page = self.list_jobs(cursor=cursor, **filter)
            yield from page["jobs"]
            cursor = page["next"]
            if cursor is None:
                return

    def logs(self, id: int) -> list[AttemptLogs]:
        """A command job's recorded output, one entry per attempt (needs ``read_args``)."""
        return cast(list[AttemptLogs], self.http.request("GET", f"/v1/jobs/{int(id)}/logs"))

    def queues(self) -> list[QueueInfo]:
        """Every queue the token may see, with job counts by state."""
        return cast(list[QueueInfo], self.http.request("GET", "/v1/queues"))

    def pause_queue(self, name: str) -> None:
        """Pauses a queue: workers skip it until resumed."""
        self.http.request("POST", f"/v1/queues/{_seg(name)}/pause")

    def resume_queue(self, name: str) -> None:
        """Resumes a paused queue."""
        self.http.request("POST", f"/v1/queues/{_seg(name)}/resume")

    def schedules(self) -> list[Schedule]:
        """Every schedule the token may see, by name."""
        return cast(list[Schedule], self.http.request("GET", "/v1/schedules"))

    def put_schedule(
        self,
        name: str,
        *,
        cron: str,
        kind: str,
        args: Any = None,
        zone: str | None = None,
        overlap: str | None = None,
        misfire: str | None = None,
        enabled: bool | None = None,
        **options: Any,
    ) -> Schedule:
        """Creates or replaces the schedule ``name`` (``PUT /v1/schedules/{name}``, scope operate): ``cron``
        (5 fields, or 6 with seconds first), ``zone`` (IANA; default UTC), the job (``kind``, ``args`` and
        ``queue``, ``priority``, ``max_attempts``, ``retry``, ``timeout``, ``tags``), ``overlap``
        (allow, skip, buffer_one), ``misfire`` (skip, run_once), ``enabled``."""
        for bad in ("run_at", "delay", "unique_key", "unique_for"):
            if bad in options:
                raise TypeError(f"put_schedule: {bad} is not a schedule option")
        body: dict[str, Any] = {"cron": cron, "job": job_body(kind, args, **options)}
        for k, v in (("zone", zone), ("overlap", overlap), ("misfire", misfire), ("enabled", enabled)):
            if v is not None:
                body[k] = v
        return cast(Schedule, self.http.request("PUT", f"/v1/schedules/{_seg(name)}", body=body))

    def delete_schedule(self, name: str) -> None:
        """Deletes a schedule (its jobs stay)."""
        self.http.request("DELETE", f"/v1/schedules/{_seg(name)}")

    def enable_schedule(self, name: str) -> None:
        """Enables a schedule."""
        self.http.request("POST", f"/v1/schedules/{_seg(name)}/enable")

    def disable_schedule(self, name: str) -> None:
        """Disables a schedule."""
        self.http.request("POST", f"/v1/schedules/{_seg(name)}/disable")

    def events(self, **options: Any) -> Iterator[dict[str, Any]]:
        """The event log over ``GET /v1/events`` (Server-Sent Events): ``since`` (an event id; 0
        replays all the log holds; default live only), ``queue``, ``kind``, ``job``, ``types``, ``stop``
        (a ``threading.Event`` that ends the iterator), ``on_reconnect``. A dropped connection is reopened
        with ``Last-Event-ID``, so no event is lost or repeated::

            for e in client.events(since=0, types=["failed"]):
                print(e["job_id"], e["type"])
        """
        from .events import stream_events

        return stream_events(self.http, **options)

    def trigger_schedule(self, name: str) -> Any:
        """Fires a schedule now."""
        return self.http.request("POST", f"/v1/schedules/{_seg(name)}/trigger")


def _seg(name: str) -> str:
    import urllib.parse

    return urllib.parse.quote(name, safe="")
