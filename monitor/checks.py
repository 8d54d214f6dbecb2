"""`jtm check`: is this installation ready to run? Config, database, token, credentials.

Each check returns a `Check`: what was found, and for a failure the exit code and a one-line
fix. The checks run in order and stop at the first that the next ones depend on (no config,
nothing else to check; no token, no credentials to try). Nothing is created or changed: a
missing database is fine if its folder can be created, and the credentials are tried with one
`GET /myself`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor.config import TOKEN_CREDENTIAL, TOKEN_ENV, Secret, Settings, load_settings, load_token
from monitor.errors import (
    EXIT_CONFIG as EX_CONFIG,
)
from monitor.errors import (
    EXIT_NOPERM as EX_NOPERM,
)
from monitor.errors import (
    EXIT_UNAVAILABLE as EX_UNAVAILABLE,
)
from monitor.errors import (
    ConfigError,
    ConfigFileMissing,
    EmptyDatabaseFile,
    JiraAuthError,
    JiraError,
    JiraNotFound,
    JiraRefused,
    JiraUnreachable,
    MonitorError,
    NotJtmDatabase,
    ReadOnlyStorage,
    StoreError,
)
from monitor.states import Auth

TOKEN_PAGE = "https://id.atlassian.com/manage-profile/security/api-tokens"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    exit_code: int = 0


def run_checks(config_path: Path | None, env: Mapping[str, str] | None = None) -> Iterator[Check]:
    """Every check in order; stops after a failure that the later checks depend on."""
    env = os.environ if env is None else env
    try:
        settings = load_settings(config_path, env)
    except ConfigError as exc:
        yield _config_failure(exc)
        return
    source = str(settings.source) if settings.source else "no config file: defaults and JTM_*"
    try:
        settings.jira.require_url()
    except ConfigError as exc:
        yield Check("config", False, f"{source}: {exc}", _URL_FIX, EX_CONFIG)
        return
    yield Check("config", True, f"{source} (site {settings.jira.url})")
    if settings.notify:
        yield _check_notify(settings)
    yield check_database(settings.database.url)
    try:
        token = load_token(settings, env)
    except ConfigError as exc:
        fix = (
            "put the API token in the file named by jira.token_file, private to this user "
            f"(chmod 600), or in {TOKEN_ENV}"
        )
        yield Check("token", False, str(exc), fix, EX_CONFIG)
        return
    yield Check("token", True, f"from {_token_source(settings, env)}")
    yield check_credentials(settings, token)


def _check_notify(settings: Settings) -> Check:
    """The notification channels can work: Apprise is there for the ones that need it."""
    from monitor.notify.service import check_channels

    try:
        check_channels(settings.notify)
    except ConfigError as exc:
        fix = "install jira-task-monitor[apprise], or correct the channel's url"
        return Check("notify", False, str(exc), fix, EX_CONFIG)
    names = ", ".join(c.name for c in settings.notify)
    return Check("notify", True, f"{len(settings.notify)} channel(s): {names}")


_URL_FIX = "set jira.url to the site, e.g. https://example.atlassian.net (or JTM_JIRA_URL)"


def _config_failure(exc: ConfigError) -> Check:
    if isinstance(exc, ConfigFileMissing):
        fix = "create it (config.example.toml documents every key) or name another with --config"
    else:
        fix = "correct the key named above; config.example.toml documents every key"
    return Check("config", False, str(exc), fix, EX_CONFIG)


def _token_source(settings: Settings, env: Mapping[str, str]) -> str:
    if settings.jira.token_file is not None:
        return f"jira.token_file {settings.jira.token_file}"
    if env.get(TOKEN_ENV, "").strip():
        return TOKEN_ENV
    return f"the systemd credential {TOKEN_CREDENTIAL}"


def check_database(url: str) -> Check:
    """The database can be read and is at this code's schema; a missing one can be created."""
    from sqlalchemy.engine import make_url

    from monitor.database import create_db_engine, describe_url
    from monitor.store.queries import Queries

    where = describe_url(url)
    try:
        make_url(url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError, or ValueError for some inputs
        return Check("database", False, f"{where}: {exc}", "fix database.url", EX_CONFIG)
    if (missing := _missing_file(url, where)) is not None:
        return missing
    try:
        engine = create_db_engine(url)
        try:
            revision = Queries(engine).schema_revision()
        finally:
            engine.dispose()
    except StoreError as exc:
        return Check("database", False, str(exc), _store_fix(exc), EX_CONFIG)
    return _schema_check(where, revision)


def _missing_file(url: str, where: str) -> Check | None:
    """The check for a SQLite file not there yet (fine if it can be created); None otherwise."""
    from monitor.database import read_only_filesystem
    from monitor.sqlite_path import database_name

    if (name := database_name(url)) is None or (file := Path(name).expanduser()).exists():
        return None
    folder = next(p for p in (file.parent, *file.parent.parents) if p.exists())
    if os.access(folder, os.W_OK | os.X_OK):
        return Check("database", True, f"{where}: not created yet (`jtm db upgrade`)")
    fix = f"create {file.parent} writable by this user, or change database.url"
    reason = "cannot create it"
    if read_only_filesystem(folder):
        fix = "remount that file system read-write, or point database.url elsewhere"
        reason = f"cannot create it: the file system holding {folder} is read-only"
    return Check("database", False, f"{where}: {reason}", fix, EX_CONFIG)


def _store_fix(exc: StoreError) -> str:
    if isinstance(exc, EmptyDatabaseFile):
        return "restore the database from a backup, or run `jtm db upgrade` to start anew"
    if isinstance(exc, NotJtmDatabase):
        return "point database.url at jtm's own database file"
    if isinstance(exc, ReadOnlyStorage):
        return "remount that file system read-write, or point database.url at a writable one"
    return (
        "check the permissions of the file and its folder: readers need write access "
        "too (WAL), e.g. join the service's group"
    )


def _schema_check(where: str, revision: str | None) -> Check:
    from monitor.database import SCHEMA_HEAD, SCHEMA_REVISIONS

    if revision == SCHEMA_HEAD:
        return Check("database", True, f"{where}: schema {revision} (current)")
    if revision is None:
        return Check("database", True, f"{where}: empty, created at first use")
    if revision in SCHEMA_REVISIONS:
        fix = "run `jtm db upgrade` (the daemon also upgrades at start)"
        detail = f"{where}: schema {revision}, this jtm needs {SCHEMA_HEAD}"
    else:
        fix = "upgrade jira-task-monitor: the database was written by a newer version"
        detail = f"{where}: schema {revision} is newer than this jtm ({SCHEMA_HEAD})"
    return Check("database", False, detail, fix, EX_CONFIG)


def check_credentials(settings: Settings, token: Secret) -> Check:
    """One `GET /myself`: the site answers, and accepts the credentials."""
    from monitor.jira import JiraClient

    try:
        with JiraClient(settings.jira, token, pool_size=1) as client:
            me = client.myself()
    except JiraAuthError as exc:
        if exc.status == 403:
            fix = "use an account (or token scope) allowed to read the site"
        elif settings.jira.auth == Auth.BEARER:
            fix = "renew the access token (it may have expired)"
        else:
            fix = f"check jira.email and the API token; make a new token at {TOKEN_PAGE}"
        return Check("credentials", False, str(exc), fix, EX_NOPERM)
    except JiraUnreachable as exc:
        fix = "check jira.url, DNS, proxy and firewall (jira.verify_tls for TLS errors)"
        return Check("credentials", False, str(exc), fix, EX_UNAVAILABLE)
    except (JiraNotFound, JiraRefused) as exc:
        return Check("credentials", False, str(exc), f"jira.url is wrong: {_URL_FIX}", EX_CONFIG)
    except JiraError as exc:  # 5xx, 429, a body that is not JSON: the site is in trouble
        fix = "Jira is not answering properly: try again later (https://status.atlassian.com)"
        return Check("credentials", False, str(exc), fix, EX_UNAVAILABLE)
    except MonitorError as exc:  # e.g. a jira.url the client refuses
        return Check("credentials", False, str(exc), _URL_FIX, EX_CONFIG)
    who = me.get("displayName") or me.get("emailAddress") or me.get("accountId") or "someone"
    return Check("credentials", True, f"accepted by {settings.jira.url} as {who}")


def exit_code(checks: list[Check]) -> int:
    """The first failure's exit code, or 0."""
    return next((c.exit_code for c in checks if not c.ok), 0)
