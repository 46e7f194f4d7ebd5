"""Errors the client raises.

Every error the API answers is a :class:`KyuError` carrying the API's
``code``, ``message`` and ``field`` (the request field at fault, if one is)
and the HTTP ``status``; a subclass per status lets callers catch what they
handle::

    try:
        client.enqueue("send_email", {}, queue="")
    except kyu.InvalidError as e:
        print(e.field, e.message)
"""

from __future__ import annotations


class KyuError(Exception):
    """An error the kyu API answered (or could not answer: see :class:`ConnectionError`)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        #: The HTTP status (0 when no answer came).
        self.status = status
        #: The API's machine-readable code, e.g. ``invalid``, ``unauthorized``, ``not_found``.
        self.code = code
        #: What was wrong, where, and what is accepted.
        self.message = message
        #: The request field at fault, if one is.
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r}, field={self.field!r})"


class InvalidError(KyuError):
    """400: the request was wrong (unreadable JSON, unknown field, a refused value); see ``field``."""


class UnauthorizedError(KyuError):
    """401: no token, or a token that is unknown, revoked or expired."""


class ForbiddenError(KyuError):
    """403: the token lacks the route's scope, or names a queue it may not touch."""


class NotFoundError(KyuError):
    """404: no such job, schedule or route (or one the token may not see)."""


class ConflictError(KyuError):
    """409: a conflict with the stored state (e.g. a stale lease)."""


class PayloadTooLargeError(KyuError):
    """413: the request body is over the server's limit (default 2 MiB)."""


class UnavailableError(KyuError):
    """503: the database did not answer; retrying later may work."""


class ConnectionError(KyuError):  # noqa: A001 - the client's own, a KyuError
    """No HTTP answer: the server could not be reached or the connection broke."""


class WaitTimeoutError(KyuError):
    """:meth:`Client.wait` gave up before the job finished."""


_BY_STATUS: dict[int, type[KyuError]] = {
    400: InvalidError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    503: UnavailableError,
}


def error_for(status: int, code: str, message: str, field: str | None) -> KyuError:
    """The error class for an HTTP status."""
    return _BY_STATUS.get(status, KyuError)(status, code, message, field)
