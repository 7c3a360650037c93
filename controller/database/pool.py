"""One psycopg 3 pool per process, handing out transactions that return rows as dicts.

A production DSN may list several hosts with ``target_session_attrs=read-write``: libpq then
finds the Patroni leader by itself, and a broken connection is replaced by the pool's check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from controller.errors import Unavailable


class Database:
    """A pool of connections to the fsfarm database."""

    def __init__(self, conninfo: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.conninfo = conninfo
        self.pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": False},
            # A connection that died with its server (Patroni switchover) is dropped, not handed out.
            check=ConnectionPool.check_connection,
            open=False,
            timeout=10.0,
        )
        self._opened = False

    def open(self) -> None:
        if not self._opened:
            self.pool.open(wait=False)
            self._opened = True

    def close(self) -> None:
        if self._opened:
            self.pool.close()
            self._opened = False

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction: committed on success, rolled back on any error."""
        self.open()
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.OperationalError as exc:  # also psycopg_pool.PoolTimeout
            raise Unavailable("the database cannot be reached", str(exc).strip()) from exc

    @contextmanager
    def reads(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection in autocommit for read-only work: no BEGIN/COMMIT round trips, one per query.

        Each statement sees its own snapshot; use ``transaction`` when reads must agree with each other.
        """
        self.open()
        try:
            with self.pool.connection() as conn:
                conn.autocommit = True
                try:
                    yield conn
                finally:
                    with suppress(psycopg.Error):  # a broken connection is dropped by the pool anyway
                        conn.autocommit = False
        except psycopg.OperationalError as exc:  # also psycopg_pool.PoolTimeout
            raise Unavailable("the database cannot be reached", str(exc).strip()) from exc
