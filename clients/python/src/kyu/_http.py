"""One JSON request to the API over the standard library's urllib."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping

from .errors import ConnectionError, KyuError, error_for


class Http:
    """A base URL and a token; :meth:`request` sends JSON and reads JSON."""

    def __init__(self, url: str, token: str | None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Sends one request; an error answer raises the :class:`KyuError` subclass of its status."""
        url = self.url + path
        if query:
            q = {k: str(v) for k, v in query.items() if v is not None}
            if q:
                url += "?" + urllib.parse.urlencode(q)
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            h["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        if headers:
            h.update(headers)
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as res:
                text = res.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            code, message, field = f"http_{e.code}", f"{method} {path}: HTTP {e.code}: {raw[:200]!r}", None
            try:
                err = json.loads(raw)["error"]
                code, message, field = err["code"], err["message"], err.get("field")
            except (ValueError, KeyError, TypeError):
                pass
            raise error_for(e.code, code, message, field) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ConnectionError(0, "connection", f"{method} {url}: no answer ({reason})") from e
        return json.loads(text) if text else None


__all__ = ["Http", "KyuError"]
