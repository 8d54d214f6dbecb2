"""The client's shortcut past `requests.Session.request`: requests prepared once, copied per call.

`Session.request` re-reads the environment (two `getproxies_environment()` scans of
`os.environ`) and re-merges the session's headers, hooks, cookies and auth on every call:
together ~0.25 ms of CPU, 40% of a GET (docs/benchmarks.md). A client talks to one origin, so
`settle_environment` takes what the environment says for it once, and `Templates` prepares one
request per method once; each request is a copy with its URL and credentials set.

Both lean on what `requests` does inside `Session.request` (`prepare_request`,
`merge_environment_settings`). tests/test_jira_transport.py compares the outcome with what
`Session.request` itself would send, so a `requests` that changes its behaviour fails there.
"""

from __future__ import annotations

import os

import requests
from requests.auth import AuthBase

# What go-atlassian and atlassian-python-api send on a body-less POST is Accept only; the
# token header is what Atlassian documents to skip the XSRF check, which a POST can trip.
METHOD_HEADERS: dict[str, dict[str, str]] = {
    "GET": {},
    "POST": {"X-Atlassian-Token": "no-check"},
}


def settle_environment(session: requests.Session, url: str, verify_tls: bool) -> None:
    """What `requests` would take from the environment for each request to `url` (proxies,
    unless NO_PROXY exempts the host; a CA bundle), taken once; then stop it looking again.

    Every request of a client goes to the same origin, so the answer cannot differ between
    requests; only a change of the environment after start would be missed, and a daemon
    reads its environment at start anyway. `~/.netrc`, the other thing `trust_env` reads, is
    never used: the client always sets its own credentials.
    """
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.verify = (bundle or True) if verify_tls else False
    session.trust_env = False


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Leaves a template without credentials: they are set on each copy, at send time."""
    return request


class Templates:
    """One request prepared per method (`METHOD_HEADERS`) on `session`, for URLs below `base`.

    The base URL is normalised once, by the code `Session.request` would run each time; the
    paths appended to it must already be percent-encoded ASCII.
    """

    def __init__(self, session: requests.Session, base: str) -> None:
        self._prepared = {
            method: session.prepare_request(
                requests.Request(method, base, headers=headers, auth=_no_auth)
            )
            for method, headers in METHOD_HEADERS.items()
        }
        self._base = str(self._prepared["GET"].url)

    def request(self, method: str, path: str, auth: AuthBase) -> requests.PreparedRequest:
        """A copy of `method`'s template for `base + path`, with `auth` applied."""
        prepared = self._prepared[method].copy()
        prepared.url = self._base + path
        result: requests.PreparedRequest = auth(prepared)
        return result
