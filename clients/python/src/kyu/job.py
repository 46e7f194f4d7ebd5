"""Helpers for a script that kyu runs as a command job (seed 003's batch scripts):
``kyu.current_job()`` reads the job kyu gave in the environment, and
``kyu.progress(pct, msg)`` reports progress, with no arguments to pass around::

    import kyu

    job = kyu.current_job()          # None when run by hand
    for step in range(1, 6):
        ...
        kyu.progress(step * 20, f"step {step} of 5")

Where progress goes:

- When kyu gave the command an API address and a job token (``KYU_API_URL`` and
  ``KYU_JOB_TOKEN``: ``kyu serve`` does, and ``kyu worker`` with ``--api-url`` or
  ``--http``), it is sent to the API (``POST /v1/jobs/{id}/progress``), recorded at
  once. The token can only report on this job, and stops working when this attempt
  ends.
- Otherwise (or if the API does not answer) it goes out as the line kyu reads from a
  command's stdout, ``::kyu-progress PCT MESSAGE``: the zero-dependency form, which a
  script without this package may print itself. kyu records it on the job too.

Either way it shows in ``kyu jobs show ID`` and ``GET /v1/jobs/{id}``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

from ._http import Http
from .errors import KyuError
from .types import Job


@dataclass(frozen=True)
class CurrentJob:
    """The job this process runs, as kyu put it in the environment."""

    #: ``KYU_JOB_ID``.
    id: int
    #: ``KYU_ATTEMPT`` (1 for the first run).
    attempt: int
    #: ``KYU_QUEUE``.
    queue: str
    #: ``KYU_KIND``.
    kind: str
    #: ``KYU_ARGS`` as JSON; when kyu left it out (args over 64 KiB come on stdin only),
    #: the args as the API shows them if it could be asked, else ``None``.
    args: Any = field(default=None)
    #: The job as the API shows it (state, progress, max_attempts, tags, errors of earlier
    #: attempts...) when kyu gave an API address and job token and the API answered; else ``None``.
    job: Optional[Job] = field(default=None)


def _api() -> Optional[tuple[Http, int]]:
    """The API and this job's id, when kyu gave an address and a job token."""
    url, token, raw = os.environ.get("KYU_API_URL"), os.environ.get("KYU_JOB_TOKEN"), os.environ.get("KYU_JOB_ID")
    if not (url and token and raw):
        return None
    return Http(url, token, timeout=10.0), int(raw)


def current_job() -> Optional[CurrentJob]:
    """The job kyu runs this process for, from ``KYU_JOB_ID`` and its siblings (and the API,
    when kyu gave its address and a job token: see :attr:`CurrentJob.job`); ``None`` when the
    process was not started by kyu."""
    raw = os.environ.get("KYU_JOB_ID")
    if not raw:
        return None
    args_text = os.environ.get("KYU_ARGS")
    args = json.loads(args_text) if args_text else None
    shown: Optional[Job] = None
    api = _api()
    if api is not None:
        http, id = api
        try:
            shown = http.request("GET", f"/v1/jobs/{id}")
        except KyuError as e:
            _warn(f"kyu.current_job: the API did not give job {id} ({e.code}: {e.message}); using the environment only")
        if shown is not None and args is None:
            args = shown.get("args")
    return CurrentJob(
        id=int(raw),
        attempt=int(os.environ.get("KYU_ATTEMPT", "1")),
        queue=os.environ.get("KYU_QUEUE", ""),
        kind=os.environ.get("KYU_KIND", ""),
        args=args,
        job=shown,
    )


def progress(percent: int, message: str = "") -> None:
    """Reports the current job's progress: ``percent`` 0 to 100 and a short note (one line).

    Under kyu it is recorded on the job at once (through the API when kyu gave its address and
    a job token, else through the stdout line); run by hand, the line is just printed."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"progress: {percent!r} is not accepted; accepted: a whole number from 0 to 100")
    note = " ".join(str(message).split())  # one line: kyu reads the progress line by line
    api = _api()
    if api is not None:
        http, id = api
        try:
            http.request("POST", f"/v1/jobs/{id}/progress", body={"percent": percent, "message": note})
            return
        except KyuError as e:
            # Progress is a courtesy, never a reason to fail the job: the stdout line still reaches kyu.
            _warn(f"kyu.progress: the API did not take it ({e.code}: {e.message}); reporting on stdout instead")
    line = f"::kyu-progress {percent} {note}".rstrip()
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


_warned: set[str] = set()


def _warn(message: str) -> None:
    """Says ``message`` on stderr once per process (kyu keeps a command's stderr with the attempt)."""
    key = message.split(":", 1)[0]
    if key in _warned:
        return
    _warned.add(key)
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
