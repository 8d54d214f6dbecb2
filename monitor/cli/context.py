"""What every command shares: the settings and the store, opened on first use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.queries import Queries
    from monitor.store import Store


class AppContext:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = Path(config_path) if config_path else None
        self._settings: Settings | None = None
        self._store: Store | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            from monitor.config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings

    def store(self) -> Store:
        """The store on a database at the current schema (a new one is created)."""
        if self._store is None:
            from monitor.database import open_database
            from monitor.store import Store

            self._store = Store(open_database(self.settings().database.url, "create"))
        return self._store

    def queries(self) -> Queries:
        """The read side, on the same database as `store()`."""
        from monitor.queries import Queries

        return Queries(self.store().engine)


pass_app = click.make_pass_decorator(AppContext)
