"""kyu-client: enqueue, inspect, wait for and run kyu background jobs from Python over
kyu's HTTP API (``kyu serve``).

::

    import kyu
    client = kyu.Client("http://127.0.0.1:7070", token="kyu_...")
    job = client.enqueue("send_email", {"to": "ada@example.com"})
"""

from .aio import AsyncClient
from .aio_worker import AsyncHandler, AsyncJobContext, AsyncWorker
from .client import Client, job_body
from .errors import (
    ConflictError,
    ConnectionError,
    ForbiddenError,
    InvalidError,
    KyuError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnavailableError,
    WaitTimeoutError,
)
from .worker import Handler, JobContext, PermanentError, RetryAfter, Snooze, Worker
from .job import CurrentJob, current_job, progress
from .types import Batch, BatchJobs, Duration, Enqueued, Job, JobPage, JobState, duration_seconds, duration_text

__all__ = [
    "AsyncClient",
    "AsyncWorker",
    "AsyncJobContext",
    "AsyncHandler",
    "Worker",
    "JobContext",
    "Handler",
    "PermanentError",
    "RetryAfter",
    "Snooze",
    "Client",
    "CurrentJob",
    "current_job",
    "progress",
    "job_body",
    "KyuError",
    "InvalidError",
    "UnauthorizedError",
    "ForbiddenError",
    "NotFoundError",
    "ConflictError",
    "PayloadTooLargeError",
    "UnavailableError",
    "ConnectionError",
    "WaitTimeoutError",
    "Batch",
    "BatchJobs",
    "Duration",
    "Enqueued",
    "Job",
    "JobPage",
    "JobState",
    "duration_seconds",
    "duration_text",
]
