"""PostgreSQL access: the connection pool, and the embedded server used when no DSN is given."""

from controller.database.pool import Database

__all__ = ["Database"]
