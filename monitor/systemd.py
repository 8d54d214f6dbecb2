"""The daemon's side of systemd's service protocol, written against the protocol itself.

- Notifications (sd_notify(3)): one datagram of newline-separated `KEY=VALUE` assignments sent
  to the AF_UNIX socket named by `$NOTIFY_SOCKET`: a filesystem path, or a name in the abstract
  namespace when it starts with `@` (the `@` stands for the leading NUL byte). Without
  `$NOTIFY_SOCKET` every call is a no-op, so the daemon behaves the same outside systemd.
- The watchdog (`WatchdogSec=`): systemd passes `$WATCHDOG_USEC` (and `$WATCHDOG_PID`, the
  process it is meant for); the service must send `WATCHDOG=1` more often than that. `Watchdog`
  sends it at most every half timeout, as sd_watchdog_enabled(3) advises, and only when fed
  evidence of progress, never from a timer: a hung daemon stops feeding it, and systemd
  restarts it.
- The journal: a stream connected to journald is recognised by `$JOURNAL_STREAM` ("DEV:INODE"
  of that stream, systemd.exec(5)); on such a stream each line may start with a syslog
  priority prefix `<N>` (`SyslogLevelPrefix=`, on by default), which journald strips and keeps
  as the entry's priority.

Nothing here imports the rest of the package, so logging can use `is_journal_stream`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any, Protocol

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"
JOURNAL_STREAM_ENV = "JOURNAL_STREAM"


class _Log(Protocol):
    def warning(self, event: str, **kw: Any) -> Any: ...


def notify_address(value: str) -> str | None:
    """The socket address for a `$NOTIFY_SOCKET` value, or None when it names none we can use.

    An absolute path is used as is; `@name` is the abstract-namespace name `\\0name`. Other forms
    (a relative path, newer systemd's `vsock:` addresses) are not supported.
    """
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends sd_notify(3) messages to `$NOTIFY_SOCKET`; thread-safe, never raises.

    A failed send is logged as `systemd.notify_failed` (once, then silently: a notification is
    advice to the service manager, never a reason to stop working).
    """

    def __init__(self, env: Mapping[str, str], log: _Log | None = None) -> None:
        raw = env.get(NOTIFY_SOCKET_ENV, "")
        self.address = notify_address(raw)
        self._log = log
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._warned = False
        if raw and self.address is None:
            self._warn("unsupported address", raw)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=VALUE` assignments in one datagram; True if it was sent."""
        if self.address is None or not assignments:
            return False
        if any("\n" in a or "=" not in a for a in assignments):
            raise ValueError(f"not KEY=VALUE lines: {assignments!r}")
        message = "\n".join(assignments).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                self._sock.sendto(message, self.address)
            except OSError as exc:
                self._warn(exc.strerror or str(exc), self.address.replace("\0", "@"))
                return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={one_line(status)}", f"MAINPID={os.getpid()}")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd >= 253 match the reload to this request; 252 ignores it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str) -> bool:
        return self.notify("STOPPING=1", f"STATUS={one_line(status)}")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={one_line(text)}")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _warn(self, reason: str, address: str) -> None:
        if not self._warned and self._log is not None:
            self._warned = True
            self._log.warning("systemd.notify_failed", address=address, reason=reason)


def one_line(text: str) -> str:
    return " ".join(text.split())


def watchdog_timeout(env: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout in seconds systemd asks this process to honour, or None.

    As sd_watchdog_enabled(3): `$WATCHDOG_USEC` must be a positive integer, and when
    `$WATCHDOG_PID` is set it must be this process (else the variables were inherited).
    """
    try:
        usec = int(env.get(WATCHDOG_USEC_ENV, ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    wanted = env.get(WATCHDOG_PID_ENV, "")
    if wanted and wanted != str(pid):
        return None
    return usec / 1_000_000


class Watchdog:
    """Feeds systemd's watchdog from evidence of progress, never from a timer.

    The caller calls `feed()` when it has such evidence (the daemon: at the end of each tick
    that really finished); `WATCHDOG=1` goes out when half the timeout has passed since the
    last one. A daemon that stops making progress stops the pings, and after `WatchdogSec=`
    systemd kills and restarts it (`Restart=`).
    """

    def __init__(
        self,
        notifier: Notifier,
        env: Mapping[str, str],
        pid: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.timeout_s = watchdog_timeout(env, pid) if notifier.enabled else None
        self.interval_s = None if self.timeout_s is None else self.timeout_s / 2
        self._clock = clock
        self._last_ping = -float("inf")
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.interval_s is not None

    def feed(self) -> bool:
        """Progress was made: ping if one is due. True if a ping was sent."""
        if self.interval_s is None:
            return False
        with self._lock:
            now = self._clock()
            if now - self._last_ping < self.interval_s:
                return False
            self._last_ping = now
        return self.notifier.notify("WATCHDOG=1")


def is_journal_stream(stream: IO[Any], env: Mapping[str, str]) -> bool:
    """True if `stream` is the very stream systemd connected to journald.

    `$JOURNAL_STREAM` is inherited, so a process whose output was redirected (`jtm run | jq`
    from a shell inside a service) must compare device and inode, as systemd.exec(5) says.
    """
    expected = env.get(JOURNAL_STREAM_ENV, "")
    device, _, inode = expected.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        # io.UnsupportedOperation (a StringIO) is an OSError and a ValueError.
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))
