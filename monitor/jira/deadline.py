"""A deadline for a whole request: connect, headers and body, not each socket read.

`requests`' `timeout` bounds the connect and then every single read: a server (or a proxy)
that sends one byte a second never trips it and holds the calling thread for as long as it
likes. So each request also runs under a `RequestDeadline`: when the deadline passes, a watcher
thread shuts the request's socket down. The blocked read then returns at once (end of
stream, or an error) and the client reports the request as timed out.

The socket is found through `DeadlineAdapter`: its connections record themselves, when a
request is sent on them, in the deadline of the thread sending it (a thread sends one request
at a time). A connection shut down by the deadline is broken, and `urllib3` drops it from the
pool instead of reusing it.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from contextlib import suppress
from types import TracebackType
from typing import Any, Self

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

_current = threading.local()


class RequestDeadline:
    """Bounds one request by `seconds`, from entering the `with` block to leaving it.

    `expired` says whether the deadline passed (and the connection was shut down) before the
    block ended. One shared thread (`_Reaper`) watches every deadline: a timer thread per
    request would cost more than the request's own CPU.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._connection: HTTPConnection | None = None
        self._done = False

    def __enter__(self) -> Self:
        _current.deadline = self
        _REAPER.watch(time.monotonic() + self.seconds, self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._done = True
            self._connection = None
        _current.deadline = None

    def attach(self, connection: HTTPConnection) -> None:
        """The connection this request is sent on (shut down if the deadline has passed)."""
        with self._lock:
            self._connection = connection
            late = self.expired
        if late:
            _shut(connection)

    def expire(self) -> None:
        """The deadline has passed: shut the request's connection down, if it is still going."""
        with self._lock:
            if self._done:
                return
            self.expired = True
            connection = self._connection
        if connection is not None:
            _shut(connection)


class _Reaper:
    """One daemon thread that expires `RequestDeadline`s in time order. Deadlines whose
    request ended stay queued until their time and are then skipped: cheaper than removal."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, RequestDeadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, at: float, deadline: RequestDeadline) -> None:
        with self._cond:
            heapq.heappush(self._queue, (at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jtm-request-deadlines", daemon=True
                )
                self._thread.start()
            elif self._queue[0][2] is deadline:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    if wait is not None and wait <= 0:
                        due = heapq.heappop(self._queue)[2]
                        break
                    self._cond.wait(wait)
            due.expire()


_REAPER = _Reaper()


def _shut(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _attach(connection: HTTPConnection) -> None:
    deadline: RequestDeadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.attach(connection)


class _Connection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)
        super().request(*args, **kwargs)


class _TLSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)
        super().request(*args, **kwargs)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


_POOLS = {"http": _Pool, "https": _TLSPool}


class DeadlineAdapter(HTTPAdapter):
    """An `HTTPAdapter` whose connections (direct or through a proxy) obey `RequestDeadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager
