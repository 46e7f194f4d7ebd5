"""``GET /v1/events`` (Server-Sent Events) as an iterator that resumes by itself: when
the connection drops it reconnects with ``Last-Event-ID`` set to the last event
received, so no event is lost or repeated."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterator, Optional

from ._http import Http
from .errors import ConnectionError, KyuError, error_for


def _transient(e: BaseException) -> bool:
    if isinstance(e, KyuError):
        return e.status == 0 or e.status == 429 or e.status >= 500
    return True  # a reset socket, a read timeout, a broken chunk


def parse_sse(lines: Iterator[bytes]) -> Iterator[dict[str, str]]:
    """Parses text/event-stream lines into messages (``id``, ``event``, ``data``); comments skipped."""
    msg: dict[str, str] = {}
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if "data" in msg or "event" in msg:
                yield msg
            msg = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            msg["data"] = msg["data"] + "\n" + value if "data" in msg else value
        elif field in ("id", "event"):
            msg[field] = value


def stream_events(
    http: Http,
    *,
    since: Optional[int] = None,
    queue: Optional[str] = None,
    kind: Optional[str] = None,
    job: Optional[int] = None,
    types: Optional[list[str]] = None,
    stop: Optional[threading.Event] = None,
    max_backoff: float = 5.0,
    read_timeout: float = 60.0,
    on_reconnect: Optional[Callable[[BaseException, Optional[int]], None]] = None,
) -> Iterator[dict[str, Any]]:
    """The events (dicts: ``id``, ``at``, ``type``, ``job_id``, ``queue``, ``kind``, ``attempt``, facts;
    a ``gap`` event says retention pruned events through ``pruned_through``). Ends when ``stop`` is set
    (checked between events and keep-alives)."""
    last = since
    backoff = 0.1
    q: dict[str, str] = {}
    if queue is not None:
        q["queue"] = queue
    if kind is not None:
        q["kind"] = kind
    if job is not None:
        q["job"] = str(job)
    if types:
        q["types"] = ",".join(types)
    path = "/v1/events" + ("?" + urllib.parse.urlencode(q) if q else "")
    while not (stop and stop.is_set()):
        headers = {"Accept": "text/event-stream"}
        if http.token:
            headers["Authorization"] = f"Bearer {http.token}"
        if last is not None:
            headers["Last-Event-ID"] = str(last)
        req = urllib.request.Request(http.url + path, headers=headers)
        try:
            try:
                res = urllib.request.urlopen(req, timeout=read_timeout)
            except urllib.error.HTTPError as e:
                raw = e.read()
                try:
                    err = json.loads(raw)["error"]
                    raise error_for(e.code, err["code"], err["message"], err.get("field")) from None
                except (ValueError, KeyError, TypeError):
                    raise error_for(e.code, f"http_{e.code}", f"GET {path}: HTTP {e.code}", None) from None
            except (urllib.error.URLError, OSError) as e:
                raise ConnectionError(0, "connection", f"GET {http.url}{path}: no answer ({e})") from e
            backoff = 0.1
            with res:
                for msg in parse_sse(iter(res.readline, b"")):
                    if stop and stop.is_set():
                        return
                    if "data" not in msg or msg.get("event") == "error":
                        continue
                    data = json.loads(msg["data"])
                    if msg.get("event") == "gap":
                        data = {**data, "type": "gap", "id": int(msg["id"])}
                    if "id" in msg:
                        last = int(msg["id"])
                    yield data
            raise ConnectionError(0, "connection", "the event stream ended")
        except Exception as e:  # noqa: BLE001 - sorted by _transient
            if stop and stop.is_set():
                return
            if not _transient(e):
                raise
            if on_reconnect:
                on_reconnect(e, last)
            if stop:
                stop.wait(backoff)
            else:
                time.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
