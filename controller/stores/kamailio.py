"""The views Kamailio reads through db_postgres (``kamailio_*``): versions, dispatcher, domains, numbers.

Kamailio itself reads them; the controller reads them back to check that a reload took.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import tuple_row


def domains(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Each routed domain (htable key) and the value Kamailio should hold for it."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return {str(r[0]): str(r[1]) for r in cur.execute("SELECT key_name, key_value FROM kamailio_domains")}


def dispatcher_destinations(conn: psycopg.Connection[Any]) -> set[str]:
    """The SIP URI of every node Kamailio's dispatcher should hold."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return {str(r[0]) for r in cur.execute("SELECT destination FROM kamailio_dispatcher")}
