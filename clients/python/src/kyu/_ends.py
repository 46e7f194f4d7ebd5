"""How an attempt ended, as an acknowledgement of kyu's worker protocol: the one mapping
:class:`kyu.Worker` and :class:`kyu.AsyncWorker` share (a handler's return value or
exception, a missing handler, a timeout), so both tell the server the same thing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class PermanentError(Exception):
    """Raised by a handler: the job fails now, without retry."""


class RetryAfter(Exception):
    """Raised by a handler: retry after ``seconds`` instead of the job's retry policy."""

    def __init__(self, seconds: float, message: str = "retry later") -> None:
        super().__init__(message)
        self.seconds = seconds


@dataclass(frozen=True)
class Snooze(Exception):
    """Returned (or raised) by a handler: run the job again after ``seconds`` without using an attempt."""

    seconds: float


def returned(out: Any) -> dict[str, Any]:
    """The end of an attempt whose handler returned ``out``."""
    if isinstance(out, Snooze):
        return {"outcome": "snooze", "delay_ms": max(0, round(out.seconds * 1000))}
    return {"outcome": "complete", "result": out}


def raised(e: BaseException) -> dict[str, Any]:
    """The end of an attempt whose handler raised ``e``."""
    if isinstance(e, Snooze):
        return returned(e)
    if isinstance(e, PermanentError):
        return {"outcome": "fail", "message": str(e) or type(e).__name__, "permanent": True}
    if isinstance(e, RetryAfter):
        return {"outcome": "fail", "message": str(e), "retry_after_ms": max(0, round(e.seconds * 1000))}
    return {"outcome": "fail", "message": str(e) or type(e).__name__}


def no_handler(kind: str) -> dict[str, Any]:
    """The end of an attempt of a kind this worker has no handler for."""
    return {"outcome": "fail", "message": f"no handler for kind {kind} in this worker"}


def timed_out(ms: int) -> dict[str, Any]:
    """The end of an attempt that ran past its job's timeout."""
    return {"outcome": "fail", "message": f"timed out after {ms} ms"}


def ack_item(job: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """The acknowledgement of ``job``'s attempt (as claimed) that ended with ``end``."""
    return {"job_id": job["id"], "attempt": job["attempt"], "lease_token": job["lease_token"], **end}
