"""A loopback HTTP receiver standing in for a chat room or a pager's webhook.

It takes what Apprise's `json://` sends (a JSON body, an `Idempotency-Key` header) and keeps
every request. Its `mode` can change at any time: `ok` answers 200, `fail` answers 500, `hang`
holds the request without answering until the mode changes (or the client gives up), `down`
closes the connection at once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from monitor.simulator import Simulator
from tests.helpers import write_config


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic()
    key: str | None  # the Idempotency-Key header
    body: dict[str, Any]
    answered: int  # the status answered (0: none)

    @property
    def event(self) -> dict[str, Any]:
        """The monitor's own document (`jtm` in Apprise's JSON body)."""
        value: dict[str, Any] = self.body["jtm"]
        return value


class Receiver:
    def __init__(self) -> None:
        self.mode = "ok"
        self.delay_s = 0.0  # taken before answering (a request in flight when a daemon dies)
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                key = self.headers.get("Idempotency-Key")
                mode = receiver.mode
                deadline = time.monotonic() + 30
                while mode == "hang" and time.monotonic() < deadline:
                    time.sleep(0.02)
                    mode = receiver.mode
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                if mode == "down":
                    self.close_connection = True
                    return
                status = 200 if mode == "ok" else 500
                body = json.loads(raw) if raw else {}
                receiver._record(Received(time.monotonic(), key, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _record(self, item: Received) -> None:
        with self._lock:
            self.requests.append(item)

    @property
    def url(self) -> str:
        """The Apprise URL of this receiver."""
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def delivered(self) -> list[Received]:
        """The requests answered 200, in order."""
        with self._lock:
            return [r for r in self.requests if r.answered == 200]

    def events(self) -> list[dict[str, Any]]:
        """Every event delivered: a grouped message counts for each event it stands for."""
        out: list[dict[str, Any]] = []
        for item in self.delivered():
            doc = item.event
            if doc["event"] == "group":
                out.extend({"event_id": e, "group": True} for e in doc["event_ids"])
            else:
                out.append(doc)
        return out

    def close(self) -> None:
        self.mode = "ok"
        self.server.shutdown()
        self.server.server_close()


def notify_config(
    directory: Path, sim: Simulator, channels: list[dict[str, Any]], **sections: dict[str, Any]
) -> Path:
    """A config for the simulator with `channels` as its [[notify]] tables."""
    from tests.conftest import SIM_EMAIL  # conftest imports this module

    path = write_config(directory, sim, SIM_EMAIL, **sections)
    lines = [path.read_text()]
    for channel in channels:
        lines.append("[[notify]]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in channel.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def fast(name: str, url: str, **keys: Any) -> dict[str, Any]:
    """A channel that retries quickly, as the tests need."""
    return {
        "name": name,
        "url": url,
        "timeout": "1s",
        "retry_backoff": "100ms",
        "retry_max_backoff": "400ms",
        "max_per_minute": 1000,
        **keys,
    }


def outbox(directory: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(directory / "monitor.db", timeout=30) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM notifications ORDER BY id")]
