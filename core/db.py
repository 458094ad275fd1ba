"""Telling a database outage from a bug, and giving connections back.

The errors are raised by the platform's database engine (`visionaire_site.db`),
which bounds each wait for a pooled connection; `database_outage()` reads the
reason back for the 503 answer (see `core.outage`).
"""

from __future__ import annotations

import logging

import psycopg
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


class DatabaseUnavailable(psycopg.OperationalError):
    """The server cannot be reached (refused, gone, starting up or shutting down)."""


class DatabaseBusy(psycopg.OperationalError):
    """The server answers, but no connection of this process's pool came free in time."""


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def database_outage(exc: BaseException) -> str | None:
    """The 503 message for an exception that means the database cannot serve
    now ("database unavailable", or "database busy: ..." when the pool stayed
    full), or None when `exc` is something else (a bug, bad data)."""
    from django.db import InterfaceError, OperationalError

    connection_errors = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
    if not isinstance(exc, connection_errors):
        return None
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    if isinstance(cause, DatabaseBusy):
        return f"database busy: {cause}"
    sqlstate = getattr(cause, "sqlstate", None) or ""
    # The server is there but this statement lost: a deadlock or serialization
    # conflict (40xxx), a lock it could not get (55P03), a statement timeout (57014).
    if sqlstate.startswith("40") or sqlstate in ("55P03", "57014"):
        return f"database busy: {one_line(cause)}"
    return "database unavailable"


def connection_release() -> None:
    """Give this thread's connection back to the pool (long-lived worker threads
    call it after each use, so an idle thread holds none). Inside a transaction
    (a test's, or the caller's) the connection is left alone."""
    if connection.connection is not None and not connection.in_atomic_block:
        try:
            connection.close()
        except DatabaseError as exc:  # a broken connection is discarded by the pool anyway
            logger.debug("closing a database connection failed: %s", exc)
