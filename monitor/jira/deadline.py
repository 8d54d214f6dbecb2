"""A deadline for a whole request: connect, headers and body, not each socket read.

`requests`' `timeout` bounds the connect and then every single read: a server (or a proxy)
that sends one byte a second never trips it and holds the calling thread for as long as it
likes. So each request also runs under a `RequestDeadline`: a timer that, when the deadline
passes, shuts the request's socket down. The blocked read then returns at once (end of
stream, or an error) and the client reports the request as timed out.

The socket is found through `DeadlineAdapter`: its connections record themselves, when a
request is sent on them, in the deadline of the thread sending it (a thread sends one request
at a time). A connection shut down by the deadline is broken, and `urllib3` drops it from the
pool instead of reusing it.
"""

from __future__ import annotations

import socket
import threading
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
    block ended. A timer thread per request costs ~0.1 ms: small beside a request.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._connection: HTTPConnection | None = None
        self._done = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Self:
        _current.deadline = self
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
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

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            connection = self._connection
        if connection is not None:
            _shut(connection)


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
