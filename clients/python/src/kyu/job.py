"""Helpers for a script that kyu runs as a command job (seed 003's batch scripts):
``kyu.current_job()`` reads the job kyu gave in the environment, and
``kyu.progress(pct, msg)`` reports progress, with no arguments to pass around::

    import kyu

    job = kyu.current_job()          # None when run by hand
    for step in range(1, 6):
        ...
        kyu.progress(step * 20, f"step {step} of 5")

Progress goes out as the line kyu reads from a command's stdout,
``::kyu-progress PCT MESSAGE`` (the zero-dependency form: a script may print
it itself), which kyu records on the job at once (``kyu jobs show ID``,
``GET /v1/jobs/{id}``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Optional


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
    #: ``KYU_ARGS`` as JSON (``None`` when kyu left it out: args over 128 KiB come on stdin only).
    args: Any = field(default=None)


def current_job() -> Optional[CurrentJob]:
    """The job kyu runs this process for, from ``KYU_JOB_ID`` and its siblings; ``None`` when
    the process was not started by kyu."""
    raw = os.environ.get("KYU_JOB_ID")
    if not raw:
        return None
    args_text = os.environ.get("KYU_ARGS")
    return CurrentJob(
        id=int(raw),
        attempt=int(os.environ.get("KYU_ATTEMPT", "1")),
        queue=os.environ.get("KYU_QUEUE", ""),
        kind=os.environ.get("KYU_KIND", ""),
        args=json.loads(args_text) if args_text else None,
    )


def progress(percent: int, message: str = "") -> None:
    """Reports the current job's progress: ``percent`` 0 to 100 and a short note (one line).

    Under kyu it is recorded on the job at once; run by hand, the line is just printed."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"progress: {percent!r} is not accepted; accepted: a whole number from 0 to 100")
    note = " ".join(str(message).split())  # one line: kyu reads the progress line by line
    line = f"::kyu-progress {percent} {note}".rstrip()
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
