"""Shared fixtures: a real simulator on loopback, a real SQLite database with real migrations."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.config import (
    DatabaseSettings,
    JiraSettings,
    LogSettings,
    PollSettings,
    Secret,
    Settings,
)
from monitor.database import open_database
from monitor.jira import JiraClient
from monitor.poller import Poller
from monitor.simulator import Simulator
from monitor.states import LogFormat
from monitor.store import Store
from tests.databases import NO_SERVER, postgresql_schema, postgresql_server
from tests.notify import NotifyListener
from tests.receiver import Receiver

SIM_EMAIL = "sim@example.com"
SIM_TOKEN = "canary-TOKEN-5e1f9c"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(auth="basic", email=SIM_EMAIL, token=SIM_TOKEN) as simulator:
        yield simulator


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema on the test PostgreSQL server; skipped (with the reason) without one."""
    server = postgresql_server()
    if server is None:
        pytest.skip(NO_SERVER)
    with postgresql_schema(server) as url:
        yield url


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'monitor.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    engine = open_database(db_url)
    yield Store(engine)
    engine.dispose()


@pytest.fixture
def settings(sim: Simulator, db_url: str) -> Settings:
    return Settings(
        database=DatabaseSettings(db_url),
        jira=JiraSettings(url=sim.url, email=SIM_EMAIL, timeout_s=2.0, max_rps=1000.0),
        poll=PollSettings(interval_s=1.0, max_interval_s=4.0, concurrency=4),
        log=LogSettings(format=LogFormat.JSON),
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[JiraClient]:
    with JiraClient(settings.jira, Secret(SIM_TOKEN), pool_size=4) as jira:
        yield jira


@pytest.fixture
def poller(store: Store, client: JiraClient, settings: Settings) -> Iterator[Poller]:
    with ThreadPoolExecutor(max_workers=4) as workers:
        yield Poller(store, client, settings.poll, settings.timeouts, workers, rng=random.Random(7))


class RunCli(Protocol):
    """The `run` fixture: `jtm --config <config> ARGS...`, with `stdin` as its input."""

    def __call__(self, *args: str, stdin: str | None = None) -> Result: ...


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config file naming only a database in tmp_path: enough for every local command."""
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "monitor.db"}"\n')
    return path


@pytest.fixture
def run(config: Path) -> RunCli:
    """`jtm --config <config> ARGS...` through click's runner, with no JTM_ or colour settings."""
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Result:
        env = {"NO_COLOR": None}
        return runner.invoke(cli, ["--config", str(config), *args], input=stdin, env=env)

    return invoke


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    """A socket standing in for systemd's $NOTIFY_SOCKET."""
    notify = NotifyListener()
    yield notify
    notify.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A loopback webhook receiver (Apprise's json://), see tests.receiver."""
    item = Receiver()
    yield item
    item.close()
