"""HTTP plumbing of the simulator: the threading server and the per-connection handler.

The handler only frames requests and writes `Reply`s; every decision is the site's (`Site`,
which the `Simulator` is, for API requests) or the control module's (/_sim/ requests).
"""

from __future__ import annotations

import itertools
import socket
import struct
import sys
import time
from contextlib import suppress
from dataclasses import replace
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

from monitor.simulator import control
from monitor.simulator.wire import Reply, jira_error

if TYPE_CHECKING:
    from monitor.simulator.server import Simulator


_REQUEST_IDS = itertools.count(1)


class Site(Protocol):
    """What the handler asks of the simulated site: the whole interface between the two."""

    @property
    def chunked(self) -> bool:
        """Send every body chunked, without Content-Length."""
        ...

    def connection_opened(self, connection: socket.socket) -> None: ...

    def connection_closed(self, connection: socket.socket) -> None: ...

    def jira_time(self) -> float:
        """Now on Jira's clock (epoch seconds), for the Date header."""
        ...

    def answer_api(self, method: str, target: str, path: str, headers: Message[str, str]) -> Reply:
        """The answer to one API request (`target` as sent, `path` without the query)."""
        ...


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients vanishing mid-answer (and "reset" faults) are normal here, not worth a
        # traceback on stderr; anything else is a simulator bug and is printed.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class Server6(Server):
    address_family = socket.AF_INET6


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jira-task-simulator"
    sys_version = ""
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus the client's
    # delayed ACK would add ~40 ms to every kept-alive request.
    disable_nagle_algorithm = True
    # Idle kept-alive connections are closed after this long, so abandoned clients of a
    # long-running `jtm simulate` do not pile up threads.
    timeout = 60

    def _site(self) -> Site:
        return cast(Server, self.server).simulator

    def setup(self) -> None:
        super().setup()
        self._site().connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._site().connection_closed(self.connection)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header on Jira's clock (the simulator's, plus its skew)."""
        return formatdate(self._site().jira_time() if timestamp is None else timestamp, usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: per-request logging would slow benchmarks and clutter test output."""

    def do_GET(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        server = cast(Server, self.server)
        if path.startswith(control.PREFIX):
            reply = control.handle(server.simulator, self.command, path, body)
        else:
            reply = self._site().answer_api(self.command, self.path, path, self.headers)
        self._send(reply)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_body(self) -> bytes | None:
        """The request body, read fully so the next request on the connection starts clean;
        None when it cannot be framed (the connection is then answered and closed)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(
                replace(jira_error(411, "Send a Content-Length, not a chunked body"), close=True)
            )
            return None
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self._send(replace(jira_error(400, "Invalid Content-Length"), close=True))
            return None
        return self.rfile.read(int(length)) if int(length) else b""

    def _send(self, reply: Reply) -> None:
        if reply.drop:
            self.close_connection = True
            # Linger 0 turns the close into a TCP RST: the client sees a reset connection.
            with suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            return
        chunked = self._site().chunked
        if reply.drip_s:
            self._headers_buffer: list[bytes] = []  # collect everything, send byte by byte
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(reply.body)))
        request_id = next(_REQUEST_IDS)
        self.send_header("X-AREQUESTID", f"{request_id % 1440}x{request_id}x1")
        self.send_header("ATL-TraceId", f"{request_id:032x}")
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.close:
            self.send_header("Connection", "close")
        body = reply.body
        if chunked:
            body = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
        if reply.drip_s:
            self._drip(b"".join(self._headers_buffer) + b"\r\n" + body, reply.drip_s)
            self._headers_buffer = []
            return
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, data: bytes, every_s: float) -> None:
        """Write `data` one byte every `every_s`; give up once the client has gone."""
        self.close_connection = True
        for index in range(len(data)):
            try:
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(every_s)
