"""One psycopg 3 pool per process, handing out transactions that return rows as dicts.

A production DSN may list several hosts with ``target_session_attrs=read-write``: libpq then
finds the Patroni leader by itself, and a broken connection is replaced by the pool's check.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from controller.errors import Unavailable


class Database:
    """A pool of connections to the fsfarm database.

    A caller waits for a connection at most ``timeout`` seconds while the server accepts connections
    (the pool is busy), but only ``outage_wait`` once it refuses them: a database that is away answers
    ``Unavailable`` (HTTP 503) in about half a second instead of after the whole timeout.
    """

    def __init__(
        self, conninfo: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 10.0, outage_wait: float = 0.5
    ) -> None:
        self.conninfo = conninfo
        self.outage_wait = outage_wait
        self._checked_until = 0.0
        self._up = True
        self._served_at = 0.0
        self.pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": False},
            # A connection that died with its server (Patroni switchover) is dropped, not handed out.
            check=ConnectionPool.check_connection,
            open=False,
            timeout=timeout,
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

    def _server_up(self) -> bool:
        """Whether the server accepts connections (checked at most once per ``outage_wait``)."""
        now = time.monotonic()
        if now >= self._checked_until:
            try:
                psycopg.connect(self.conninfo, connect_timeout=2).close()
                self._up = True
            except psycopg.OperationalError:
                self._up = False
            self._checked_until = time.monotonic() + self.outage_wait
        return self._up

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; when none frees up in ``outage_wait``: PoolTimeout at once if the server is
        away, a direct connection if the pool is still reconnecting to a server that is back, else wait on.

        The pool retries a lost server with a growing backoff (up to a minute), so without the direct
        connection callers would keep failing for that long after the database returned.
        """
        deadline = time.monotonic() + self.pool.timeout
        while True:
            left = deadline - time.monotonic()
            try:
                conn = self.pool.getconn(timeout=max(0.01, min(self.outage_wait, left)))
                self._served_at = time.monotonic()
                break
            except PoolTimeout:
                if left <= self.outage_wait or not self._server_up():
                    raise
                if not self._pool_serving():
                    with psycopg.connect(self.conninfo, connect_timeout=2, row_factory=dict_row) as direct:
                        yield direct
                    return
        try:
            with conn:  # the pool's own connection(): commit or roll back, and a broken one is replaced
                yield conn
        finally:
            self.pool.putconn(conn)

    def _pool_serving(self) -> bool:
        """Whether the pool handed out a connection lately (busy, not broken)."""
        return time.monotonic() - self._served_at < self.pool.timeout

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction: committed on success, rolled back on any error."""
        self.open()
        try:
            with self._connection() as conn, conn.transaction():
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
            with self._connection() as conn:
                conn.autocommit = True
                try:
                    yield conn
                finally:
                    with suppress(psycopg.Error):  # a broken connection is dropped by the pool anyway
                        conn.autocommit = False
        except psycopg.OperationalError as exc:  # also psycopg_pool.PoolTimeout
            raise Unavailable("the database cannot be reached", str(exc).strip()) from exc
