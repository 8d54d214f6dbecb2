"""The bundled Jira task-API simulator, exercised over real HTTP with a hand-driven clock."""

from __future__ import annotations

import base64
import email.utils
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from monitor.simulator import (
    DEFAULT_EMAIL,
    DEFAULT_TOKEN,
    ControlError,
    Fault,
    RequestRecord,
    Simulator,
    TaskScript,
    demo_scripts,
    script_from_json,
)
from monitor.simulator.scripts import FAILED_AT_PCT
from monitor.simulator.server import ACCOUNT_ID, UNAUTHENTICATED

T0 = 1_700_000_000.0
T0_MS = 1_700_000_000_000
SAMPLES = Path(__file__).parent / "jira_samples"
NOT_POSSIBLE = ["Cancellation of the task is not possible."]


class FakeClock:
    """The simulator's clock, moved by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[Simulator]:
    with Simulator(clock=clock) as simulator:
        yield simulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = (DEFAULT_EMAIL, DEFAULT_TOKEN)
        yield session


def task_url(sim: Simulator, task_id: str, version: int = 3) -> str:
    return f"{sim.url}/rest/api/{version}/task/{task_id}"


def get_task(http: requests.Session, sim: Simulator, task_id: str) -> dict[str, Any]:
    response = http.get(task_url(sim, task_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cancel(http: requests.Session, sim: Simulator, task_id: str) -> requests.Response:
    return http.post(task_url(sim, task_id) + "/cancel")


# -- lifecycle ---------------------------------------------------------------------------------


def test_enqueued_task_has_no_start_finish_or_result(
    sim: Simulator, http: requests.Session
) -> None:
    sim.add_task(TaskScript("10001", queued_s=1.0, description="Delete custom field"))
    task = get_task(http, sim, "10001")
    assert task == {
        "self": f"{sim.url}/rest/api/3/task/10001",
        "id": "10001",
        "description": "Delete custom field",
        "status": "ENQUEUED",
        "message": task["message"],
        "submittedBy": 10000,
        "progress": 0,
        "elapsedRuntime": 0,
        "submitted": T0_MS,
        "lastUpdate": T0_MS,
    }
    assert list(task)[:4] == ["self", "id", "description", "status"]


def test_running_task_reports_linear_progress(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", queued_s=0.5, run_s=4.0))
    clock.advance(0.5 + 1.0)
    task = get_task(http, sim, "1")
    assert task["status"] == "RUNNING"
    assert task["progress"] == 25
    assert task["started"] == T0_MS + 500
    assert task["elapsedRuntime"] == 1000
    assert task["lastUpdate"] == T0_MS + 1500
    assert task["message"] == "Processed 20 of 100 items"
    assert "finished" not in task
    assert "result" not in task


def test_progress_last_update_and_message_move_forward_only(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", queued_s=0.0, run_s=10.0, message_every_pct=25))
    seen = []
    for _ in range(40):
        seen.append(get_task(http, sim, "1"))
        clock.advance(0.27)
    progress = [t["progress"] for t in seen if t["status"] == "RUNNING"]
    updates = [t["lastUpdate"] for t in seen]
    assert progress == sorted(progress)
    assert progress[0] == 0
    assert progress[-1] > 90
    assert updates == sorted(updates)
    messages = {t["message"] for t in seen if t["status"] == "RUNNING"}
    assert messages == {f"Processed {p} of 100 items" for p in (0, 25, 50, 75)}
    assert seen[-1]["status"] == "COMPLETE"


def test_complete_task_is_frozen(sim: Simulator, http: requests.Session, clock: FakeClock) -> None:
    sim.add_task(TaskScript("1", queued_s=0.5, run_s=3.0))
    clock.advance(3.5)
    task = get_task(http, sim, "1")
    assert task["status"] == "COMPLETE"
    assert task["progress"] == 100
    assert task["result"] == "the task result"
    assert task["started"] == T0_MS + 500
    assert task["finished"] == T0_MS + 3500
    assert task["lastUpdate"] == T0_MS + 3500
    assert task["elapsedRuntime"] == 3000
    clock.advance(1000)
    assert get_task(http, sim, "1") == task


@pytest.mark.parametrize(
    ("outcome", "result"),
    [
        ("FAILED", {"errorMessages": ["boom"]}),
        ("DEAD", None),
        ("SOMETHING_NEW", ["kept", "as-is"]),
    ],
)
def test_scripted_outcomes(
    sim: Simulator, http: requests.Session, clock: FakeClock, outcome: str, result: object
) -> None:
    sim.add_task(TaskScript("1", run_s=1.0, outcome=outcome, result=result))
    clock.advance(0.5 + 0.99)
    assert get_task(http, sim, "1")["status"] == "RUNNING"
    clock.advance(0.01)
    task = get_task(http, sim, "1")
    assert task["status"] == outcome
    assert task["result"] == ("the task result" if result is None else result)
    assert task["finished"] == T0_MS + 1500


@pytest.mark.parametrize(("outcome", "ends_at"), [("FAILED", None), ("DEAD", None), ("DEAD", 25)])
def test_failures_stop_partway_at_the_progress_reached(
    sim: Simulator, http: requests.Session, clock: FakeClock, outcome: str, ends_at: int | None
) -> None:
    end = FAILED_AT_PCT if ends_at is None else ends_at
    assert 0 < end < 100
    sim.add_task(TaskScript("1", queued_s=0.0, run_s=10.0, outcome=outcome, ends_at=ends_at))
    clock.advance(5.0)
    halfway = get_task(http, sim, "1")
    assert (halfway["status"], halfway["progress"]) == ("RUNNING", end // 2)
    assert halfway["lastUpdate"] == T0_MS + round(10_000 * (end // 2) / end)  # when reached
    clock.advance(4.99)
    assert get_task(http, sim, "1")["progress"] == end - 1
    clock.advance(0.01)
    task = get_task(http, sim, "1")
    assert (task["status"], task["progress"]) == (outcome, end)
    assert task["finished"] == task["lastUpdate"] == T0_MS + 10_000
    assert task["elapsedRuntime"] == 10_000
    clock.advance(1000)
    assert get_task(http, sim, "1") == task


def test_stalled_task_freezes_progress_message_and_last_update(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", queued_s=0.0, run_s=10.0, stall_at=37))
    clock.advance(3.69)
    assert get_task(http, sim, "1")["progress"] == 36
    clock.advance(0.01)
    at_stall = get_task(http, sim, "1")
    clock.advance(3600)
    later = get_task(http, sim, "1")
    assert later["status"] == "RUNNING"
    assert later["progress"] == at_stall["progress"] == 37
    assert later["lastUpdate"] == at_stall["lastUpdate"] == T0_MS + 3700
    assert later["message"] == at_stall["message"]
    assert later["elapsedRuntime"] == 3_603_700
    assert "finished" not in later


def test_started_and_submitted_in_the_past(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", run_s=100.0, started_ago_s=30.0, submitted_ago_s=40.0))
    task = get_task(http, sim, "1")
    assert task["status"] == "RUNNING"
    assert task["progress"] == 30
    assert task["submitted"] == T0_MS - 40_000
    assert task["started"] == T0_MS - 30_000
    assert task["elapsedRuntime"] == 30_000
    clock.advance(70)
    assert get_task(http, sim, "1")["status"] == "COMPLETE"


def test_submitted_is_never_after_started(sim: Simulator, http: requests.Session) -> None:
    sim.add_task(TaskScript("1", started_ago_s=30.0))
    task = get_task(http, sim, "1")
    assert task["submitted"] == task["started"] == T0_MS - 30_000


def test_submitted_ago_keeps_phases_counted_from_created(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", queued_s=2.0, submitted_ago_s=3600.0))
    clock.advance(1.9)
    task = get_task(http, sim, "1")
    assert task["status"] == "ENQUEUED"
    assert task["submitted"] == T0_MS - 3_600_000


def test_re_adding_a_task_replaces_it(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", run_s=1.0))
    clock.advance(5)
    sim.add_task(TaskScript("1", run_s=1.0, description="again"))
    task = get_task(http, sim, "1")
    assert (task["status"], task["description"]) == ("ENQUEUED", "again")


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_requested_then_cancelled(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", queued_s=0.0, run_s=10.0, cancel_delay_s=2.0))
    clock.advance(4.0)
    response = cancel(http, sim, "1")
    assert response.status_code == 202
    assert response.json() == {}
    clock.advance(1.0)
    task = get_task(http, sim, "1")
    assert task["status"] == "CANCEL_REQUESTED"
    assert task["progress"] == 40
    assert task["lastUpdate"] == T0_MS + 4000
    assert task["elapsedRuntime"] == 5000
    assert "finished" not in task
    assert cancel(http, sim, "1").status_code == 202  # still in flight: accepted again
    clock.advance(1.0)
    task = get_task(http, sim, "1")
    assert task["status"] == "CANCELLED"
    assert task["finished"] == task["lastUpdate"] == T0_MS + 6000
    assert task["elapsedRuntime"] == 6000
    assert "result" in task
    clock.advance(100)
    assert get_task(http, sim, "1")["status"] == "CANCELLED"
    again = cancel(http, sim, "1")
    assert (again.status_code, again.json()) == (400, NOT_POSSIBLE)
    assert sim.cancel_count("1") == 3


def test_cancel_while_enqueued_never_starts(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", queued_s=5.0, cancel_delay_s=0.0))
    assert cancel(http, sim, "1").status_code == 202
    clock.advance(10)
    task = get_task(http, sim, "1")
    assert task["status"] == "CANCELLED"
    assert "started" not in task
    assert task["elapsedRuntime"] == 0


def test_cancel_stalled_task(sim: Simulator, http: requests.Session, clock: FakeClock) -> None:
    sim.add_task(TaskScript("1", stall_at=50, cancel_delay_s=0.5))
    clock.advance(100)
    assert cancel(http, sim, "1").status_code == 202
    clock.advance(0.5)
    assert get_task(http, sim, "1")["status"] == "CANCELLED"


def test_cancel_refused_when_not_cancellable(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", stall_at=10, cancellable=False))
    clock.advance(2)
    response = cancel(http, sim, "1")
    assert response.status_code == 400
    assert response.json() == NOT_POSSIBLE
    assert response.text == '["Cancellation of the task is not possible."]'
    clock.advance(10)
    assert get_task(http, sim, "1")["status"] == "RUNNING"


def test_cancel_refused_when_terminal(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", run_s=1.0, outcome="FAILED"))
    clock.advance(2)
    response = cancel(http, sim, "1")
    assert (response.status_code, response.json()) == (400, NOT_POSSIBLE)
    assert get_task(http, sim, "1")["status"] == "FAILED"


def test_ignored_cancel_is_accepted_but_changes_nothing(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", queued_s=0.0, run_s=10.0, ignore_cancel=True))
    clock.advance(2)
    assert cancel(http, sim, "1").status_code == 202
    clock.advance(2)
    task = get_task(http, sim, "1")
    assert (task["status"], task["progress"]) == ("RUNNING", 40)
    clock.advance(10)
    assert get_task(http, sim, "1")["status"] == "COMPLETE"


def test_unknown_and_expired_tasks_are_404(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    missing = http.get(task_url(sim, "123"))
    assert missing.status_code == 404
    assert missing.json() == {"errorMessages": ["Task with id 123 does not exist"], "errors": {}}
    assert cancel(http, sim, "123").status_code == 404

    sim.add_task(TaskScript("7", run_s=1.0, expire_after_s=20.0))
    clock.advance(19.9)
    assert get_task(http, sim, "7")["status"] == "COMPLETE"
    clock.advance(0.1)
    assert http.get(task_url(sim, "7")).status_code == 404
    assert cancel(http, sim, "7").status_code == 404


# -- HTTP surface ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 3])
def test_v2_and_v3_serve_the_same_task(
    sim: Simulator, http: requests.Session, version: int
) -> None:
    sim.add_task(TaskScript("5"))
    response = http.get(task_url(sim, "5", version))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["self"] == f"{sim.url}/rest/api/{version}/task/5"
    assert http.post(task_url(sim, "5", version) + "/cancel").status_code == 202


def test_json_is_compact_with_content_length(sim: Simulator, http: requests.Session) -> None:
    sim.add_task(TaskScript("1"))
    response = http.get(task_url(sim, "1"))
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert b'":' in response.content
    assert b'": ' not in response.content
    assert b'", "' not in response.content


def test_other_paths_and_methods(sim: Simulator, http: requests.Session) -> None:
    sim.add_task(TaskScript("1"))
    for url in (f"{sim.url}/rest/api/3/issue/1", f"{sim.url}/rest/api/4/task/1", sim.url + "/"):
        response = http.get(url)
        assert response.status_code == 404
        assert response.json()["errors"] == {}
    assert http.get(task_url(sim, "1") + "/cancel").status_code == 405
    assert http.delete(task_url(sim, "1")).status_code == 405


def test_myself(sim: Simulator, http: requests.Session) -> None:
    response = http.get(sim.url + "/rest/api/3/myself")
    assert response.status_code == 200
    body = response.json()
    assert body["emailAddress"] == DEFAULT_EMAIL
    assert body["displayName"] == "Simulated Admin"
    assert body["accountId"]


def test_basic_auth(sim: Simulator) -> None:
    sim.add_task(TaskScript("1"))
    url = task_url(sim, "1")
    assert requests.get(url, auth=(DEFAULT_EMAIL, DEFAULT_TOKEN), timeout=5).status_code == 200
    for auth in [(DEFAULT_EMAIL, "wrong"), ("other@example.com", DEFAULT_TOKEN), None]:
        response = requests.get(url, auth=auth, timeout=5)
        assert response.status_code == 401
        assert response.json() == {"message": UNAUTHENTICATED, "status-code": 401}
        assert response.headers["WWW-Authenticate"].startswith("OAuth realm=")
    bearer = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    assert requests.get(url, headers=bearer, timeout=5).status_code == 401
    garbage = {"Authorization": "Basic !!notbase64"}
    assert requests.get(url, headers=garbage, timeout=5).status_code == 401
    assert requests.get(sim.url + "/rest/api/3/myself", timeout=5).status_code == 401


def test_bearer_auth(clock: FakeClock) -> None:
    with Simulator(auth="bearer", token="t0k3n", clock=clock) as sim:
        url = sim.url + "/rest/api/3/myself"
        good = requests.get(url, headers={"Authorization": "Bearer t0k3n"}, timeout=5)
        assert good.status_code == 200
        for header in ["Bearer nope", "Bearer ", "Bearer töken"]:
            bad = requests.get(url, headers={"Authorization": header.encode()}, timeout=5)
            assert bad.status_code == 401
        basic = base64.b64encode(f"{DEFAULT_EMAIL}:t0k3n".encode()).decode()
        response = requests.get(url, headers={"Authorization": f"Basic {basic}"}, timeout=5)
        assert response.status_code == 401


def test_no_auth(clock: FakeClock) -> None:
    with Simulator(auth="none", clock=clock) as sim:
        assert requests.get(sim.url + "/rest/api/2/myself", timeout=5).status_code == 200


def test_invalid_auth_mode() -> None:
    with pytest.raises(ValueError, match="auth"):
        Simulator(auth="digest")


# -- faults ------------------------------------------------------------------------------------


def test_status_fault(sim: Simulator, http: requests.Session) -> None:
    sim.add_task(TaskScript("1"))
    sim.add_fault(Fault("status"))
    sim.add_fault(Fault("status", status=503, retry_after="7"))
    first = http.get(task_url(sim, "1"))
    assert first.status_code == 500
    assert first.json()["errorMessages"]
    assert "Retry-After" not in first.headers
    second = http.get(task_url(sim, "1"))
    assert (second.status_code, second.headers["Retry-After"]) == (503, "7")
    assert http.get(task_url(sim, "1")).status_code == 200


@pytest.mark.parametrize(
    "retry_after", [None, "0", "2", email.utils.formatdate(T0 + 60, usegmt=True)]
)
def test_rate_limit_fault(sim: Simulator, http: requests.Session, retry_after: str | None) -> None:
    sim.add_fault(Fault("rate_limit", retry_after=retry_after))
    response = http.get(sim.url + "/rest/api/3/myself")
    assert response.status_code == 429
    assert response.headers.get("Retry-After") == retry_after
    assert http.get(sim.url + "/rest/api/3/myself").status_code == 200


def test_slow_fault_delays_a_normal_answer(sim: Simulator, http: requests.Session) -> None:
    sim.add_task(TaskScript("1"))
    sim.add_fault(Fault("slow", delay_s=0.05))
    started = time.monotonic()
    response = http.get(task_url(sim, "1"))
    assert time.monotonic() - started >= 0.05
    assert response.json()["status"] == "ENQUEUED"


def test_malformed_fault(sim: Simulator, http: requests.Session) -> None:
    sim.add_task(TaskScript("1"))
    sim.add_fault(Fault("malformed"))
    response = http.get(task_url(sim, "1"))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_html_fault(sim: Simulator, http: requests.Session) -> None:
    sim.add_fault(Fault("html"))
    sim.add_fault(Fault("html", status=504))
    first = http.get(sim.url + "/rest/api/3/myself")
    assert first.status_code == 502
    assert first.headers["Content-Type"].startswith("text/html")
    assert "<html>" in first.text
    assert http.get(sim.url + "/rest/api/3/myself").status_code == 504


def test_reset_fault_drops_the_connection(sim: Simulator, http: requests.Session) -> None:
    sim.add_task(TaskScript("1"))
    sim.add_fault(Fault("reset"))
    with pytest.raises(requests.ConnectionError):
        http.get(task_url(sim, "1"))
    assert http.get(task_url(sim, "1")).status_code == 200
    assert [r.status for r in sim.requests_log()] == [0, 200]


def test_fault_count_and_until_cleared(sim: Simulator, http: requests.Session) -> None:
    url = sim.url + "/rest/api/3/myself"
    sim.add_fault(Fault("status", status=503, count=2))
    assert [http.get(url).status_code for _ in range(3)] == [503, 503, 200]
    sim.add_fault(Fault("status", status=500, count=None))
    assert [http.get(url).status_code for _ in range(5)] == [500] * 5
    sim.clear_faults()
    assert http.get(url).status_code == 200


def test_faults_apply_in_fifo_order(sim: Simulator, http: requests.Session) -> None:
    url = sim.url + "/rest/api/3/myself"
    sim.add_fault(Fault("status", status=502))
    sim.add_fault(Fault("status", status=503))
    assert [http.get(url).status_code for _ in range(3)] == [502, 503, 200]


def test_fault_method_and_task_filters(sim: Simulator, http: requests.Session) -> None:
    sim.add_task(TaskScript("1", run_s=100.0))
    sim.add_task(TaskScript("2", run_s=100.0))
    sim.add_fault(Fault("status", status=503, method="POST", count=None))
    sim.add_fault(Fault("status", status=504, task_id="2", count=None))
    assert http.get(task_url(sim, "1")).status_code == 200
    assert http.get(task_url(sim, "2")).status_code == 504
    assert cancel(http, sim, "1").status_code == 503
    assert cancel(http, sim, "2").status_code == 503
    assert http.get(sim.url + "/rest/api/3/myself").status_code == 200
    assert sim.cancel_count("1") == sim.cancel_count("2") == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "explode"},
        {"kind": "status", "status": 99},
        {"kind": "status", "count": 0},
        {"kind": "status", "method": "get"},
        {"kind": "slow", "delay_s": -1.0},
    ],
)
def test_faults_validate(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid Fault"):
        Fault(**bad)


# -- inspection --------------------------------------------------------------------------------


def test_requests_log_and_cancel_count(
    sim: Simulator, http: requests.Session, clock: FakeClock
) -> None:
    sim.add_task(TaskScript("1", stall_at=5))
    before = time.monotonic()
    http.get(task_url(sim, "1") + "?expand=x")
    clock.advance(5)
    cancel(http, sim, "1")
    cancel(http, sim, "404")
    requests.get(sim.url + "/rest/api/2/myself", timeout=5)
    log = sim.requests_log()
    assert [(r.method, r.path, r.task_id, r.status) for r in log] == [
        ("GET", "/rest/api/3/task/1?expand=x", "1", 200),
        ("POST", "/rest/api/3/task/1/cancel", "1", 202),
        ("POST", "/rest/api/3/task/404/cancel", "404", 404),
        ("GET", "/rest/api/2/myself", None, 401),
    ]
    assert [r.at for r in log] == [T0, T0 + 5, T0 + 5, T0 + 5]
    assert before <= log[0].monotonic <= log[-1].monotonic <= time.monotonic()
    assert sim.cancel_count("1") == sim.cancel_count("404") == 1
    assert sim.cancel_count("2") == 0
    log.clear()
    assert len(sim.requests_log()) == 4


def test_reset_forgets_everything(sim: Simulator, http: requests.Session) -> None:
    sim.add_task(TaskScript("1"))
    cancel(http, sim, "1")
    sim.add_fault(Fault("status", count=None))
    sim.reset()
    assert sim.requests_log() == []
    assert sim.cancel_count("1") == 0
    assert http.get(task_url(sim, "1")).status_code == 404


# -- control API -------------------------------------------------------------------------------


def test_control_api(sim: Simulator, clock: FakeClock) -> None:
    control = requests.Session()  # no credentials: the control API needs none
    api = requests.Session()
    api.auth = (DEFAULT_EMAIL, DEFAULT_TOKEN)
    added = control.post(
        sim.url + "/_sim/tasks",
        json=[{"task_id": "a", "run_s": 1, "outcome": "FAILED"}, {"task_id": "b", "stall_at": 5}],
    )
    assert (added.status_code, added.json()) == (200, {"added": ["a", "b"]})
    one = control.post(
        sim.url + "/_sim/tasks", json={"task_id": "c", "run_s": 0, "result": {"x": [1]}}
    )
    assert one.status_code == 200
    clock.advance(2)
    assert get_task(api, sim, "a")["status"] == "FAILED"
    assert get_task(api, sim, "c")["result"] == {"x": [1]}

    fault = {"kind": "rate_limit", "retry_after": "3", "count": 1, "method": "POST"}
    assert control.post(sim.url + "/_sim/faults", json=fault).status_code == 200
    assert cancel(api, sim, "b").status_code == 429
    assert cancel(api, sim, "b").status_code == 202
    assert control.get(sim.url + "/_sim/cancels/b").json() == {"count": 2}

    control.post(sim.url + "/_sim/faults", json={"kind": "status", "count": None})
    assert control.delete(sim.url + "/_sim/faults").status_code == 200
    assert api.get(task_url(sim, "a")).status_code == 200

    records = control.get(sim.url + "/_sim/requests").json()
    assert [RequestRecord(**r) for r in records] == sim.requests_log()
    assert [r["status"] for r in records] == [200, 200, 429, 202, 200]

    assert control.post(sim.url + "/_sim/reset").status_code == 200
    assert control.get(sim.url + "/_sim/requests").json() == []
    assert api.get(task_url(sim, "a")).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("tasks", b"{not json", "not JSON"),
        ("tasks", b'{"task_id": "1", "bogus": 1}', "bogus"),
        ("tasks", b'{"task_id": 1}', "task_id"),
        ("tasks", b'{"task_id": "1", "run_s": true}', "run_s"),
        ("tasks", b'{"task_id": "1", "stall_at": 1.5}', "stall_at"),
        ("tasks", b'{"task_id": "1", "run_s": -1}', "run_s"),
        ("tasks", b'{"run_s": 1}', "task_id"),
        ("tasks", b'[{"task_id": "ok"}, "nope"]', "object"),
        ("faults", b'{"kind": "meteor"}', "kind"),
        ("faults", b'{"kind": "status", "status": "500"}', "status"),
    ],
)
def test_control_api_rejects_bad_input(
    sim: Simulator, path: str, body: bytes, message: str
) -> None:
    response = requests.post(f"{sim.url}/_sim/{path}", data=body, timeout=5)
    assert response.status_code == 400
    assert message in response.json()["errorMessages"][0]
    # Nothing from a rejected request is applied, even the valid part of a list.
    assert requests.get(task_url(sim, "ok"), auth=(DEFAULT_EMAIL, DEFAULT_TOKEN)).status_code == 404


def test_control_requests_are_not_logged_or_faulted(sim: Simulator) -> None:
    sim.add_fault(Fault("status", count=None))
    assert requests.get(sim.url + "/_sim/requests", timeout=5).json() == []
    assert requests.get(sim.url + "/_sim/nothing", timeout=5).status_code == 404
    assert requests.get(sim.url + "/_sim/reset", timeout=5).status_code == 405
    assert sim.requests_log() == []


def test_script_from_json_round_trip() -> None:
    script = TaskScript("9", stall_at=3, result={"a": 1}, expire_after_s=2)
    fields = {name: getattr(script, name) for name in script.__dataclass_fields__}
    assert script_from_json(fields) == script
    with pytest.raises(ControlError):
        script_from_json(["9"])


@pytest.mark.parametrize(
    "bad",
    [
        {"task_id": ""},
        {"task_id": "a/b"},
        {"task_id": "1", "queued_s": -1.0},
        {"task_id": "1", "stall_at": 101},
        {"task_id": "1", "ends_at": -1},
        {"task_id": "1", "ends_at": 50, "stall_at": 40},
        {"task_id": "1", "message_every_pct": 0},
        {"task_id": "1", "result": {1, 2}},
    ],
)
def test_task_scripts_validate(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid TaskScript"):
        TaskScript(**bad)


# -- connections and lifecycle of the server ---------------------------------------------------


def test_session_reuses_one_connection(sim: Simulator, http: requests.Session) -> None:
    sim.add_task(TaskScript("1"))
    for _ in range(10):
        assert http.get(task_url(sim, "1")).status_code == 200
        assert cancel(http, sim, "nope").status_code == 404
    assert sim.connection_count == 1


def test_many_sequential_requests_are_quick(sim: Simulator, http: requests.Session) -> None:
    sim.add_task(TaskScript("1"))
    started = time.monotonic()
    for _ in range(500):
        http.get(task_url(sim, "1"))
    # Not a benchmark: a generous bound that only catches a per-request stall (e.g. Nagle).
    assert time.monotonic() - started < 10
    assert sim.connection_count == 1


def test_stop_closes_kept_alive_connections(clock: FakeClock) -> None:
    sim = Simulator(clock=clock)
    sim.start()
    with requests.Session() as session:
        session.auth = (DEFAULT_EMAIL, DEFAULT_TOKEN)
        assert session.get(sim.url + "/rest/api/3/myself").status_code == 200
        sim.stop()
        sim.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(sim.url + "/rest/api/3/myself", timeout=5)


def test_start_twice_is_refused(sim: Simulator) -> None:
    with pytest.raises(RuntimeError):
        sim.start()
    assert sim.url == f"http://127.0.0.1:{sim.port}"
    assert sim.port > 0


def test_demo_scripts_cover_the_variety(clock: FakeClock) -> None:
    scripts = demo_scripts()
    ids = [s.task_id for s in scripts]
    assert len(set(ids)) == len(ids)
    assert {"COMPLETE", "FAILED", "DEAD"} <= {s.outcome for s in scripts}
    assert any(s.stall_at is not None and not s.cancellable for s in scripts)
    with Simulator(clock=clock, auth="none") as sim:
        for script in scripts:
            sim.add_task(script)
        clock.advance(60)
        answers = {i: requests.get(task_url(sim, i), timeout=5) for i in ids}
        statuses = {i: r.json()["status"] for i, r in answers.items() if r.status_code == 200}
        assert [i for i, r in answers.items() if r.status_code == 404] == ["10007"]
        assert statuses["10005"] == "RUNNING"
        assert {"COMPLETE", "FAILED", "DEAD", "RUNNING"} <= set(statuses.values())
        ended = [r.json() for r in answers.values() if r.status_code == 200]
        assert all(t["progress"] < 100 for t in ended if t["status"] in ("FAILED", "DEAD"))


def test_serve_runs_until_sigterm(tmp_path: Path) -> None:
    program = (
        "import sys\n"
        "from monitor.simulator import serve, demo_scripts\n"
        "serve(0, demo_scripts(), auth='none',"
        " on_ready=lambda sim: print(sim.url, flush=True))\n"
        "print('stopped', flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert requests.get(url + "/rest/api/3/task/10001", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.stdout.readline().strip() == "stopped"
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_in_flight_counts_requests_received_and_not_yet_answered() -> None:
    with Simulator(auth="none") as sim:
        sim.add_task(TaskScript("1", queued_s=1000))
        sim.add_fault(Fault(kind="slow", delay_s=0.5))
        assert sim.in_flight == 0
        errors: list[BaseException] = []

        def get() -> None:
            try:
                requests.get(f"{sim.url}/rest/api/3/task/1", timeout=5)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=get)
        thread.start()
        deadline = time.monotonic() + 5
        while sim.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sim.in_flight == 1
        control = requests.get(f"{sim.url}/_sim/in-flight", timeout=5).json()
        assert control == {"count": 1}  # the control API does not count itself
        assert sim.requests_log() == []  # logged only once answered
        thread.join(timeout=5)
        assert (sim.in_flight, len(sim.requests_log()), errors) == (0, 1, [])
        assert requests.get(f"{sim.url}/_sim/in-flight", timeout=5).json() == {"count": 0}


# -- bulk operations -----------------------------------------------------------------------------


def bulk_url(sim: Simulator, task_id: str) -> str:
    return f"{sim.url}/rest/api/3/bulk/queue/{task_id}"


def test_a_bulk_operation_reports_its_issues_as_it_goes(
    sim: Simulator, clock: FakeClock, http: requests.Session
) -> None:
    failures = (("10087", "The issue is locked"), ("10087", "No permission"), ("10093", "odd"))
    sim.add_task(
        TaskScript("10000", kind="bulk", queued_s=1.0, run_s=10.0, issues=12, invalid_issues=2,
                   failures=failures)
    )  # fmt: skip
    queued = http.get(bulk_url(sim, "10000")).json()
    assert queued == {
        "taskId": "10000",
        "status": "ENQUEUED",
        "progressPercent": 0,
        "submittedBy": {"accountId": ACCOUNT_ID},
        "created": round(T0 * 1000),
        "updated": round(T0 * 1000),
        "totalIssueCount": 12,
        "processedAccessibleIssues": [],
        "failedAccessibleIssues": {},
        "invalidOrInaccessibleIssueCount": 2,
    }
    clock.advance(6.0)  # half way
    half = http.get(bulk_url(sim, "10000")).json()
    assert (half["status"], half["progressPercent"], half["started"]) == (
        "RUNNING",
        50,
        1000 * (T0 + 1),
    )
    assert half["processedAccessibleIssues"] == [
        20001,
        20002,
        20003,
        20004,
    ]  # 4 of the 8 that succeed
    assert half["failedAccessibleIssues"] == {"10087": ["The issue is locked", "No permission"]}
    clock.advance(10.0)
    done = http.get(bulk_url(sim, "10000")).json()
    assert (done["status"], done["progressPercent"]) == ("COMPLETE", 100)
    assert len(done["processedAccessibleIssues"]) == 8
    assert list(done["failedAccessibleIssues"]) == ["10087", "10093"]
    # There is no cancel for a bulk operation, nor a task of that ID.
    assert http.post(f"{sim.url}/rest/api/3/task/10000/cancel").status_code == 404
    assert http.get(task_url(sim, "10000")).status_code == 404


def test_a_bulk_read_of_a_task_id_is_400_and_the_same_id_may_be_both(
    sim: Simulator, http: requests.Session
) -> None:
    sim.add_task(TaskScript("5"))
    refused = http.get(bulk_url(sim, "5"))
    assert refused.status_code == 400
    assert refused.json() == json.loads((SAMPLES / "bulk-queue-error-400.json").read_bytes())
    assert http.get(bulk_url(sim, "6")).status_code == 404
    sim.add_task(TaskScript("5", kind="bulk", iso_times=True))
    bulk = http.get(bulk_url(sim, "5")).json()
    assert bulk["taskId"] == "5" and bulk["created"].startswith("20")  # an ISO date-time
    assert get_task(http, sim, "5")["id"] == "5"


def test_bulk_scripts_from_json() -> None:
    fields = {"task_id": "9", "kind": "bulk", "failures": [["1", "locked"], ["2", "gone"]]}
    assert script_from_json(fields) == TaskScript(
        "9", kind="bulk", failures=(("1", "locked"), ("2", "gone"))
    )
    for bad in ({"task_id": "9", "failures": [["1"]]}, {"task_id": "9", "failures": "x"}):
        with pytest.raises(ControlError):
            script_from_json(bad)
    with pytest.raises(ValueError, match="kind"):
        TaskScript("9", kind="other")
    with pytest.raises(ValueError, match="fit in issues"):
        TaskScript("9", kind="bulk", issues=1, failures=(("1", "a"), ("2", "b")))
