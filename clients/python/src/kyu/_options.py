"""What :class:`kyu.Worker` and :class:`kyu.AsyncWorker` take alike: their options checked
with the same words, and the HTTP client from an address and token or the environment."""

from __future__ import annotations

import os
from typing import Optional

from ._http import Http

#: Where a worker finds kyu when neither ``url`` nor ``KYU_URL`` says.
DEFAULT_URL = "http://127.0.0.1:7070"


def check(who: str, queues: list[str], concurrency: int) -> None:
    """Refuses options no worker can run with, saying what is accepted."""
    if not queues:
        raise ValueError(f"{who}: queues: none given; accepted: one or more queue names")
    if concurrency < 1:
        raise ValueError(f"{who}: concurrency: {concurrency} is not accepted; accepted: 1 or more")


def http(url: Optional[str], token: Optional[str]) -> Http:
    """The HTTP client for ``url`` (else ``KYU_URL``) with ``token`` (else ``KYU_TOKEN``)."""
    return Http(
        url or os.environ.get("KYU_URL") or DEFAULT_URL,
        token if token is not None else os.environ.get("KYU_TOKEN"),
    )
