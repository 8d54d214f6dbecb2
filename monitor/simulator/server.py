"""The simulator's HTTP server: Jira's task API on loopback, for tests, demos and benchmarks.

Threads: one daemon thread accepts connections and one daemon thread serves each connection,
kept alive across requests (HTTP/1.1). All shared state (tasks, faults, log, counters) sits
behind one lock held only for dictionary work: never across socket I/O or a "slow" sleep.
Task state is computed from the clock on each request, so nothing moves in the background.
The HTTP framing lives in `handler`; this module decides every API answer.

Like Jira Cloud, the site answers with a `Date` header on its own clock (which `skew_s` sets
apart from the caller's), request-id headers, `WWW-Authenticate` on 401 with the body in one of
Jira's forms (`error_form`), 403 for a task the account may not see, and optionally chunked
bodies without `Content-Length` (`chunked`) and Jira's XSRF check on POST (`xsrf_check`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, replace
from email.message import Message
from types import FrameType, TracebackType
from urllib.parse import quote, unquote

from monitor.simulator.bulk import bulk_json
from monitor.simulator.faults import Fault, FaultQueue
from monitor.simulator.handler import Server, Server6
from monitor.simulator.scripts import TaskScript, is_expired, task_json, view_at
from monitor.simulator.wire import (
    TEXT_TYPE,
    ErrorForm,
    Reply,
    RequestRecord,
    auth_error,
    bare_error,
    jira_error,
    json_reply,
)

AUTH_MODES = frozenset({"basic", "bearer", "none"})
DEFAULT_EMAIL = "sim@example.com"
DEFAULT_TOKEN = "sim-token"
ACCOUNT_ID = "557058:5b10ac8d-82e0-5b22-cc7d-4ef5simadmin"
NOT_CANCELLABLE = "Cancellation of the task is not possible."
UNAUTHENTICATED = "Client must be authenticated to access this resource."
FORBIDDEN = "You are not authorized to perform this action. Administrator privileges are required."
WWW_AUTHENTICATE = 'OAuth realm="https%3A%2F%2Fsimulated.atlassian.net"'
XSRF_REFUSAL = b"XSRF check failed"

DRIP_DEFAULT_S = 1.0

_API_PATH = re.compile(
    r"/rest/api/(?P<version>[23])/(?:task/(?P<id>[^/]+)(?P<cancel>/cancel)?|myself)"
    r"|/rest/api/3/bulk/queue/(?P<bulk_id>[^/]+)"
)
NOT_BULK_BODY = {  # Jira Cloud's own, a serialised Java Optional included (see the samples)
    "errorMessages": ["The task associated with this taskId is not a bulk operation task"],
    "errors": {},
    "httpStatusCode": {"empty": False, "present": True},
}


@dataclass(frozen=True, slots=True)
class _Route:
    """A recognised API path: `task_id` is None for /myself; `bulk` for /bulk/queue/{id}."""

    version: str
    task_id: str | None
    cancel: bool
    bulk: bool = False


def _parse_route(path: str) -> _Route | None:
    match = _API_PATH.fullmatch(path)
    if match is None:
        return None
    if match.group("bulk_id") is not None:
        return _Route("3", unquote(match.group("bulk_id")), cancel=False, bulk=True)
    raw_id = match.group("id")
    task_id = None if raw_id is None else unquote(raw_id)
    return _Route(match.group("version"), task_id, match.group("cancel") is not None)


@dataclass(slots=True)
class _Task:
    script: TaskScript
    created: float
    cancel_at: float | None = None


def _shown(task: _Task | None, task_id: str, now: float) -> _Task | Reply:
    """The task a GET may show, or Jira's refusal: 404 for one unknown or expired (Jira
    forgets tasks), 403 for one the account may not see."""
    if task is None or is_expired(task.script, task.created, now):
        return jira_error(404, f"Task with id {task_id} does not exist")
    if task.script.forbidden:
        return jira_error(403, FORBIDDEN)
    return task


class Simulator:
    """A Jira Cloud site that only knows the task API, served on a real loopback socket.

    `auth` is "basic" (Authorization: Basic base64(email:token)), "bearer" ("Bearer <token>")
    or "none"; wrong or missing credentials answer 401. `clock` gives the simulator's time in
    epoch seconds: task lifecycles and RequestRecord.at follow it, so a test can move it by hand.
    Jira's own clock (its tasks' times and the `Date` header) is `clock() + skew_s`.
    `error_form` is the body of a 401; `chunked` sends every body chunked, without
    Content-Length; `xsrf_check` refuses a POST without `X-Atlassian-Token: no-check` with
    403 "XSRF check failed". Usable as a context manager (start on enter, stop on exit).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auth: str = "basic",
        email: str = DEFAULT_EMAIL,
        token: str = DEFAULT_TOKEN,
        clock: Callable[[], float] = time.time,
        skew_s: float = 0.0,
        error_form: ErrorForm = ErrorForm.MESSAGE,
        chunked: bool = False,
        xsrf_check: bool = False,
    ) -> None:
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {', '.join(sorted(AUTH_MODES))}, not {auth!r}")
        self._host = host
        self._port = port
        self._auth = auth
        self._email = email
        self._token = token
        self._credentials = f"{email}:{token}".encode()
        self._clock = clock
        self.skew_s = skew_s
        self.error_form = ErrorForm(error_form)
        self.chunked = chunked
        self.xsrf_check = xsrf_check
        self._lock = threading.Lock()
        self._tasks: dict[tuple[str, str], _Task] = {}  # by (kind, id)
        self._faults = FaultQueue()
        self._log: list[RequestRecord] = []
        self._cancels: dict[str, int] = {}
        self._connections: set[socket.socket] = set()
        self._connection_count = 0
        self._in_flight = 0
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind (port 0: any free port) and serve from a background daemon thread."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        server_class = Server6 if ":" in self._host else Server
        server = server_class((self._host, self._port), self)
        self._port = server.server_address[1]
        # A short poll interval keeps stop() quick: tests start and stop many simulators.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"jira-simulator-{self._port}",
            daemon=True,
        )
        self._server = server
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close every open connection. Idempotent; tasks and log are kept."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        # Kept-alive connections each hold a thread blocked on a read: shutting their sockets
        # down wakes them, and clients see the site go away instead of a zombie answering.
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the requested one before the first start)."""
        return self._port

    @property
    def url(self) -> str:
        """The Jira site base URL, e.g. "http://127.0.0.1:PORT"."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def in_flight(self) -> int:
        """API requests received and not yet answered (lets tests act while one is pending)."""
        with self._lock:
            return self._in_flight

    @property
    def connection_count(self) -> int:
        """TCP connections accepted since construction (lets tests check keep-alive)."""
        with self._lock:
            return self._connection_count

    def jira_time(self) -> float:
        """Jira's clock, epoch seconds: the simulator clock plus `skew_s`."""
        return self._clock() + self.skew_s

    # -- scripting and inspection -------------------------------------------------------------

    def add_task(self, script: TaskScript) -> None:
        """Add a task, created now on the simulator clock; re-adding an id (of the same kind)
        replaces it."""
        with self._lock:
            self._tasks[script.kind, script.task_id] = _Task(script, self.jira_time())

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault; faults apply in FIFO order, one per matching API request."""
        with self._lock:
            self._faults.add(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests_log(self) -> list[RequestRecord]:
        """A copy of every API request seen, in the order their answers were decided."""
        with self._lock:
            return list(self._log)

    def cancel_count(self, task_id: str) -> int:
        """POST .../cancel requests received for `task_id`, whatever their answer."""
        with self._lock:
            return self._cancels.get(task_id, 0)

    def reset(self) -> None:
        """Forget tasks, faults, the request log and cancel counts."""
        with self._lock:
            self._tasks.clear()
            self._faults.clear()
            self._log.clear()
            self._cancels.clear()

    # -- serving: the `handler.Site` interface, called from connection threads ---------------

    def connection_opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            self._connection_count += 1

    def connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def answer_api(self, method: str, target: str, path: str, headers: Message[str, str]) -> Reply:
        """Answer one API request: the first matching fault, else Jira's answer. The request is
        logged (and a cancel counted) before the answer is written, so a client that has its
        answer can rely on the log."""
        received = time.monotonic()
        route = _parse_route(path)
        task_id = route.task_id if route else None
        with self._lock:
            self._in_flight += 1
            at = self._clock()
            if route is not None and route.cancel and method == "POST" and task_id is not None:
                self._cancels[task_id] = self._cancels.get(task_id, 0) + 1
            fault = self._faults.take(method, task_id)
        try:
            reply = None if fault is None else fault.reply(task_id, self.jira_time())
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay_s)
            if reply is None:
                reply = self._answer_jira(method, path, route, headers)
            if fault is not None and fault.kind == "drip":
                reply = replace(reply, drip_s=fault.delay_s or DRIP_DEFAULT_S)
            with self._lock:
                self._log.append(RequestRecord(method, target, task_id, reply.status, at, received))
        finally:
            with self._lock:
                self._in_flight -= 1
        return reply

    def _answer_jira(
        self, method: str, path: str, route: _Route | None, headers: Message[str, str]
    ) -> Reply:
        if not self._authorized(headers.get("Authorization")):
            return auth_error(
                self.error_form, UNAUTHENTICATED, (("WWW-Authenticate", WWW_AUTHENTICATE),)
            )
        token_header = (headers.get("X-Atlassian-Token") or "").lower()
        if self.xsrf_check and method == "POST" and token_header != "no-check":
            return Reply(403, XSRF_REFUSAL, TEXT_TYPE)
        if route is None:
            return jira_error(404, f"No resource found at {path}")
        allowed = "POST" if route.cancel else "GET"
        if method != allowed:
            reply = jira_error(405, f"Method {method} is not allowed on {path}")
            return replace(reply, headers=(("Allow", allowed),))
        if route.task_id is None:
            account = {
                "accountId": ACCOUNT_ID,
                "emailAddress": self._email,
                "displayName": "Simulated Admin",
            }
            return json_reply(200, account)
        if route.bulk:
            return self._get_bulk(route.task_id)
        if route.cancel:
            return self._cancel(route.task_id)
        host = headers.get("Host") or self.url.removeprefix("http://")
        self_url = f"http://{host}/rest/api/{route.version}/task/{quote(route.task_id, safe='')}"
        return self._get_task(route.task_id, self_url)

    def _authorized(self, header: str | None) -> bool:
        if self._auth == "none":
            return True
        if header is None:
            return False
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if self._auth == "bearer":
            token = credentials.encode()
            return scheme.lower() == "bearer" and hmac.compare_digest(token, self._token.encode())
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded, self._credentials)

    def _get_task(self, task_id: str, self_url: str) -> Reply:
        with self._lock:
            now = self.jira_time()
            task = self._tasks.get(("task", task_id))
            cancel_at = None if task is None else task.cancel_at
        shown = _shown(task, task_id, now)
        if isinstance(shown, Reply):
            return shown
        view = view_at(shown.script, shown.created, cancel_at, now)
        return json_reply(200, task_json(shown.script, view, self_url))

    def _get_bulk(self, task_id: str) -> Reply:
        """`GET /bulk/queue/{id}`: 400 when the id is a task's and not a bulk operation's."""
        with self._lock:
            now = self.jira_time()
            task = self._tasks.get(("bulk", task_id))
            other = self._tasks.get(("task", task_id))
        if task is None and other is not None:
            return json_reply(400, NOT_BULK_BODY)
        shown = _shown(task, task_id, now)
        if isinstance(shown, Reply):
            return shown
        view = view_at(shown.script, shown.created, None, now)
        return json_reply(200, bulk_json(shown.script, view, ACCOUNT_ID))

    def _cancel(self, task_id: str) -> Reply:
        # Decide and record under one lock: two concurrent cancels cannot both be "the" cancel.
        with self._lock:
            now = self.jira_time()
            task = self._tasks.get(("task", task_id))
            if task is None or is_expired(task.script, task.created, now):
                return bare_error(404, f"Task with id {task_id} does not exist")
            if task.script.forbidden or task.script.cancel_forbidden:
                return bare_error(403, FORBIDDEN)
            view = view_at(task.script, task.created, task.cancel_at, now)
            if not task.script.cancellable or view.finished is not None:
                return bare_error(400, NOT_CANCELLABLE)
            if task.cancel_at is None and not task.script.ignore_cancel:
                task.cancel_at = now
        return json_reply(202, {})


def serve(
    port: int,
    scripts: Iterable[TaskScript],
    *,
    host: str = "127.0.0.1",
    auth: str = "basic",
    email: str = DEFAULT_EMAIL,
    token: str = DEFAULT_TOKEN,
    on_ready: Callable[[Simulator], None] | None = None,
) -> None:
    """Serve `scripts` until Ctrl-C or SIGTERM, then stop (blocking; used by `jtm simulate`).

    The scripts are added once the socket is bound, so their clocks start when the site is
    reachable; `on_ready` is then called with the running simulator (to print its URL). SIGTERM
    is handled only when called from the main thread, and the previous handler is restored.
    """
    stopping = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
    simulator = Simulator(host=host, port=port, auth=auth, email=email, token=token)
    try:
        simulator.start()
        for script in scripts:
            simulator.add_task(script)
        if on_ready is not None:
            on_ready(simulator)
        # A timed wait keeps the main thread responsive to Ctrl-C on every platform.
        while not stopping.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
