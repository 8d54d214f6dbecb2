"""Standing in for systemd: a $NOTIFY_SOCKET listener, and a journald-connected stdout."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import JTM, wait_for


@dataclass(frozen=True)
class Message:
    at: float  # time.monotonic() when received
    fields: dict[str, str]


class NotifyListener:
    """An AF_UNIX datagram socket, as systemd binds for a Type=notify service.

    `address` is what goes into $NOTIFY_SOCKET: `@name` (abstract namespace) by default, or a
    filesystem path when `path` is given.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:
            name = f"jtm-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.1)
        self.messages: list[Message] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            lines = data.decode().split("\n")
            fields = dict(line.split("=", 1) for line in lines)
            self.messages.append(Message(time.monotonic(), fields))

    def with_key(self, key: str, value: str | None = None) -> list[Message]:
        return [
            m
            for m in list(self.messages)
            if key in m.fields and (value is None or m.fields[key] == value)
        ]

    def statuses(self) -> list[str]:
        return [m.fields["STATUS"] for m in self.with_key("STATUS")]

    def wait(self, key: str, value: str | None = None, count: int = 1, timeout: float = 30) -> None:
        wait_for(
            lambda: len(self.with_key(key, value)) >= count, timeout, f"{count} x {key}={value}"
        )

    def wait_status(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found.extend(m for s in self.statuses() if (m := re.search(pattern, s)))
            return bool(found)

        wait_for(seen, timeout, f"STATUS matching {pattern!r}")
        return found[0]

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self.sock.close()


def same_stream(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


class JournalDaemon:
    """`jtm run` whose stdout is a pipe announced in $JOURNAL_STREAM, as systemd does when
    `StandardOutput=journal`: the daemon must recognise the stream by device and inode.

    `journal_stream` makes the variable from the pipe's stat (None: leave it unset);
    `wrapper` goes before the command (e.g. strace, or the MemoryDenyWriteExecute= filter).
    """

    def __init__(
        self,
        config: Path,
        env: dict[str, str],
        journal_stream: Callable[[os.stat_result], str] | None = same_stream,
        wrapper: Sequence[str] = (),
    ) -> None:
        read_end, write_end = os.pipe()
        if journal_stream is not None:
            env = {**env, "JOURNAL_STREAM": journal_stream(os.fstat(write_end))}
        self.proc = subprocess.Popen(
            [*wrapper, *JTM, "--config", str(config), "run"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        os.close(write_end)
        self._out = os.fdopen(read_end, "r")
        self.lines: list[str] = []
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._out:
            self.lines.append(line.rstrip("\n"))

    def entries(self) -> list[tuple[int | None, dict[str, Any]]]:
        """(priority, message) as journald stores each line: a `<N>` prefix (N a single digit)
        is taken off as the priority; without one journald uses the stream's default."""
        parsed = []
        for line in list(self.lines):
            match = re.fullmatch(r"<([0-7])>(.*)", line)
            priority, message = (int(match[1]), match[2]) if match else (None, line)
            parsed.append((priority, json.loads(message)))
        return parsed

    def wait_event(self, name: str, timeout: float = 30) -> None:
        wait_for(lambda: any(e["event"] == name for _, e in self.entries()), timeout, name)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        self._out.close()
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        return code
