"""``bgapi`` jobs sent to nodes (``esl_command_jobs``): pending until their BACKGROUND_JOB result arrives."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from controller.domain import CommandStatus


def create(conn: psycopg.Connection[Any], job_id: UUID, node_id: UUID, tenant_id: UUID | None, command: str) -> None:
    conn.execute(
        "INSERT INTO esl_command_jobs (id, node_id, tenant_id, command) VALUES (%s, %s, %s, %s)",
        (job_id, node_id, tenant_id, command),
    )


def finish(conn: psycopg.Connection[Any], job_id: UUID, status: CommandStatus, result: str) -> bool:
    """Record a pending job's result; False when it was already finished (or never existed)."""
    cur = conn.execute(
        """UPDATE esl_command_jobs SET status = %s, result = %s, finished_at = now(), updated_at = now()
           WHERE id = %s AND status = %s""",
        (status, result, job_id, CommandStatus.PENDING),
    )
    return cur.rowcount > 0


def get(conn: psycopg.Connection[Any], job_id: UUID) -> dict[str, Any] | None:
    """The job with the name of its node, and the tenant it was run for."""
    return conn.execute(
        """SELECT j.id, n.name AS node, j.command, j.status, j.result, j.created_at, j.finished_at, j.tenant_id
           FROM esl_command_jobs j LEFT JOIN nodes n ON n.id = j.node_id WHERE j.id = %s""",
        (job_id,),
    ).fetchone()
