"""The endpoint: `/metrics` over HTTP on a TCP address or a Unix socket, in its own threads.

The client library's handler answers in the Prometheus text format, or in OpenMetrics when
the scraper asks for it (`Accept: application/openmetrics-text`), gzipped on request. Any other
path is a 404. Each request runs in a thread of its own and only reads: the counters in memory
and the census query, so a scrape never waits for a tick nor a tick for a scrape.

A port already taken, an address not on this host, or a socket path in use is a
`ConfigError` (exit 78) at start: the operator must change `[metrics] listen`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import socketserver
import stat
import threading
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler

from monitor.errors import ConfigError
from monitor.metrics.address import ListenAddress

PATH = "/metrics"


class _Handler(MetricsHandler):
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != PATH:
            self.send_error(404, f"only {PATH} is served here")
            return
        super().do_GET()


class _TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 16


class _TCP6Server(_TCPServer):
    address_family = socket.AF_INET6


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class MetricsServer:
    """Serves `registry` at `address` from a background thread until `close()`."""

    def __init__(self, address: ListenAddress, registry: CollectorRegistry) -> None:
        self.address = address
        handler = type("Handler", (_Handler,), {"registry": registry})
        try:
            if address.path is not None:
                _clear_stale_socket(address.path)
                self._server: socketserver.BaseServer = _UnixServer(address.path, handler)
            else:
                cls = _TCP6Server if address.ipv6 else _TCPServer
                self._server = cls((address.host or "", address.port), handler)
        except OSError as exc:
            raise ConfigError(f"metrics.listen = {str(address)!r}: {_why(exc)}") from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="jtm-metrics", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int | None:
        """The TCP port listened on (None for a Unix socket)."""
        if self.address.path is not None:
            return None
        return int(self._server.socket.getsockname()[1])  # type: ignore[attr-defined]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self.address.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.address.path)


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file a killed daemon left behind; refuse one that is in use, or a file
    that is no socket (it is someone else's)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, "a file that is not a socket is in the way")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "another process listens on this socket")


def _why(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use (another process listens there): choose another port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "not an address of this host"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    return f"cannot listen there: {exc.strerror or exc}"
