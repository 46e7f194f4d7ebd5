"""The producer surface against a real ``kyu serve`` (see conftest.py)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

import kyu


@pytest.fixture(scope="module")
def client(server) -> kyu.Client:
    return kyu.Client(server.url, token=server.admin)


def test_enqueue_then_wait_gives_the_result(client: kyu.Client) -> None:
    e = client.enqueue("echo", {"n": 7}, tags=["t:1"], max_attempts=3)
    assert e["duplicate"] is False
    job = client.wait(e["id"], timeout="20s")
    assert job["state"] == "completed"
    assert job["result"] == {"n": 7}
    assert job["args"] == {"n": 7}
    assert job["tags"] == ["t:1"]
    assert job["max_attempts"] == 3


def test_idempotency_key_returns_the_first_job(client: kyu.Client) -> None:
    a = client.enqueue("echo", {"once": True}, idempotency_key="order-7", delay="1h")
    b = client.enqueue("echo", {"once": True}, idempotency_key="order-7", delay="1h")
    assert (a["duplicate"], b["duplicate"], b["id"]) == (False, True, a["id"])


def test_enqueue_many_in_order_and_all_or_none(client: kyu.Client) -> None:
    got = client.enqueue_many(
        [{"kind": "echo", "args": {"i": 1}, "delay": 3600}, {"kind": "echo", "args": {"i": 2}, "delay": dt.timedelta(hours=1)}]
    )
    assert got[1]["id"] == got[0]["id"] + 1
    with pytest.raises(kyu.InvalidError) as e:
        client.enqueue_many([{"kind": "batch_probe"}, {"kind": "batch_probe", "queue": ""}])
    assert (e.value.status, e.value.code, e.value.field) == (400, "invalid", "jobs[1].queue")
    assert client.list_jobs(kind="batch_probe")["jobs"] == []


def test_get_missing_job_is_not_found(client: kyu.Client) -> None:
    with pytest.raises(kyu.NotFoundError) as e:
        client.get_job(999_999)
    assert (e.value.status, e.value.code) == (404, "not_found")


def test_failing_job_is_retried_then_failed(client: kyu.Client) -> None:
    # the API does not apply kyu.toml's [jobs.KIND] defaults: the options are the request's
    e = client.enqueue("fail", {}, max_attempts=2, retry={"type": "fixed", "delay": 0.05})
    job = client.wait(e["id"], timeout=20)
    assert job["state"] == "failed"
    assert job["attempt"] == 2
    assert [x["attempt"] for x in job["errors"]] == [1, 2]
    assert "exited with status 3: boom" in job["errors"][0]["message"]


def test_cancel_waiting_job_then_retry(client: kyu.Client) -> None:
    i = client.enqueue("echo", {}, delay="1h")["id"]
    assert client.cancel(i) == {str(i): "cancelled"}
    assert client.get_job(i)["state"] == "cancelled"
    assert client.cancel([i, 999_998]) == {str(i): "already_finished", "999998": "not_found"}
    assert client.retry([i]) == {str(i): "retried"}
    assert client.get_job(i)["state"] != "cancelled"


def test_cancel_running_command_job(client: kyu.Client) -> None:
    i = client.enqueue("sleep", {})["id"]
    for _ in range(200):
        if client.get_job(i)["state"] == "running":
            break
        time.sleep(0.05)
    assert client.cancel(i) == {str(i): "requested"}
    assert client.wait(i, timeout=20)["state"] == "cancelled"


def test_wait_timeout(client: kyu.Client) -> None:
    i = client.enqueue("echo", {}, delay="1h")["id"]
    with pytest.raises(kyu.WaitTimeoutError, match="still scheduled"):
        client.wait(i, timeout=0.3)


def test_list_jobs_pages_and_iterates(client: kyu.Client) -> None:
    ids = [e["id"] for e in client.enqueue_many([{"kind": "listed", "args": {"i": i}, "delay": "1h", "tags": ["page"]} for i in range(3)])]
    first = client.list_jobs(kind="listed", limit=2)
    assert [j["id"] for j in first["jobs"]] == [ids[2], ids[1]]
    second = client.list_jobs(kind="listed", limit=2, cursor=first["next"])
    assert [j["id"] for j in second["jobs"]] == [ids[0]]
    assert second["next"] is None
    assert [j["id"] for j in client.jobs(tag="page", state="scheduled", limit=1)] == ids[::-1]


def test_bad_input_names_the_field(client: kyu.Client) -> None:
    with pytest.raises(kyu.InvalidError) as e:
        client.enqueue("echo", {}, delay="1h", run_at=dt.datetime.now(dt.timezone.utc))
    assert e.value.field == "delay"
    with pytest.raises(kyu.InvalidError) as e:
        client.enqueue("echo", {}, timeout="soon")
    assert e.value.field == "timeout" and "accepted" in e.value.message
    with pytest.raises(kyu.InvalidError) as e:
        client.list_jobs(state="done")
    assert e.value.field == "state"
    with pytest.raises(TypeError, match="unknown enqueue option"):
        client.enqueue("echo", {}, qeue="x")


def test_token_errors(server, client: kyu.Client) -> None:
    with pytest.raises(kyu.UnauthorizedError) as e:
        kyu.Client(server.url, token="").get_job(1)
    assert e.value.code == "unauthorized"
    with pytest.raises(kyu.UnauthorizedError):
        kyu.Client(server.url, token="kyu_nope").get_job(1)
    reader = kyu.Client(server.url, token=server.token(["read"]))
    with pytest.raises(kyu.ForbiddenError) as e:
        reader.enqueue("echo", {})
    assert e.value.code == "forbidden_scope"
    tenant = kyu.Client(server.url, token=server.token(["produce", "read"], queues="tenant-a.*"))
    i = tenant.enqueue("echo", {}, queue="tenant-a.mail", delay="1h")["id"]
    assert tenant.get_job(i)["redacted"] is True
    with pytest.raises(kyu.ForbiddenError) as e:
        tenant.enqueue("echo", {}, queue="tenant-b.mail")
    assert (e.value.code, e.value.field) == ("forbidden_queue", "queue")
    other = client.enqueue("echo", {}, queue="tenant-b.mail", delay="1h")["id"]
    with pytest.raises(kyu.NotFoundError):
        tenant.get_job(other)


def test_queues_and_schedules(client: kyu.Client) -> None:
    client.wait(client.enqueue("echo", {})["id"], timeout=20)
    assert any(q["queue"] == "default" and q["counts"].get("completed", 0) >= 1 for q in client.queues())
    client.pause_queue("default")
    assert next(q for q in client.queues() if q["queue"] == "default")["paused"] is True
    client.resume_queue("default")
    assert isinstance(client.schedules(), list)
    with pytest.raises(kyu.NotFoundError):
        client.delete_schedule("nope")


def test_no_server_is_a_connection_error() -> None:
    with pytest.raises(kyu.ConnectionError) as e:
        kyu.Client("http://127.0.0.1:9", token="x").get_job(1)
    assert isinstance(e.value, kyu.KyuError) and e.value.status == 0


def test_durations() -> None:
    assert kyu.duration_text(1.5) == "1500ms"
    assert kyu.duration_text(dt.timedelta(minutes=1)) == "60000ms"
    assert kyu.duration_seconds("1m30s") == 90
    with pytest.raises(ValueError):
        kyu.duration_seconds("soon")


def test_put_schedule_creates_and_replaces(server, client: kyu.Client) -> None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{server.url}/v1/schedules/probe", data=b"{}", method="PUT",
                                 headers={"Authorization": f"Bearer {server.admin}", "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10).close()
    except urllib.error.HTTPError as e:
        if e.code in (404, 405):
            pytest.skip("this kyu serve has no PUT /v1/schedules/{name}")
    s = client.put_schedule("hourly-report", cron="0 * * * *", zone="Asia/Tokyo", kind="echo", args={"r": 1}, max_attempts=3, timeout="5m")
    assert (s["name"], s["cron"], s["zone"], s["kind"], s["enabled"]) == ("hourly-report", "0 * * * *", "Asia/Tokyo", "echo", True)
    again = client.put_schedule("hourly-report", cron="*/5 * * * *", kind="echo", enabled=False)
    assert (again["cron"], again["enabled"]) == ("*/5 * * * *", False)
    with pytest.raises(kyu.InvalidError) as e:
        client.put_schedule("bad", cron="61 * * * *", kind="echo")
    assert e.value.field == "cron"
    client.delete_schedule("hourly-report")
