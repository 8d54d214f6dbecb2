"""The Jira client: the one place where HTTP and transport failures become `JiraError`s.

Contract:
- URLs are rebuilt from the configured base (`jira.url`, which may carry a path such as
  `https://api.atlassian.com/ex/jira/<cloudId>`), never from a task's `self`.
- No retries and no logging here: the client raises, and the caller decides from
  `JiraError.transient` and logs.
- Every request first passes the per-site `SiteGate` (pacing and pauses). On a 429, or a 5xx
  carrying `Retry-After`, the client tells the gate (`SiteGate.rate_limited`), which pauses
  *every* worker of the site for Retry-After, else until `X-RateLimit-Reset`, else an
  exponential backoff; a 2xx resets the backoff. `RateLimit-Reason` is kept on the error.
- `jira.timeout` bounds the whole request (connect, headers and body: `RequestDeadline`), not
  each socket read, so a server that drips its answer costs one worker that long at most.
- 401 is the credentials' problem and counts towards a pause of the site; 403 on a task is
  that task's (`JiraForbidden`: the account is neither a Jira admin nor its creator).
- A body-less POST carries what Atlassian's own clients send (`Accept: application/json`,
  no Content-Type) plus `X-Atlassian-Token: no-check`, so Jira's XSRF check never refuses it.
- Response bodies over `MAX_BODY_BYTES` are refused (`JiraBadResponse`), decompressed size.
- Redirects are not followed: a 3xx means `jira.url` is wrong, and following one would either
  drop the credentials (other host) or turn a POST into a GET.
- Error messages carry the operation, the HTTP status, a hint and Jira's own error text
  (one line, at most ~200 characters); never headers, credentials or an HTML page.
- Thread-safe: one client (one `requests.Session`, a pool of `pool_size` connections) serves
  all worker threads. Cookies are refused, so every request stands on its own credentials.
- Cheap per request, as the daemon sends thousands: the environment (`HTTPS_PROXY`,
  `NO_PROXY`, `REQUESTS_CA_BUNDLE`) is read once, when the client is made, and each request
  is a copy of one prepared per method (`monitor.jira.transport`). `Session.request` would
  re-read the environment and re-merge the session's settings every time: together ~0.25 ms
  of CPU, 40% of a GET (docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import http.cookiejar
import time
from collections.abc import Mapping
from dataclasses import replace
from types import TracebackType
from typing import Self
from urllib.parse import quote

import requests
from requests.auth import AuthBase

from monitor import __version__
from monitor.config import JiraSettings, Secret, credential_forms
from monitor.errors import (
    ClientClosed,
    JiraAuthError,
    JiraBadResponse,
    JiraError,
    JiraForbidden,
    JiraNotFound,
    JiraRateLimited,
    JiraRefused,
    JiraServerError,
    JiraUnreachable,
)
from monitor.jira.bulk import parse_bulk
from monitor.jira.deadline import DeadlineAdapter, RequestDeadline
from monitor.jira.diagnosis import (
    jira_error_text,
    json_or_none,
    one_line,
    origin,
    origin_and_path,
    reason,
    show_id,
    transport_reason,
)
from monitor.jira.pacing import SiteGate, http_date, rate_limit_reset_seconds, retry_after_seconds
from monitor.jira.payload import TaskInfo, parse_task
from monitor.jira.transport import Templates, settle_environment
from monitor.metrics.site import NO_SITE_TELEMETRY, SiteTelemetry
from monitor.states import Auth, TaskKind
from monitor.taskref import TaskRef, as_ref

__all__ = [
    "DEFAULT_USER_AGENT",
    "MAX_BODY_BYTES",
    "JiraClient",
    "retry_after_seconds",
]

DEFAULT_USER_AGENT = f"jira-task-monitor/{__version__}"
MAX_BODY_BYTES = 1024 * 1024


class _Auth(AuthBase):
    """Sets the Authorization header at send time; holds the token only as a `Secret`."""

    def __init__(self, scheme: Auth, email: str | None, token: Secret) -> None:
        self._scheme = scheme
        self._email = email or ""
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._scheme == Auth.BEARER:
            r.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        else:
            pair = f"{self._email}:{self._token.reveal()}".encode()
            r.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return r

    def __repr__(self) -> str:
        return f"_Auth({self._scheme})"


class JiraClient:
    """Talks to one Jira site's task API. See the module docstring for the contract.

    `gate` is the site's shared budget; by default the client makes its own from
    `settings.max_rps` and closes it in `close()`. A gate passed in belongs to the caller, who
    closes it (that wakes threads waiting in a pause).
    """

    def __init__(
        self,
        settings: JiraSettings,
        token: Secret,
        *,
        pool_size: int = 4,
        gate: SiteGate | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        telemetry: SiteTelemetry = NO_SITE_TELEMETRY,
    ) -> None:
        """`telemetry` is told each request's status and duration (`monitor.metrics`)."""
        self._telemetry = telemetry
        # `settings` were checked when loaded (`config_keys.jira_url`): the URL is trusted as is.
        self._base = settings.require_url()
        self._origin = origin(self._base)
        self._api = f"{self._base}/rest/api/{settings.api_version}"
        self._settings = settings
        self._token = token
        self._owns_gate = gate is None
        self.gate = gate if gate is not None else SiteGate(settings.max_rps)
        self._closed = False

        session = requests.Session()
        adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=max(1, pool_size), max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        settle_environment(session, self._api, settings.verify_tls)
        self._auth = _Auth(settings.auth, settings.email, token)
        session.auth = self._auth
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        session.headers.update({"Accept": "application/json", "User-Agent": user_agent})
        self._session = session
        # Every request is a copy of one prepared per method (headers, hooks, the empty cookie
        # jar, Content-Length of a body-less POST), its URL and credentials set at send time;
        # the paths appended are already percent-encoded ASCII (`_task_path`). The bulk queue
        # exists only in v3, whatever `jira.api_version` says.
        self._templates = Templates(session, self._api)
        self._v3_templates = Templates(session, f"{self._base}/rest/api/3")

    # -- operations ------------------------------------------------------------------------

    def get_task(self, ref: TaskRef | str) -> TaskInfo:
        """The task as Jira reports it now: `GET /task/{id}` for a task, `GET /rest/api/3/
        bulk/queue/{id}` for a bulk operation (whatever `jira.api_version`: it has no v2).

        The kind chooses only the URL and the parser; the answers are handled alike (a 400
        for a bulk ID is Jira saying the ID is not a bulk operation task).
        """
        ref = as_ref(ref)  # a plain string: the ID of a task of kind `task`
        task_id = ref.task_id
        if ref.kind == TaskKind.BULK:
            what = f"get bulk task {show_id(task_id)}"
            path = _BULK_QUEUE + self._task_path(task_id)[len("/task") :]
            status, body, headers = self._request("GET", path, what, v3=True)
            parse = parse_bulk
        else:
            what = f"get task {show_id(task_id)}"
            status, body, headers = self._request("GET", self._task_path(task_id), what)
            parse = parse_task
        try:
            info = parse(body, expected_id=task_id)
        except JiraBadResponse as exc:
            message = f"{what}: HTTP {status}: {exc}"
        else:
            return replace(info, server_time=http_date(headers.get("Date")))
        raise JiraBadResponse(message, status=status)

    def cancel_task(self, task_id: str) -> None:
        """`POST /task/{id}/cancel`: ask Jira to stop the task (any 2xx, normally 202).

        Success only means Jira accepted the request: the task goes through `CANCEL_REQUESTED`
        to `CANCELLED`, or may still finish. A task that cannot be cancelled is `JiraRefused`
        (400) with Jira's text in the message; 403 is `JiraForbidden` naming the permission
        missing; 415 and an XSRF refusal are `JiraRefused` saying so.
        """
        what = f"cancel task {show_id(task_id)}"
        self._request("POST", self._task_path(task_id) + "/cancel", what, cancel=True)

    def myself(self) -> dict[str, object]:
        """`GET /myself`: the authenticated user; a cheap credentials check for `jtm check`."""
        what = "check credentials (GET /myself)"
        status, body, _headers = self._request("GET", "/myself", what, site=True)
        data = json_or_none(body)
        if not isinstance(data, dict):
            raise JiraBadResponse(
                f"{what}: HTTP {status}: body is not a JSON object", status=status
            )
        return data

    def close(self) -> None:
        """Release connections; later calls raise `JiraUnreachable("client closed")`."""
        self._closed = True
        if self._owns_gate:
            self.gate.close()
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JiraClient(url={self._base!r}, auth={str(self._settings.auth)!r})"

    # -- plumbing --------------------------------------------------------------------------

    def _task_path(self, task_id: str) -> str:
        # "." and ".." would be collapsed by URL normalisation (here or in a proxy) into a
        # different endpoint; requests undoes %2E, so they are refused instead. The CLI only
        # lets letters, digits, "-" and "_" through anyway.
        if task_id in ("", ".", ".."):
            raise ValueError(f"not a task id: {task_id!r}")
        return "/task/" + quote(task_id, safe="")

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        site: bool = False,
        cancel: bool = False,
        v3: bool = False,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """Send one request; return the status, body and headers of a 2xx answer, or raise
        a `JiraError`. `site`: the request is about the site, not a task (a 403 is then the
        credentials'); `cancel`: the request is a cancel (its 403 and 415 say so); `v3`: the
        path is under `/rest/api/3` whatever `jira.api_version` says."""
        if self._closed:
            raise ClientClosed()
        self.gate.acquire()
        started = time.perf_counter()
        timeout = self._settings.timeout_s
        with RequestDeadline(timeout) as deadline:
            sent = self._exchange(method, path, what, timeout, v3=v3)
        answered = None if isinstance(sent, JiraError) or deadline.expired else sent[0]
        self._telemetry.request(
            None if answered is None else answered.status_code, time.perf_counter() - started
        )
        if deadline.expired:
            # Whatever the shut-down socket made of the answer (an error, or a body cut short
            # that would look complete without a Content-Length), it is not an answer.
            late = f"timeout after {timeout:g}s (no complete answer)"
            raise JiraUnreachable(self._scrub(f"cannot reach {self._origin}: {late}"))
        if isinstance(sent, JiraError):
            raise sent
        response, body, overflow = sent
        status = response.status_code
        if 200 <= status < 300:
            if overflow:
                raise JiraBadResponse(
                    f"{what}: response too large (over {MAX_BODY_BYTES} bytes)", status=status
                )
            self.gate.succeeded()
            return status, body, response.headers
        raise self._http_error(what, response, body, site=site, cancel=cancel)

    def _exchange(
        self, method: str, path: str, what: str, timeout: float, *, v3: bool
    ) -> tuple[requests.Response, bytes, bool] | JiraError:
        """Send the request and read its answer (the caller bounds both by a deadline): the
        response, its body (capped) and whether it overflowed the cap, or the `JiraError` of
        a transport failure, returned rather than raised."""
        try:
            templates = self._v3_templates if v3 else self._templates
            prepared = templates.request(method, path, self._auth)
            response = self._session.send(
                prepared, timeout=timeout, stream=True, allow_redirects=False
            )
            try:
                body, overflow = _read_capped(response)
            finally:
                response.close()
        except requests.exceptions.ContentDecodingError:
            return JiraBadResponse(f"{what}: body could not be decoded")
        except (requests.RequestException, OSError) as exc:
            # Built here, raised by the caller: the original exception (which references the
            # prepared request and so its Authorization header) is neither chained nor kept.
            return JiraUnreachable(self._transport_message(exc))
        return response, body, overflow

    def _http_error(
        self,
        what: str,
        response: requests.Response,
        body: bytes,
        *,
        site: bool = False,
        cancel: bool = False,
    ) -> JiraError:
        """The `JiraError` for a non-2xx answer, telling the gate what it needs to know."""
        status = response.status_code
        text = self._scrub(jira_error_text(self._scrub_body(body)) or "")
        said = f": {text}" if text else ""
        if status == 429 or (status >= 500 and response.headers.get("Retry-After")):
            return self._rate_limited(what, status, response.headers, said)
        if status >= 500:
            return JiraServerError(f"{what}: HTTP {status} {reason(response)}{said}", status=status)
        if status in (401, 403):
            return self._refused(what, status, text, site=site, cancel=cancel)
        if status == 415:
            return JiraRefused(
                f"{what}: HTTP 415: Jira refused the request's media type "
                f"(Content-Type/Accept){said}",
                status=status,
            )
        if status == 404:
            return JiraNotFound(f"{what}: HTTP 404: not found{said}", status=status)
        if 400 <= status < 500:
            return JiraRefused(
                f"{what}: HTTP {status}: {text or reason(response) or 'refused'}", status=status
            )
        if 300 <= status < 400:
            target = origin_and_path(response.headers.get("Location", ""))
            return JiraRefused(
                f"{what}: HTTP {status}: Jira redirected to {target or 'elsewhere'}; "
                "check jira.url",
                status=status,
            )
        return JiraBadResponse(f"{what}: unexpected HTTP {status}", status=status)

    def _rate_limited(
        self, what: str, status: int, headers: Mapping[str, str], said: str
    ) -> JiraRateLimited:
        """A 429 (or a 5xx with Retry-After): the whole site pauses, for as long as Jira says."""
        retry_after = retry_after_seconds(headers.get("Retry-After"))
        shown = f"Retry-After {retry_after:g}s" if retry_after is not None else "no Retry-After"
        if retry_after is None:
            reset = rate_limit_reset_seconds(headers.get("X-RateLimit-Reset"))
            if reset is not None:
                retry_after = reset
                shown = f"X-RateLimit-Reset in {reset:g}s"
        why = one_line(self._scrub(headers.get("RateLimit-Reason", "")), 80) or None
        because = f"; reason {why}" if why else ""
        pause = self.gate.rate_limited(retry_after)
        return JiraRateLimited(
            f"{what}: HTTP {status}: rate limited{said} ({shown}{because}; all requests to "
            f"the site paused for {pause:.1f}s)",
            status=status,
            retry_after_s=retry_after,
            pause_s=pause,
            reason=why,
        )

    def _refused(self, what: str, status: int, text: str, *, site: bool, cancel: bool) -> JiraError:
        """A 401 or 403: the credentials' problem, the XSRF check's, or one task's (403)."""
        said = f": {text}" if text else ""
        if status == 401:
            hint = (
                "credentials rejected (check the access token)"
                if self._settings.auth == Auth.BEARER
                else "credentials rejected (check jira.email and the API token)"
            )
            return JiraAuthError(
                f"{what}: HTTP 401: {hint}{said}{self._auth_pause()}", status=status
            )
        if _XSRF_REFUSAL in text.lower():
            return JiraRefused(
                f"{what}: HTTP 403: Jira's XSRF check refused the request "
                f"(X-Atlassian-Token: no-check was not honoured, a proxy may strip it){said}",
                status=status,
            )
        if site:
            return JiraAuthError(
                f"{what}: HTTP 403: forbidden: the credentials may not use the REST API "
                f"(or the token lacks the scope){said}{self._auth_pause()}",
                status=status,
            )
        refused = self.gate.forbidden()
        paused = (
            "" if refused is None else f" (every request refused: all requests paused {refused:g}s)"
        )
        needs = (
            "cancel it (needs Administer Jira or being its creator, and a token that may "
            "write: scope write:jira-work)"
            if cancel
            else "see it (needs Administer Jira or being its creator)"
        )
        return JiraForbidden(
            f"{what}: HTTP 403: forbidden: the account is not a Jira admin nor the task's "
            f"creator, so it may not {needs}{said}{paused}",
            status=status,
        )

    def _auth_pause(self) -> str:
        pause = self.gate.credentials_rejected()
        return (
            "" if pause is None else f" (refused again and again: all requests paused {pause:g}s)"
        )

    def _transport_message(self, exc: BaseException) -> str:
        timeout = f"{self._settings.timeout_s:g}s"
        return self._scrub(f"cannot reach {self._origin}: {transport_reason(exc, timeout)}")

    def _scrub_body(self, body: bytes) -> bytes:
        """The body with the credentials scrubbed before its text is cut to length, which
        could otherwise leave part of one (as JSON may write it: `/` as `\\/`)."""
        for form in credential_forms(self._settings, self._token):
            for written in {form, form.replace("/", "\\/")}:
                if len(written) >= 4:
                    body = body.replace(written.encode(), b"********")
        return body

    def _scrub(self, text: str) -> str:
        """Belt and braces: whatever a server echoes (the token, or the whole Authorization
        header it was sent), no form of the credentials leaves in a message."""
        for form in credential_forms(self._settings, self._token):
            if len(form) >= 4:
                text = text.replace(form, "********")
        return text


# -- helpers --------------------------------------------------------------------------------

_XSRF_REFUSAL = "xsrf check failed"
_BULK_QUEUE = "/bulk/queue"


def _read_capped(response: requests.Response) -> tuple[bytes, bool]:
    """The body, read (and decompressed) up to `MAX_BODY_BYTES` + 1; True if it was larger."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return b"", True
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            return b"".join(chunks)[: MAX_BODY_BYTES + 1], True
    return b"".join(chunks), False
