"""Shapes of the kyu HTTP API's answers (see kyu's docs/openapi.json), as TypedDicts."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Literal, Optional, TypedDict, Union

#: A duration: seconds as a number, a ``timedelta``, or text such as ``"500ms"``, ``"30s"``, ``"5m"``, ``"2h"``, ``"7d"``.
Duration = Union[int, float, str, _dt.timedelta]

#: A job's state.
JobState = Literal["scheduled", "available", "running", "completed", "failed", "cancelled"]

FINISHED = ("completed", "failed", "cancelled")


class Enqueued(TypedDict):
    """What an enqueue did."""

    id: int
    duplicate: bool


class Progress(TypedDict):
    """A job's last progress report."""

    percent: int
    message: str


class AttemptError(TypedDict):
    """One failed attempt."""

    attempt: int
    at: str
    message: str
    worker: str


class Job(TypedDict):
    """A job as the API shows it."""

    id: int
    queue: str
    kind: str
    state: JobState
    args: Any
    result: Any
    redacted: bool
    priority: int
    attempt: int
    max_attempts: int
    unique_key: Optional[str]
    tags: list[str]
    created_at: str
    run_at: str
    attempted_at: Optional[str]
    finished_at: Optional[str]
    worker: Optional[str]
    cancel_requested: bool
    progress: Optional[Progress]
    errors: list[AttemptError]


class JobPage(TypedDict):
    """One page of jobs, newest first; ``next`` is the cursor of the next page."""

    jobs: list[Job]
    next: Optional[str]


class AttemptLogs(TypedDict):
    """The recorded output of one attempt of a command job."""

    attempt: int
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int


class QueueInfo(TypedDict):
    """A queue, its paused flag and its job counts by state."""

    queue: str
    paused: bool
    counts: dict[str, int]


class Batch(TypedDict):
    """A batch's state and counts, as ``GET /v1/batches/{id}`` shows it."""

    id: int
    #: ``open`` (jobs can be added), ``sealed``, or ``done`` (sealed, every job finished, callbacks enqueued).
    state: Literal["open", "sealed", "done"]
    total: int
    #: Waiting to run (scheduled or available).
    pending: int
    running: int
    #: Completed.
    succeeded: int
    #: Failed for good.
    failed: int
    #: Cancelled (or deleted before they finished).
    cancelled: int
    created_at: str
    done_at: Optional[str]
    #: The on_complete callback's kind.
    on_complete: Optional[str]
    #: The on_success callback's kind.
    on_success: Optional[str]
    #: The callback jobs enqueued when it was done.
    callback_jobs: list[int]


class BatchJobs(TypedDict):
    """What creating a batch or adding jobs to it did: the batch now, one answer per job in order."""

    batch: Batch
    jobs: list[Enqueued]


class Schedule(TypedDict):
    """A schedule as the API shows it."""

    name: str
    cron: str
    zone: str
    queue: str
    kind: str
    enabled: bool
    next_fire_at: Optional[str]
    last_fire_at: Optional[str]
    last_job_id: Optional[int]


def duration_text(d: Duration) -> str:
    """Duration text for the API: a number is seconds."""
    if isinstance(d, str):
        return d
    seconds = d.total_seconds() if isinstance(d, _dt.timedelta) else float(d)
    if seconds < 0:
        raise ValueError(f"duration: {d!r} is not accepted; accepted: 0 or more seconds, or text such as '30s'")
    return f"{round(seconds * 1000)}ms"


def duration_seconds(d: Duration) -> float:
    """Seconds of a duration (text as kyu writes it: ``500ms``, ``30s``, ``5m``, ``2h``, ``7d``, combined like ``1m30s``)."""
    import re

    if not isinstance(d, str):
        return d.total_seconds() if isinstance(d, _dt.timedelta) else float(d)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    text = d.replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"duration: {d!r} is not a duration; accepted: e.g. 500ms, 30s, 5m, 2h, 7d")
    return sum(float(n) * units[u] for n, u in parts)
