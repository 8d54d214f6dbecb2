"""What every command shares: the settings and the store, opened on first use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.config import Settings
    from monitor.store import Store
    from monitor.store.queries import Queries
    from monitor.taskref import TaskRef


class AppContext:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = Path(config_path) if config_path else None
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            from monitor.config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings

    def task_ref(self, ref: str, *, bulk: bool = False) -> TaskRef:
        """The task `ref` names: a bare ID, `bulk:ID`, or a task or bulk-queue URL
        (`monitor.taskref`; `bulk`: a bare ID names a bulk operation). A URL must be on the
        configured site (`jira.url`, when one is set). UsageError otherwise."""
        from monitor.taskref import parse_task_ref

        return parse_task_ref(ref, self.settings().jira.url, bulk=bulk)

    def engine(self) -> Engine:
        """The database, at the current schema (a new one is created)."""
        if self._engine is None:
            from monitor.database import open_database

            self._engine = open_database(self.settings().database.url, "create")
        return self._engine

    def store(self) -> Store:
        """The write side (and the daemon's reads)."""
        from monitor.store import Store

        return Store(self.engine())

    def queries(self) -> Queries:
        """The read side, on the same database as `store()`; it does not import the store."""
        from monitor.store.queries import Queries

        return Queries(self.engine())


pass_app = click.make_pass_decorator(AppContext)
