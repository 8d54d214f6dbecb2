"""Faithful to the real Jira Cloud: its own bodies (tests/jira_samples), 403 on one task, its
clock, its error forms, its rate-limit headers, hung answers, and the cancel request."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from structlog.testing import capture_logs

from monitor.cli import cli
from monitor.config import JiraSettings, PollSettings, Secret, TimeoutSettings
from monitor.errors import (
    JiraAuthError,
    JiraForbidden,
    JiraRateLimited,
    JiraRefused,
    JiraServerError,
    JiraUnreachable,
)
from monitor.jira import JiraClient, parse_task
from monitor.jira.diagnosis import jira_error_text
from monitor.poller import Poller
from monitor.simulator import Fault, Simulator, TaskScript
from monitor.simulator.faults import RATE_LIMIT_REASON
from monitor.simulator.server import FORBIDDEN, UNAUTHENTICATED
from monitor.simulator.wire import ErrorForm
from monitor.states import ErrorKind, EventKind, TaskState
from monitor.store import Registration, Store
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import Daemon, base_env, events, jtm, wait_for, write_config

SAMPLES = Path(__file__).parent / "jira_samples"
FOREVER = 10_000_000.0
Logs = list[MutableMapping[str, Any]]


def named(logs: Logs, event: str) -> Logs:
    return [line for line in logs if line["event"] == event]


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def epoch(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


# -- every sample of a real Jira body: parsed or diagnosed -------------------------------------


@pytest.mark.parametrize("name", ["task-complete-spec-example.json", "task-spec-example-2022.json"])
def test_atlassians_task_examples_are_parsed_field_by_field(name: str) -> None:
    raw = json.loads(sample(name))
    info = parse_task(sample(name), expected_id="1")
    assert (info.task_id, info.status, info.terminal) == ("1", "COMPLETE", True)
    assert (info.progress, info.elapsed_runtime_ms) == (100, 156)
    assert info.description == "Task description"
    assert info.result == "the task result, this may be any JSON"
    assert info.submitted == epoch(raw["submitted"])
    assert info.started == epoch(raw["started"])
    assert info.finished == epoch(raw["finished"])
    assert info.last_update == epoch(raw["lastUpdate"])
    # elapsedRuntime (156) is not finished - started (100): it cannot serve as Jira's clock.
    assert (info.finished - info.started).total_seconds() * 1000 != info.elapsed_runtime_ms
    assert info.anomalies == ()


def test_the_sparse_replace_field_option_example_keeps_what_it_has() -> None:
    info = parse_task(sample("task-replace-field-option-sparse.json"), expected_id="1")
    assert (info.status, info.elapsed_runtime_ms) == ("COMPLETE", 42)
    assert info.description is not None and info.description.startswith("Remove option 1")
    assert info.progress is None and info.submitted is None and info.last_update is None
    assert isinstance(info.result, dict)
    assert info.result["modifiedIssues"] == [10001, 10010]
    assert info.result["unmodifiedIssues"] == [10005]
    assert set(info.anomalies) == {"progress: missing", "submitted: missing", "lastUpdate: missing"}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("error-401-json.json", "Client must be authenticated to access this resource."),
        ("error-401-xml.txt", "Client must be authenticated to access this resource."),
        ("error-401-plain.txt", "Basic authentication with passwords is deprecated. For more"),
        ("error-403-collection.json", "Administrator privileges are required."),
        ("error-404-collection.json", "Priority with ID 10000 not found."),
        ("error-400-bare-array.json", "Your filter contains invalid values {errorMessage}"),
        ("bulk-queue-error-400.json", "is not a bulk operation task"),
    ],
)
def test_every_error_sample_gives_jiras_own_text(name: str, text: str) -> None:
    found = jira_error_text(sample(name))
    assert found is not None and text in found
    assert "<" not in found and "status-code" not in found and "present" not in found


# -- 401 bodies in each of Jira's forms: Jira's text everywhere ---------------------------------


@pytest.mark.parametrize("form", list(ErrorForm))
def test_a_401_in_any_form_shows_jiras_text_in_the_error_last_error_and_check(
    form: ErrorForm, tmp_path: Path, store: Store
) -> None:
    with Simulator(email=SIM_EMAIL, token=SIM_TOKEN, error_form=form) as sim:
        sim.add_task(TaskScript("1", queued_s=FOREVER))
        settings = JiraSettings(url=sim.url, email=SIM_EMAIL, timeout_s=2.0, max_rps=1000.0)
        with JiraClient(settings, Secret("wrong-token")) as client:
            with pytest.raises(JiraAuthError) as caught:
                client.get_task("1")
            assert not isinstance(caught.value, JiraForbidden)
            assert UNAUTHENTICATED in str(caught.value)
            store.register(["1"], Registration(), datetime.now(UTC))
            with ThreadPoolExecutor(1) as workers:
                poll = PollSettings(interval_s=1.0, max_interval_s=4.0, concurrency=1)
                Poller(store, client, poll, TimeoutSettings(), workers).tick()
        task = store.get("1")
        assert task.last_error is not None and UNAUTHENTICATED in task.last_error
        assert task.last_error_kind == ErrorKind.CREDENTIALS
        config = write_config(tmp_path, sim, SIM_EMAIL)
        result = CliRunner().invoke(
            cli, ["--config", str(config), "check"], env={"JTM_JIRA_TOKEN": "wrong-token"}
        )
    assert result.exit_code == 77
    assert UNAUTHENTICATED in result.output


# -- 403 is about one task ------------------------------------------------------------------------


@pytest.fixture
def workers() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def test_five_forbidden_tasks_of_fifty_never_pause_the_site(
    sim: Simulator, store: Store, client: JiraClient, workers: ThreadPoolExecutor
) -> None:
    ids = [f"{n:02}" for n in range(1, 51)]
    forbidden = set(ids[:5])  # polled first, one after the other
    for task_id in ids:
        sim.add_task(TaskScript(task_id, queued_s=FOREVER, forbidden=task_id in forbidden))
    start = datetime.now(UTC)
    store.register(ids, Registration(), start)
    poll = PollSettings(interval_s=1.0, max_interval_s=1.0, concurrency=4)
    poller = Poller(store, client, poll, TimeoutSettings(), workers, rng=random.Random(1))
    with capture_logs() as logs:
        for round_ in range(6):  # each tick past every task's interval: all of them are due
            now = start + timedelta(seconds=2 * round_)
            before = len(sim.requests_log())
            began = time.monotonic()
            report = poller.tick(now)
            assert time.monotonic() - began < 5, "the site was paused"
            polled = {r.task_id for r in sim.requests_log()[before:] if r.status == 200}
            assert polled == set(ids) - forbidden, f"tick {round_}"
            assert report.polled == 45
            assert client.gate.paused_until() is None
    denied = named(logs, "task.access_denied")
    assert sorted(e["task_id"] for e in denied) == sorted(forbidden)  # once per task
    assert all(e["kind"] == "task" and FORBIDDEN in e["reason"] for e in denied)
    assert named(logs, "jira.error") == []
    for task_id in forbidden:
        task = store.get(task_id)
        assert task.state == TaskState.WATCHING
        assert task.last_error_kind == ErrorKind.FORBIDDEN
        assert task.last_error is not None and "not a Jira admin nor the task's creator" in (
            task.last_error
        )


def test_a_forbidden_task_shows_in_show_list_status_and_watch(
    sim: Simulator, store: Store, client: JiraClient, workers: ThreadPoolExecutor, tmp_path: Path
) -> None:
    sim.add_task(TaskScript("7", forbidden=True))
    store.register(["7"], Registration(), datetime.now(UTC))
    poll = PollSettings(interval_s=1.0, max_interval_s=4.0, concurrency=4)
    Poller(store, client, poll, TimeoutSettings(), workers).tick()
    config = write_config(tmp_path, sim, SIM_EMAIL)
    config.write_text(config.read_text().replace(str(tmp_path / "monitor.db"), _db_path(store)))

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, ["--config", str(config), *args], env={})
        assert result.exit_code == code, result.output
        return result.output

    assert json.loads(run("show", "7", "--json"))["last_error_kind"] == "forbidden"
    assert json.loads(run("list", "--json"))[0]["last_error_kind"] == "forbidden"
    assert "forbidden" in run("list")
    assert "forbidden: 1 task (7)" in run("status", code=1)  # 1: no daemon has run
    assert "! forbidden: " in run("watch", "--once")


def _db_path(store: Store) -> str:
    database = store.engine.url.database
    assert database is not None
    return database


def test_twenty_refusals_in_a_row_with_no_success_pause_the_site(
    sim: Simulator, client: JiraClient
) -> None:
    for n in range(20):
        sim.add_task(TaskScript(str(n), forbidden=True))
        with pytest.raises(JiraForbidden):
            client.get_task(str(n))
        assert (client.gate.paused_until() is None) == (n < 19)


def test_a_403_on_cancel_says_which_permission_is_missing(sim: Simulator, tmp_path: Path) -> None:
    sim.add_task(TaskScript("8", queued_s=0, run_s=FOREVER, cancel_forbidden=True))
    config = write_config(tmp_path, sim, SIM_EMAIL)
    env = {"JTM_JIRA_TOKEN": SIM_TOKEN}
    assert CliRunner().invoke(cli, ["--config", str(config), "add", "8"], env=env).exit_code == 0
    result = CliRunner().invoke(cli, ["--config", str(config), "cancel", "8"], env=env)
    assert result.exit_code == 1
    assert "HTTP 403" in result.output and "write:jira-work" in result.output
    assert FORBIDDEN in result.output
    assert "Traceback" not in result.output


def test_cancel_failed_reason_names_the_permission(
    sim: Simulator, store: Store, client: JiraClient, workers: ThreadPoolExecutor
) -> None:
    sim.add_task(
        TaskScript("9", queued_s=0, run_s=FOREVER, started_ago_s=60, cancel_forbidden=True)
    )
    start = datetime.now(UTC)
    store.register(["9"], Registration(run_s=1.0), start)
    poll = PollSettings(interval_s=1.0, max_interval_s=4.0, concurrency=4)
    poller = Poller(store, client, poll, TimeoutSettings(), workers)
    with capture_logs() as logs:
        poller.tick(start)
    [failed] = named(logs, "task.cancel_failed")
    assert "may not cancel it" in failed["error"] and "write:jira-work" in failed["error"]
    assert "may not cancel it" in failed["reason"] and "write:jira-work" in failed["reason"]
    assert failed["cancel_reason"].startswith("run limit")
    assert store.get("9").cancel_outcome == "refused"


# -- Jira's clock ---------------------------------------------------------------------------------


class SimClock:
    def __init__(self) -> None:
        self.t = float(int(time.time()))

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(
    ("skew_s", "omit_last_update"),
    [(0.0, True), (0.0, False), (-300.0, False), (300.0, False), (300.0, True)],
)
def test_a_frozen_elapsed_runtime_still_stops_a_stalled_task_on_time(
    store: Store, workers: ThreadPoolExecutor, skew_s: float, omit_last_update: bool
) -> None:
    clock = SimClock()
    t0 = clock.t
    with Simulator(email=SIM_EMAIL, token=SIM_TOKEN, clock=clock, skew_s=skew_s) as sim:
        # RUNNING from t0, 40% at t0 + 4 s, then stuck there; elapsedRuntime stays at 4 s.
        script = TaskScript(
            "40",
            queued_s=0,
            run_s=10,
            stall_at=40,
            frozen_elapsed=True,
            omit_last_update=omit_last_update,
        )
        sim.add_task(script)
        settings = JiraSettings(url=sim.url, email=SIM_EMAIL, timeout_s=2.0, max_rps=1000.0)
        with JiraClient(settings, Secret(SIM_TOKEN)) as client:
            start = datetime.fromtimestamp(t0, UTC)
            store.register(["40"], Registration(stall_s=120.0), start)
            poll = PollSettings(interval_s=30.0, max_interval_s=30.0, concurrency=4)
            poller = Poller(store, client, poll, TimeoutSettings(), workers, watched_since=start)
            fired_at = None
            for step in range(0, 200, 5):  # a tick every 5 s; tasks poll when due
                clock.t = t0 + step
                poller.tick(start + timedelta(seconds=step))
                task = store.get("40")
                if task.timed_out is not None:
                    fired_at = step
                    break
    assert task.progress == 40 and task.elapsed_runtime_ms == 4000
    assert task.timed_out == "stall"
    # Stuck since t0 + 4 s (seen by the monitor at its poll at 5 s): not before 2 minutes,
    # and within one poll interval after.
    assert fired_at is not None and 124 < fired_at <= 125 + 30


def test_the_stall_the_monitor_saw_survives_a_restart_without_its_downtime(
    store: Store, workers: ThreadPoolExecutor
) -> None:
    clock = SimClock()
    t0 = clock.t
    with Simulator(email=SIM_EMAIL, token=SIM_TOKEN, clock=clock) as sim:
        sim.add_task(
            # No lastUpdate, and elapsedRuntime refreshed at every read: only what the
            # monitor saw tells a stall.
            TaskScript("41", queued_s=0, run_s=10, stall_at=40, omit_last_update=True)
        )  # fmt: skip
        settings = JiraSettings(url=sim.url, email=SIM_EMAIL, timeout_s=2.0, max_rps=1000.0)
        with JiraClient(settings, Secret(SIM_TOKEN)) as client:
            start = datetime.fromtimestamp(t0, UTC)
            store.register(["41"], Registration(stall_s=120.0), start)
            poll = PollSettings(interval_s=10.0, max_interval_s=10.0, concurrency=4)

            def run(since: float, until: float) -> int | None:
                poller = Poller(
                    store, client, poll, TimeoutSettings(), workers,
                    watched_since=start + timedelta(seconds=since),
                )  # fmt: skip
                for step in range(int(since), int(until), 5):
                    clock.t = t0 + step
                    poller.tick(start + timedelta(seconds=step))
                    if store.get("41").timed_out is not None:
                        return step
                return None

            assert run(0, 90) is None  # stuck from 4 s, seen so from ~10 s to ~85 s
            # Down from 90 s to 1000 s: that never counts, what was seen before does.
            fired = run(1000, 1200)
    assert fired is not None and 1000 + 40 <= fired <= 1000 + 70


# -- rate-limit headers ------------------------------------------------------------------------


def test_a_429_without_retry_after_waits_until_x_ratelimit_reset(
    sim: Simulator, client: JiraClient
) -> None:
    sim.add_task(TaskScript("1", queued_s=FOREVER))
    sim.add_fault(Fault("rate_limit", reset_in_s=20))
    with pytest.raises(JiraRateLimited) as caught:
        client.get_task("1")
    error = caught.value
    assert error.retry_after_s is not None and 18 <= error.retry_after_s <= 21
    assert error.pause_s == error.retry_after_s
    assert error.reason == RATE_LIMIT_REASON and RATE_LIMIT_REASON in str(error)
    paused = client.gate.paused_until()
    assert paused is not None and paused - time.monotonic() > 15


def test_retry_after_is_honoured_on_any_5xx(sim: Simulator, client: JiraClient) -> None:
    sim.add_task(TaskScript("1", queued_s=FOREVER))
    sim.add_fault(Fault("status", status=500, retry_after="7"))
    with pytest.raises(JiraRateLimited) as caught:
        client.get_task("1")
    assert caught.value.status == 500 and caught.value.pause_s == 7.0
    client.gate.close()


def test_the_reason_jira_gave_is_logged(
    sim: Simulator, store: Store, client: JiraClient, workers: ThreadPoolExecutor
) -> None:
    sim.add_task(TaskScript("1", queued_s=FOREVER))
    sim.add_fault(Fault("rate_limit", retry_after="1"))
    store.register(["1"], Registration(), datetime.now(UTC))
    poll = PollSettings(interval_s=1.0, max_interval_s=4.0, concurrency=4)
    with capture_logs() as logs:
        Poller(store, client, poll, TimeoutSettings(), workers).poll_due(datetime.now(UTC))
    [limited] = named(logs, "jira.rate_limited")
    assert limited["reason"] == RATE_LIMIT_REASON and limited["retry_after_s"] == 1.0


# -- a deadline for the whole request ------------------------------------------------------------


def test_a_dripping_answer_costs_at_most_the_request_deadline(sim: Simulator) -> None:
    sim.add_task(TaskScript("1", queued_s=FOREVER))
    sim.add_fault(Fault("drip", delay_s=0.05))  # ~400 bytes: 20 s, each read well inside 1 s
    settings = JiraSettings(url=sim.url, email=SIM_EMAIL, timeout_s=1.0, max_rps=1000.0)
    with JiraClient(settings, Secret(SIM_TOKEN)) as client:
        began = time.monotonic()
        with pytest.raises(JiraUnreachable) as caught:
            client.get_task("1")
        took = time.monotonic() - began
        assert 0.9 < took < 2.0
        assert "timeout after 1s" in str(caught.value)
        assert client.get_task("1").status == "ENQUEUED"  # the next request is fine


# -- the cancel request as Jira expects it -------------------------------------------------------


def test_cancel_passes_jiras_xsrf_check(store: Store) -> None:
    with Simulator(email=SIM_EMAIL, token=SIM_TOKEN, xsrf_check=True) as sim:
        sim.add_task(TaskScript("1", queued_s=0, run_s=FOREVER))
        settings = JiraSettings(url=sim.url, email=SIM_EMAIL, timeout_s=2.0, max_rps=1000.0)
        with JiraClient(settings, Secret(SIM_TOKEN)) as client:
            client.cancel_task("1")
            assert sim.cancel_count("1") == 1
            assert client.get_task("1").status == "CANCEL_REQUESTED"


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (Fault("xsrf", method="POST"), "XSRF check refused the request"),
        (Fault("status", status=415, method="POST"), "refused the request's media type"),
    ],
)
def test_a_415_or_an_xsrf_refusal_ends_the_cancel_with_a_clear_reason(
    sim: Simulator, client: JiraClient, fault: Fault, said: str
) -> None:
    sim.add_task(TaskScript("1", queued_s=0, run_s=FOREVER))
    sim.add_fault(fault)
    with pytest.raises(JiraRefused) as caught:
        client.cancel_task("1")
    assert said in str(caught.value) and not caught.value.transient


# -- the simulator looks like Jira ---------------------------------------------------------------


def test_sparse_and_chunked_answers_are_recorded(store: Store, workers: ThreadPoolExecutor) -> None:
    with Simulator(email=SIM_EMAIL, token=SIM_TOKEN, chunked=True) as sim:
        sim.add_task(TaskScript("1", queued_s=0, run_s=FOREVER, sparse=True))
        settings = JiraSettings(url=sim.url, email=SIM_EMAIL, timeout_s=2.0, max_rps=1000.0)
        with JiraClient(settings, Secret(SIM_TOKEN)) as client:
            info = client.get_task("1")
            assert info.status == "RUNNING" and info.progress is None
            assert info.server_time is not None
            store.register(["1"], Registration(), datetime.now(UTC))
            poll = PollSettings(interval_s=1.0, max_interval_s=4.0, concurrency=4)
            Poller(store, client, poll, TimeoutSettings(), workers).tick()
    task = store.get("1")
    assert (task.status, task.progress, task.last_error) == ("RUNNING", None, None)
    [seen] = [e for e in events(store, "1") if e.kind == EventKind.FIRST_SEEN]
    assert seen.detail is not None and "lastUpdate: missing" in seen.detail


def test_a_server_error_in_a_chunked_body_still_gives_jiras_text() -> None:
    with Simulator(email=SIM_EMAIL, token=SIM_TOKEN, chunked=True) as sim:
        sim.add_task(TaskScript("1"))
        sim.add_fault(Fault("status", status=500))
        settings = JiraSettings(url=sim.url, email=SIM_EMAIL, timeout_s=2.0, max_rps=1000.0)
        with JiraClient(settings, Secret(SIM_TOKEN)) as client, pytest.raises(JiraServerError) as e:
            client.get_task("1")
    caught = e
    assert "Simulated failure: 500" in str(caught.value)


# -- the daemon: a hung answer holds one worker, a stop drops what was not sent -------------------


def _task_polls(sim: Simulator, task_id: str) -> int:
    return sum(1 for r in sim.requests_log() if r.task_id == task_id)


def test_a_dripping_answer_holds_one_worker_and_sigterm_still_stops_at_once(
    sim: Simulator, tmp_path: Path
) -> None:
    ids = ["1", "2", "3", "drip"]
    for task_id in ids:
        sim.add_task(TaskScript(task_id, queued_s=FOREVER))
    sim.add_fault(Fault("drip", delay_s=0.5, task_id="drip", count=None))  # ~200 s an answer
    config = write_config(tmp_path, sim, SIM_EMAIL, jira={"timeout": "2s"})
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    assert jtm(config, "add", *ids, env=env).returncode == 0
    daemon = Daemon(config, env)
    try:
        daemon.wait_event("daemon.started")
        wait_for(lambda: _task_polls(sim, "drip") >= 1, what="the dripping request")
        others = {task_id: _task_polls(sim, task_id) for task_id in ids[:3]}
        began = time.monotonic()
        # While the dripping answer holds one worker, the others are polled at their interval
        # (1 s, stretched by half each time nothing changes, up to 2 s).
        wait_for(
            lambda: all(_task_polls(sim, t) >= others[t] + 2 for t in others),
            timeout=10,
            what="two more polls of every other task",
        )
        assert time.monotonic() - began < 6.5
        wait_for(lambda: _task_polls(sim, "drip") >= 2, timeout=10, what="a second drip")
        stopping = time.monotonic()
        returncode = daemon.stop(timeout=20)
        took = time.monotonic() - stopping
    finally:
        daemon.kill()
    assert returncode == 0, daemon.stderr
    assert took < 4.0, f"stopped {took:.1f}s after SIGTERM"
    assert daemon.events("daemon.stopped")


def test_sigterm_drops_hundreds_of_paced_requests_not_yet_sent(
    sim: Simulator, tmp_path: Path
) -> None:
    ids = [f"p{n}" for n in range(300)]
    for task_id in ids:
        sim.add_task(TaskScript(task_id, queued_s=FOREVER))
    config = write_config(tmp_path, sim, SIM_EMAIL, jira={"max_rps": 5})  # a 60 s tick
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    assert jtm(config, "add", "-", env=env, stdin="\n".join(ids)).returncode == 0
    daemon = Daemon(config, env)
    try:
        daemon.wait_event("daemon.started")
        wait_for(lambda: len(sim.requests_log()) >= 10, what="the tick under way")
        stopping = time.monotonic()
        returncode = daemon.stop(timeout=30)
        took = time.monotonic() - stopping
    finally:
        daemon.kill()
    assert returncode == 0, daemon.stderr
    assert took < 4.0, f"stopped {took:.1f}s after SIGTERM"
    polled = {r.task_id for r in sim.requests_log() if r.task_id is not None}
    assert len(polled) < 60
    listed = json.loads(jtm(config, "list", "--json", env=env).stdout)
    never = [t for t in listed if t["polls"] == 0]
    assert len(never) == 300 - len(polled)  # dropped, not failed: polled at the next start
    assert all(t["last_error"] is None for t in never)


@pytest.mark.parametrize("skew_s", [-300.0, 300.0])
def test_jiras_clock_is_its_date_header_even_when_skewed(skew_s: float) -> None:
    with Simulator(email=SIM_EMAIL, token=SIM_TOKEN, skew_s=skew_s) as sim:
        sim.add_task(TaskScript("1", queued_s=0, run_s=FOREVER, started_ago_s=60))
        settings = JiraSettings(url=sim.url, email=SIM_EMAIL, timeout_s=2.0, max_rps=1000.0)
        with JiraClient(settings, Secret(SIM_TOKEN)) as client:
            info = client.get_task("1")
    assert info.server_time is not None and info.started is not None
    ours = datetime.now(UTC)
    assert abs((info.server_time - ours).total_seconds() - skew_s) < 3
    assert abs((info.server_time - info.started).total_seconds() - 60) < 3


def test_the_control_api_drives_the_new_modes(sim: Simulator, client: JiraClient) -> None:
    added = requests.post(
        sim.url + "/_sim/tasks",
        json=[{"task_id": "f", "forbidden": True}, {"task_id": "s", "sparse": True}],
        timeout=5,
    )
    assert added.status_code == 200, added.text
    fault = {"kind": "rate_limit", "reset_in_s": 30, "task_id": "s"}
    assert requests.post(sim.url + "/_sim/faults", json=fault, timeout=5).status_code == 200
    with pytest.raises(JiraForbidden):
        client.get_task("f")
    with pytest.raises(JiraRateLimited) as caught:
        client.get_task("s")
    assert caught.value.reason == RATE_LIMIT_REASON
