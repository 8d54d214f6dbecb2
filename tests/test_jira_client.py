"""The Jira client against the bundled simulator, and its per-site gate with a fake clock."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.config import JiraSettings, Secret
from monitor.config_keys import jira_url
from monitor.errors import (
    ConfigError,
    JiraAuthError,
    JiraBadResponse,
    JiraError,
    JiraNotFound,
    JiraRateLimited,
    JiraRefused,
    JiraServerError,
    JiraUnreachable,
)
from monitor.jira import MAX_BODY_BYTES, BulkCounts, JiraClient, SiteGate, retry_after_seconds
from monitor.jira.pacing import AUTH_PAUSE_AFTER, AUTH_PAUSE_S, MIN_PAUSE_S
from monitor.simulator import Fault, Simulator, TaskScript
from monitor.states import Auth, TaskKind
from monitor.taskref import TaskRef

# -- SiteGate: pacing and pauses, on a fake clock ----------------------------------------------


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def sends(gate: SiteGate, fake: FakeTime, count: int) -> list[float]:
    times = []
    for _ in range(count):
        gate.acquire()
        times.append(fake.now)
    return times


def max_in_any_second(times: list[float]) -> int:
    # Windows [t, t + 1) starting at each send are the worst case.
    return max(sum(1 for u in times if t <= u < t + 1.0 - 1e-9) for t in times)


def test_gate_first_request_goes_at_once() -> None:
    fake = FakeTime()
    gate = SiteGate(4, clock=fake.clock, sleep=fake.sleep)
    gate.acquire()
    assert fake.sleeps == []
    assert gate.paused_until() is None


def test_gate_paces_evenly() -> None:
    fake = FakeTime()
    gate = SiteGate(4, clock=fake.clock, sleep=fake.sleep)
    times = sends(gate, fake, 9)
    assert [round(t - 1000.0, 6) for t in times] == [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]
    assert max_in_any_second(times) == 4


def test_gate_does_not_burst_after_a_quiet_spell() -> None:
    fake = FakeTime()
    gate = SiteGate(10, clock=fake.clock, sleep=fake.sleep)
    sends(gate, fake, 3)
    fake.now += 60.0
    times = sends(gate, fake, 5)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap == pytest.approx(0.1) for gap in gaps)


@pytest.mark.parametrize("rate", [2.5, 0.5, 1.0, 7.0, 1000.0])
def test_gate_never_exceeds_max_rps_in_any_second(rate: float) -> None:
    fake = FakeTime()
    gate = SiteGate(rate, clock=fake.clock, sleep=fake.sleep)
    times = sends(gate, fake, 40)
    assert max_in_any_second(times) <= max(1, int(rate))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1.0 / rate - 1e-9


def test_gate_pause_holds_everyone_and_only_grows() -> None:
    fake = FakeTime()
    gate = SiteGate(1000, clock=fake.clock, sleep=fake.sleep)
    gate.pause(5.0)
    assert gate.paused_until() == pytest.approx(1005.0)
    gate.pause(2.0)  # shorter: does not cut the pause
    assert gate.paused_until() == pytest.approx(1005.0)
    gate.pause(0.0)
    gate.pause(float("nan"))
    assert gate.paused_until() == pytest.approx(1005.0)
    gate.acquire()
    assert fake.now == pytest.approx(1005.0)
    assert gate.paused_until() is None


def test_gate_pause_set_while_waiting_for_a_slot_is_honoured() -> None:
    fake = FakeTime()

    def sleep_and_get_rate_limited(seconds: float) -> None:
        fake.sleep(seconds)
        if len(fake.sleeps) == 1:  # another worker got a 429 meanwhile
            gate.pause(30.0)

    gate = SiteGate(1, clock=fake.clock, sleep=sleep_and_get_rate_limited)
    gate.acquire()
    assert fake.sleeps == []  # the first request goes at once
    gate.acquire()
    assert fake.now == pytest.approx(1031.0)


def test_gate_rejects_a_useless_rate() -> None:
    for rate in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="max_rps"):
            SiteGate(rate)


def test_gate_close_wakes_threads_stuck_in_a_pause() -> None:
    gate = SiteGate(10)
    gate.pause(3600.0)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            gate.acquire()
        except JiraUnreachable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    started = time.monotonic()
    gate.close()
    for t in threads:
        t.join(timeout=5)
    assert time.monotonic() - started < 1.0
    assert [str(e) for e in errors] == ["client closed"] * 3
    with pytest.raises(JiraUnreachable, match="client closed"):
        gate.acquire()


def test_gate_is_shared_safely_by_threads() -> None:
    gate = SiteGate(200)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            gate.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    stamps.sort()
    assert len(stamps) == 40
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # Each acquire is counted at its grant; the stamp is taken a moment later, so allow jitter.
    assert sum(gaps) >= 39 / 200 - 0.002
    assert min(gaps) > 0.0


# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("2", 2.0),
        (" 1.5 ", 1.5),
        ("120", 120.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
        ("1e3", None),
        ("inf", None),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 -0000", 30.0),
        ("Wed, 99 Foo 2015 07:28:30 GMT", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert retry_after_seconds(value, now=now) == expected


# -- JiraClient against the simulator -----------------------------------------------------------

CANARY = "canary-TOKEN-7f3a"
EMAIL = "sim@example.com"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(auth="basic", email=EMAIL, token="sim-token", clock=time.time) as simulator:
        yield simulator


def jira_settings(url: str, **overrides: Any) -> JiraSettings:
    values: dict[str, Any] = {"url": url, "email": EMAIL, "timeout_s": 2.0, "max_rps": 1000.0}
    values.update(overrides)
    return JiraSettings(**values)


@pytest.fixture
def client(sim: Simulator) -> Iterator[JiraClient]:
    with JiraClient(jira_settings(sim.url), Secret("sim-token")) as jira:
        yield jira


def running(task_id: str = "1", **kwargs: Any) -> TaskScript:
    values: dict[str, Any] = {"queued_s": 0.0, "run_s": 600.0}
    values.update(kwargs)
    return TaskScript(task_id=task_id, **values)


def finished(task_id: str = "1", **kwargs: Any) -> TaskScript:
    return TaskScript(task_id=task_id, queued_s=0.0, run_s=0.0, **kwargs)


@pytest.mark.parametrize("version", [2, 3])
def test_get_task(sim: Simulator, version: int) -> None:
    sim.add_task(running("10042", description="Delete custom field"))
    with JiraClient(jira_settings(sim.url, api_version=version), Secret("sim-token")) as jira:
        info = jira.get_task("10042")
    assert info.task_id == "10042"
    assert info.status == "RUNNING" and not info.terminal
    assert info.description == "Delete custom field"
    assert info.anomalies == ()
    assert [(r.method, r.path) for r in sim.requests_log()] == [
        ("GET", f"/rest/api/{version}/task/10042")
    ]


@pytest.mark.parametrize("version", [2, 3])
def test_get_a_bulk_operation_from_the_v3_bulk_queue(sim: Simulator, version: int) -> None:
    sim.add_task(running("10042"))  # the same ID, a task: not what a bulk read answers
    sim.add_task(running("10042", kind="bulk", issues=4, failures=(("7", "locked"),)))
    with JiraClient(jira_settings(sim.url, api_version=version), Secret("sim-token")) as jira:
        info = jira.get_task(TaskRef(TaskKind.BULK, "10042"))
        assert jira.get_task("10042").bulk is None
        sim.add_task(running("77"))
        with pytest.raises(JiraRefused, match="not a bulk operation task"):
            jira.get_task(TaskRef(TaskKind.BULK, "77"))
    assert (info.task_id, info.status, info.anomalies) == ("10042", "RUNNING", ())
    assert info.bulk == BulkCounts(total=4, succeeded=0, failed=0, invalid=0)
    assert [(r.method, r.path) for r in sim.requests_log()] == [
        ("GET", "/rest/api/3/bulk/queue/10042"),
        ("GET", f"/rest/api/{version}/task/10042"),
        ("GET", "/rest/api/3/bulk/queue/77"),
    ]


def test_get_finished_task_with_result(sim: Simulator, client: JiraClient) -> None:
    sim.add_task(finished("7", outcome="FAILED", result={"errorMessages": ["in use"]}))
    info = client.get_task("7")
    assert info.status == "FAILED" and info.terminal
    assert info.result == {"errorMessages": ["in use"]}
    assert info.finished is not None and info.finished.tzinfo is not None


def test_urls_are_built_from_the_configured_base_and_quote_the_id(sim: Simulator) -> None:
    base = jira_url(sim.url + "/ex/jira/cloud-1/")  # as the config loads it: no trailing "/"
    with JiraClient(jira_settings(base), Secret("sim-token")) as jira, pytest.raises(JiraNotFound):
        jira.get_task("a/b")
    sim.add_task(running("x y"))
    with JiraClient(jira_settings(sim.url), Secret("sim-token")) as jira:
        assert jira.get_task("x y").task_id == "x y"
    assert [r.path for r in sim.requests_log()] == [
        "/ex/jira/cloud-1/rest/api/3/task/a%2Fb",
        "/rest/api/3/task/x%20y",
    ]
    for bad in ("", ".", ".."):
        with pytest.raises(ValueError, match="not a task id"):
            jira.get_task(bad)


def test_bearer_auth() -> None:
    with Simulator(auth="bearer", token=CANARY) as sim:
        sim.add_task(running())
        settings = jira_settings(sim.url, auth=Auth.BEARER, email=None)
        with JiraClient(settings, Secret(CANARY)) as jira:
            assert jira.get_task("1").status == "RUNNING"
            assert jira.myself()["emailAddress"] == EMAIL
        with JiraClient(settings, Secret("wrong")) as jira, pytest.raises(JiraAuthError) as caught:
            jira.get_task("1")
    assert "check the access token" in str(caught.value)


@pytest.mark.parametrize(
    ("email", "token"), [(EMAIL, "wrong-token"), ("other@example.com", "sim-token")]
)
def test_rejected_credentials(sim: Simulator, email: str, token: str) -> None:
    sim.add_task(running())
    with JiraClient(jira_settings(sim.url, email=email), Secret(token)) as jira:
        with pytest.raises(JiraAuthError) as caught:
            jira.get_task("1")
        with pytest.raises(JiraAuthError):
            jira.myself()
    error = caught.value
    assert error.status == 401 and not error.transient and error.exit_code == 77
    assert "credentials rejected" in str(error)
    assert "Client must be authenticated" in str(error)


def test_forbidden(sim: Simulator, client: JiraClient) -> None:
    sim.add_task(running())
    sim.add_fault(Fault(kind="status", status=403))
    with pytest.raises(JiraAuthError) as caught:
        client.cancel_task("1")
    assert caught.value.status == 403 and not caught.value.transient
    assert "not a Jira admin nor the task's creator" in str(caught.value)


def test_unknown_task_is_not_found(client: JiraClient) -> None:
    with pytest.raises(JiraNotFound) as caught:
        client.get_task("404")
    assert caught.value.status == 404 and not caught.value.transient
    assert "Task with id 404 does not exist" in str(caught.value)
    with pytest.raises(JiraNotFound):
        client.cancel_task("404")


def test_cancel_accepted(sim: Simulator, client: JiraClient) -> None:
    sim.add_task(running())
    client.cancel_task("1")  # accepted: no exception (that it returns None is for mypy to check)
    assert sim.cancel_count("1") == 1
    assert client.get_task("1").status == "CANCEL_REQUESTED"
    assert sim.requests_log()[0].path == "/rest/api/3/task/1/cancel"


def test_cancel_refused_carries_jiras_text(sim: Simulator, client: JiraClient) -> None:
    sim.add_task(running(cancellable=False))
    with pytest.raises(JiraRefused) as caught:
        client.cancel_task("1")
    error = caught.value
    assert error.status == 400 and not error.transient
    assert str(error) == "cancel task 1: HTTP 400: Cancellation of the task is not possible."


def test_myself(client: JiraClient) -> None:
    me = client.myself()
    assert me["emailAddress"] == EMAIL
    assert isinstance(me["accountId"], str)


@pytest.mark.parametrize(
    ("fault", "error_type", "status", "text"),
    [
        (Fault(kind="status", status=500), JiraServerError, 500, "Simulated failure: 500"),
        (Fault(kind="status", status=503), JiraServerError, 503, "Simulated failure: 503"),
        (Fault(kind="status", status=502), JiraServerError, 502, "HTTP 502"),
        (Fault(kind="status", status=400), JiraRefused, 400, "Simulated failure: 400"),
        (Fault(kind="status", status=409), JiraRefused, 409, "HTTP 409"),
        (Fault(kind="html", status=502), JiraServerError, 502, "HTTP 502 Bad Gateway"),
        (Fault(kind="html", status=400), JiraRefused, 400, "HTTP 400: Bad Request"),
        (Fault(kind="malformed"), JiraBadResponse, 200, "get task 1: HTTP 200: body is not JSON"),
        (Fault(kind="reset"), JiraUnreachable, None, "cannot reach http://127.0.0.1:"),
        (Fault(kind="rate_limit", retry_after="2"), JiraRateLimited, 429, "Retry-After 2s"),
        (Fault(kind="rate_limit"), JiraRateLimited, 429, "no Retry-After"),
        (
            Fault(kind="status", status=503, retry_after="3"),
            JiraRateLimited,
            503,
            "Retry-After 3s",
        ),
    ],
)
def test_faults_are_translated(
    sim: Simulator,
    fault: Fault,
    error_type: type[JiraError],
    status: int | None,
    text: str,
) -> None:
    sim.add_task(running())
    sim.add_fault(fault)
    fake = FakeTime()
    gate = SiteGate(1000, clock=fake.clock, sleep=fake.sleep)
    with JiraClient(jira_settings(sim.url), Secret("sim-token"), gate=gate) as jira:
        with pytest.raises(error_type) as caught:
            jira.get_task("1")
        error = caught.value
        assert type(error) is error_type
        assert error.status == status
        assert error.transient is (error_type not in (JiraRefused, JiraAuthError, JiraNotFound))
        assert text in str(error)
        assert "<" not in str(error) and "\n" not in str(error)
        assert error.__cause__ is None and error.__context__ is None
        # The fault was one-shot: the next request succeeds on the same client.
        assert jira.get_task("1").status == "RUNNING"


def test_read_timeout(sim: Simulator) -> None:
    sim.add_task(running())
    sim.add_fault(Fault(kind="slow", delay_s=1.0))
    settings = jira_settings(sim.url, timeout_s=0.2)
    with (
        JiraClient(settings, Secret("sim-token")) as jira,
        pytest.raises(JiraUnreachable) as caught,
    ):
        jira.get_task("1")
    assert str(caught.value) == f"cannot reach {sim.url}: timeout after 0.2s (no complete answer)"
    assert caught.value.transient and caught.value.exit_code == 69


def test_connection_refused() -> None:
    with Simulator() as sim:
        url = sim.url
    with (
        JiraClient(jira_settings(url), Secret("sim-token")) as jira,
        pytest.raises(JiraUnreachable) as caught,
    ):
        jira.get_task("1")
    assert str(caught.value) == f"cannot reach {url}: connection refused"


def test_tls_failure(sim: Simulator) -> None:
    url = sim.url.replace("http://", "https://")  # the simulator speaks plain HTTP
    jira = JiraClient(jira_settings(url), Secret("sim-token"))
    with jira, pytest.raises(JiraUnreachable) as caught:
        jira.get_task("1")
    assert str(caught.value) == f"cannot reach {url}: TLS error"


def test_rate_limit_pauses_the_shared_gate_for_retry_after(sim: Simulator) -> None:
    sim.add_task(running())
    fake = FakeTime()
    gate = SiteGate(1000, clock=fake.clock, sleep=fake.sleep)
    first = JiraClient(jira_settings(sim.url), Secret("sim-token"), gate=gate)
    second = JiraClient(jira_settings(sim.url), Secret("sim-token"), gate=gate)
    sim.add_fault(Fault(kind="rate_limit", retry_after="2"))
    with first, second:
        with pytest.raises(JiraRateLimited) as caught:
            first.get_task("1")
        assert caught.value.retry_after_s == 2.0
        assert gate.paused_until() == pytest.approx(fake.now + 2.0)
        # Another worker of the same site waits out the pause before sending.
        before = fake.now
        assert second.get_task("1").status == "RUNNING"
        assert fake.now == pytest.approx(before + 2.0)
    statuses = [r.status for r in sim.requests_log()]
    assert statuses == [429, 200]


def test_retry_after_zero_still_pauses_a_little(sim: Simulator) -> None:
    sim.add_fault(Fault(kind="rate_limit", retry_after="0"))
    fake = FakeTime()
    gate = SiteGate(1000, clock=fake.clock, sleep=fake.sleep)
    jira = JiraClient(jira_settings(sim.url), Secret("sim-token"), gate=gate)
    with jira, pytest.raises(JiraRateLimited) as caught:
        jira.get_task("1")
    assert caught.value.retry_after_s == 0.0
    assert gate.paused_until() == pytest.approx(fake.now + MIN_PAUSE_S)


def test_backoff_without_retry_after_grows_and_resets(sim: Simulator) -> None:
    sim.add_task(running())
    fake = FakeTime()
    gate = SiteGate(1000, clock=fake.clock, sleep=fake.sleep)
    with JiraClient(jira_settings(sim.url), Secret("sim-token"), gate=gate) as jira:

        def pause_after_429() -> float:
            sim.add_fault(Fault(kind="rate_limit"))
            with pytest.raises(JiraRateLimited) as caught:
                jira.get_task("1")
            assert caught.value.retry_after_s is None
            until = gate.paused_until()
            assert until is not None
            return until - fake.now

        pauses = [pause_after_429() for _ in range(4)]
        jira.get_task("1")  # a success resets the backoff
        after_success = pause_after_429()
    for pause, base in zip(pauses, [5.0, 10.0, 20.0, 30.0], strict=True):
        assert 0.7 * base <= pause <= 1.3 * base
    assert 3.5 <= after_success <= 6.5


def test_credentials_refused_again_and_again_pause_the_whole_site(sim: Simulator) -> None:
    sim.add_task(running())
    sim.add_task(TaskScript("2", queued_s=1000))
    fake = FakeTime()
    gate = SiteGate(1000, clock=fake.clock, sleep=fake.sleep)
    with JiraClient(jira_settings(sim.url), Secret("sim-token"), gate=gate) as jira:
        sim.add_fault(Fault(kind="status", status=401, count=1))
        with pytest.raises(JiraAuthError):
            jira.get_task("1")
        jira.get_task("2")  # one task's refusal, then a success: no pause
        assert gate.paused_until() is None
        sim.add_fault(Fault(kind="status", status=401, count=None))
        for _ in range(AUTH_PAUSE_AFTER - 1):
            with pytest.raises(JiraAuthError):
                jira.get_task("1")
        assert gate.paused_until() is None
        with pytest.raises(JiraAuthError, match="all requests paused 60s"):
            jira.get_task("2")
        until = gate.paused_until()
        assert until is not None and until - fake.now == pytest.approx(AUTH_PAUSE_S)
        seen = len(sim.requests_log())
        with pytest.raises(JiraAuthError):
            jira.get_task("1")  # waits out the pause before it is even sent
        assert sum(fake.sleeps) >= AUTH_PAUSE_S
        assert len(sim.requests_log()) == seen + 1
        until = gate.paused_until()
        assert until is not None and until - fake.now == pytest.approx(2 * AUTH_PAUSE_S)


def test_requests_are_paced_by_max_rps(sim: Simulator) -> None:
    sim.add_task(running())
    fake = FakeTime()
    gate = SiteGate(2, clock=fake.clock, sleep=fake.sleep)
    with JiraClient(jira_settings(sim.url, max_rps=2.0), Secret("sim-token"), gate=gate) as jira:
        for _ in range(5):
            jira.get_task("1")
    assert fake.sleeps == pytest.approx([0.5] * 4)
    assert len(sim.requests_log()) == 5


def test_default_gate_uses_max_rps(sim: Simulator) -> None:
    with JiraClient(jira_settings(sim.url, max_rps=7.0), Secret("sim-token")) as jira:
        assert jira.gate.max_rps == 7.0


def test_response_size_cap(sim: Simulator, client: JiraClient) -> None:
    sim.add_task(finished("big", result="x" * MAX_BODY_BYTES))
    sim.add_task(finished("fits", result="x" * (MAX_BODY_BYTES - 1000)))
    with pytest.raises(JiraBadResponse) as caught:
        client.get_task("big")
    assert "response too large" in str(caught.value) and caught.value.transient
    assert client.get_task("fits").result == "x" * (MAX_BODY_BYTES - 1000)


def test_closed_client_refuses(sim: Simulator) -> None:
    jira = JiraClient(jira_settings(sim.url), Secret("sim-token"))
    jira.close()
    with pytest.raises(JiraUnreachable, match="client closed"):
        jira.get_task("1")
    assert jira.gate.closed


def test_concurrent_requests_share_one_pool(sim: Simulator) -> None:
    for n in range(8):
        sim.add_task(running(str(n)))
    errors: list[BaseException] = []
    with JiraClient(jira_settings(sim.url), Secret("sim-token"), pool_size=4) as jira:

        def worker(offset: int) -> None:
            try:
                for n in range(25):
                    assert jira.get_task(str((n + offset) % 8)).status == "RUNNING"
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    assert len(sim.requests_log()) == 100
    assert sim.connection_count <= 4


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com", "must start with https://"),
        ("https://", "has no host"),
        ("https://user:pw@example.atlassian.net", "credentials"),
        ("https://example.atlassian.net?x=1", "query"),
    ],
)
def test_an_unusable_base_url_never_reaches_the_client(url: str, problem: str) -> None:
    # The client builds its URLs from the loaded settings as they are: loading refuses these.
    with pytest.raises(ValueError, match=re.escape(problem)):
        jira_url(url)
    with pytest.raises(ConfigError, match=r"jira\.url is required"):
        JiraClient(JiraSettings(), Secret("t"))


def test_token_never_appears_in_errors_or_reprs() -> None:
    faults = [
        Fault(kind="status", status=500),
        Fault(kind="html", status=502),
        Fault(kind="rate_limit", retry_after="1"),
        Fault(kind="malformed"),
        Fault(kind="reset"),
        Fault(kind="slow", delay_s=0.5),
    ]
    seen: list[JiraError] = []
    # The canary is a rejected token (basic and bearer) ...
    with Simulator(auth="basic", email=EMAIL, token="the-right-one") as sim:
        sim.add_task(running())
        for auth in Auth:
            with JiraClient(jira_settings(sim.url, auth=auth), Secret(CANARY)) as jira:
                assert CANARY not in repr(jira)
                for call in (jira.get_task, jira.cancel_task):
                    with pytest.raises(JiraAuthError) as rejected:
                        call("1")
                    seen.append(rejected.value)
    # ... and an accepted one, through every kind of failure.
    with Simulator(auth="basic", email=EMAIL, token=CANARY) as sim:
        sim.add_task(running(cancellable=False))
        fake = FakeTime()
        gate = SiteGate(1000, clock=fake.clock, sleep=fake.sleep)
        settings = jira_settings(sim.url, timeout_s=0.2)
        with JiraClient(settings, Secret(CANARY), gate=gate) as jira:
            for fault in faults:
                sim.add_fault(fault)
                with pytest.raises(JiraError) as caught:
                    jira.get_task("1")
                seen.append(caught.value)
            with pytest.raises(JiraRefused) as refused:
                jira.cancel_task("1")
            seen.append(refused.value)
    assert len(seen) == 4 + len(faults) + 1
    assert len({type(e) for e in seen}) == 6
    for error in seen:
        rendered = f"{error!s} {error!r} {error.args!r} {vars(error)!r}"
        assert CANARY not in rendered
        assert error.__cause__ is None and error.__context__ is None


# -- the environment, read once ------------------------------------------------------------


def _proxy_env(monkeypatch: pytest.MonkeyPatch, proxy: str, no_proxy: str = "") -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("http_proxy", proxy)
    if no_proxy:
        monkeypatch.setenv("no_proxy", no_proxy)


def test_client_goes_through_the_proxy_of_the_environment(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The simulator answers absolute-form requests too, so it can play the proxy: the site
    # itself (.invalid) cannot be resolved, and only a request through the proxy gets there.
    sim.add_task(running("41"))
    _proxy_env(monkeypatch, sim.url)
    with JiraClient(jira_settings("http://jira.invalid"), Secret("sim-token")) as jira:
        monkeypatch.delenv("http_proxy")  # read once, when the client was made
        assert jira.get_task("41").status == "RUNNING"


def test_client_honours_no_proxy_of_the_environment(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.add_task(running("42"))
    _proxy_env(monkeypatch, "http://127.0.0.1:9", no_proxy="127.0.0.1")  # nothing listens on 9
    with JiraClient(jira_settings(sim.url), Secret("sim-token")) as jira:
        assert jira.get_task("42").status == "RUNNING"
