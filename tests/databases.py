"""The databases the store, daemon and CLI suites run on: SQLite always, PostgreSQL when
`TEST_POSTGRESQL_URL` names a server (`make test-postgresql` starts a throwaway one).

Each PostgreSQL test gets a schema of its own on that server, named in the URL's
`search_path`, and dropped afterwards: as fresh as a new SQLite file, and far faster than a
database per test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRESQL_ENV = "TEST_POSTGRESQL_URL"
BACKENDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql))
NO_SERVER = f"PostgreSQL: set {POSTGRESQL_ENV} (`make test-postgresql` starts a server)"


def postgresql_server() -> str | None:
    """The test server's URL (`postgresql+psycopg://...`), or None."""
    return os.environ.get(POSTGRESQL_ENV) or None


@contextmanager
def postgresql_schema(server: str) -> Iterator[str]:
    """A URL on a new, empty schema of `server`, dropped with everything in it afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
        url = make_url(server).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        admin.dispose()


@contextmanager
def database_url(backend: str, tmp_path: Path, name: str = "monitor.db") -> Iterator[str]:
    """A URL of a new, empty database of `backend` (SQLite: the file `name` in `tmp_path`);
    skips PostgreSQL without a server."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / name}"
        return
    server = postgresql_server()
    if server is None:
        pytest.skip(NO_SERVER)
    with postgresql_schema(server) as url:
        yield url


@pytest.fixture(name="other_db_url", params=BACKENDS)
def other_db_url_on_both(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second new, empty database beside `db_url`'s: SQLite, then PostgreSQL."""
    with database_url(request.param, tmp_path, "other.db") as url:
        yield url


@pytest.fixture(name="db_url", params=BACKENDS)
def db_url_on_both(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """`db_url` for a suite that runs on both databases: import this into its module."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture(name="config")
def config_on_db_url(tmp_path: Path, db_url: str) -> Path:
    """`config` naming `db_url`, for a CLI suite that runs on both databases."""
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n')
    return path
