"""events(): the SSE stream of a real kyu serve, resumed after a dropped connection."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest

import kyu
from proxy import Proxy


@pytest.fixture(scope="module")
def client(server) -> kyu.Client:
    req = urllib.request.Request(f"{server.url}/v1/events?since=0&types=nope", headers={"Authorization": f"Bearer {server.admin}"})
    try:
        urllib.request.urlopen(req, timeout=10).close()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            pytest.skip("this kyu serve has no GET /v1/events")
    return kyu.Client(server.url, token=server.admin)


def take(it, n: int) -> list[dict]:
    got = []
    for e in it:
        got.append(e)
        if len(got) == n:
            break
    return got


def test_replay_from_zero_filtered_by_job_and_type(client: kyu.Client) -> None:
    i = client.enqueue("echo", {"a": 1})["id"]
    client.wait(i, timeout=20)
    got = take(client.events(since=0, job=i, types=["enqueued", "completed"]), 2)
    assert [e["type"] for e in got] == ["enqueued", "completed"]
    assert all(e["job_id"] == i for e in got)


def test_dropped_connection_resumes_without_loss_or_repeat(server, client: kyu.Client) -> None:
    proxy = Proxy(server.url)
    try:
        ids = [client.enqueue("resume", {"i": i}, delay="1h")["id"] for i in range(3)]
        via = kyu.Client(proxy.url, token=server.admin)
        reconnects: list = []
        seen = []
        for e in via.events(since=0, kind="resume", types=["enqueued"], on_reconnect=lambda err, last: reconnects.append(last)):
            seen.append(e)
            if len(seen) == 1:
                proxy.cut()  # the connection drops under the iterator
                ids += [client.enqueue("resume", {"i": i}, delay="1h")["id"] for i in range(3, 6)]
            if len(seen) == 6:
                break
        assert reconnects, "it reconnected"
        assert proxy.connections >= 2
        assert [e["job_id"] for e in seen] == ids
        assert [e["id"] for e in seen] == sorted({e["id"] for e in seen})
    finally:
        proxy.close()


def test_bad_filter_or_token_raises_at_once(server, client: kyu.Client) -> None:
    with pytest.raises(kyu.InvalidError) as e:
        take(client.events(types=["nope"]), 1)
    assert e.value.field == "types"
    with pytest.raises(kyu.UnauthorizedError):
        take(kyu.Client(server.url, token="kyu_nope").events(), 1)


def test_stop_ends_the_iterator(client: kyu.Client) -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    # keep-alives wake the reader; the stop is seen at the next line at the latest
    got = []
    t = threading.Thread(target=lambda: got.extend(client.events(stop=stop, read_timeout=1)))
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert got == []
