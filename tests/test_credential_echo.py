"""A site (or a proxy in front of it) that echoes the request's Authorization header in its
error body: no form of the credentials reaches an error, the database or a log line."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest
from structlog.testing import capture_logs

from monitor.config import JiraSettings, PollSettings, Secret, TimeoutSettings
from monitor.errors import JiraError
from monitor.jira import JiraClient
from monitor.poller import Poller
from monitor.states import Auth
from monitor.store import Registration, Store
from tests.helpers import events

EMAIL = "ops@example.com"
TOKEN = "canary-ECHO-TOKEN-3f9a/+x"


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with `status` and a Jira error body quoting the header, in the
    ways a server writes it: whole, the credentials alone, JSON-escaped, and late in a long
    text (so that the client's cut to one short line falls inside it)."""

    status = 500

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        credentials = header.split(" ", 1)[-1]
        body = {
            "errorMessages": [
                f"{'padding ' * 18}bad Authorization: {header}",
                f"credentials {credentials}",
            ],
            "errors": {"auth": header},
        }
        # Java's JSON writers often escape "/" as "\/".
        data = json.dumps(body).replace("/", "\\/").encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _forms(auth: str) -> list[str]:
    pair = base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
    forms = [TOKEN, pair[:24], pair[-24:]] if auth == "basic" else [TOKEN]
    return forms + [form.replace("/", "\\/") for form in forms]


@pytest.mark.parametrize("auth", list(Auth))
def test_an_echoed_authorization_header_is_scrubbed_from_errors(echo_url: str, auth: Auth) -> None:
    jira = JiraSettings(url=echo_url, auth=auth, email=EMAIL, timeout_s=2.0, max_rps=1000.0)
    with JiraClient(jira, Secret(TOKEN)) as client, pytest.raises(JiraError) as caught:
        client.get_task("1")
    message = str(caught.value)
    assert "HTTP 500" in message and "********" in message
    assert all(form not in message for form in _forms(auth)), message


def test_a_poll_stores_and_logs_no_form_of_the_credentials(echo_url: str, tmp_path: Path) -> None:
    from monitor.database import open_database

    engine = open_database(f"sqlite:///{tmp_path / 'monitor.db'}")
    store = Store(engine)
    now = datetime.now(UTC)
    store.register(["1"], Registration(), now)
    jira = JiraSettings(url=echo_url, email=EMAIL, timeout_s=2.0, max_rps=1000.0)
    with (
        JiraClient(jira, Secret(TOKEN)) as client,
        ThreadPoolExecutor(max_workers=1) as workers,
        capture_logs() as logged,
    ):
        poller = Poller(store, client, PollSettings(), TimeoutSettings(), workers)
        poller.tick(now)
    task = store.get("1")
    texts = [task.last_error or "", *(e.detail or "" for e in events(store, "1"))]
    texts.append(json.dumps(logged, default=str))
    engine.dispose()
    assert task.last_error and "********" in task.last_error
    for text in texts:
        assert all(form not in text for form in _forms("basic")), text
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert all(form.encode() not in data for form in _forms("basic")), path.name
