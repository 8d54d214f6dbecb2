"""The client's shortcut past `Session.request` sends what `Session.request` would send.

`monitor.jira.transport` leans on what `requests` does inside `Session.request`
(`prepare_request`, `merge_environment_settings`). These tests compare the two with the
installed `requests`: a version that prepares or merges differently fails here, and the
shortcut must then follow it or go.
"""

from __future__ import annotations

import http.cookiejar
from pathlib import Path

import pytest
import requests
from requests.auth import HTTPBasicAuth

from monitor.jira.transport import METHOD_HEADERS, Templates, settle_environment

BASE = "https://jira.example/ex/jira/cloud-1/rest/api/3"


def _session() -> requests.Session:
    """A session set up as the client sets up its own."""
    session = requests.Session()
    session.headers.update({"Accept": "application/json", "User-Agent": "jtm-test"})
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_copied_template_is_the_request_session_request_prepares(method: str) -> None:
    session = _session()
    auth = HTTPBasicAuth("ops@example.com", "token")
    path = "/task/a%2Fb" + ("/cancel" if method == "POST" else "")
    templates = Templates(session, BASE)
    templates.request(method, "/task/other", auth)  # a copy never changes the template
    ours = templates.request(method, path, auth)
    theirs = session.prepare_request(
        requests.Request(method, BASE + path, headers=METHOD_HEADERS[method], auth=auth)
    )
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert dict(ours.headers) == dict(theirs.headers)
    assert ours.hooks == theirs.hooks


@pytest.mark.parametrize("url", [BASE, "https://jira.internal/rest/api/3"])
@pytest.mark.parametrize("verify_tls", [True, False])
def test_the_settled_environment_is_what_session_request_merges(
    url: str, verify_tls: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "jira.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    settled = _session()
    settle_environment(settled, url, verify_tls)
    monkeypatch.delenv("HTTPS_PROXY")  # read once: later changes are not seen
    ours = settled.merge_environment_settings(url, {}, None, None, None)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    theirs = _session().merge_environment_settings(url, {}, None, verify_tls or False, None)
    assert {**ours, "proxies": dict(ours["proxies"])} == {
        **theirs,
        "proxies": dict(theirs["proxies"]),
    }
    assert ("proxy.example" in str(ours["proxies"])) == (url == BASE)
