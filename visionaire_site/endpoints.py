"""Where the platform's PostgreSQL and Redis are, and how Django should reach them.

`DATABASE_URL` / `REDIS_URL` win. Without them, a process started while the
launcher runs the embedded servers finds them through the launcher's runtime
file (`<data dir>/run/services.json`), so `manage.py shell` or a second worker on
the same host work without extra setup.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

SERVICES_FILE = Path("run") / "services.json"


def services_file(data_dir: Path) -> Path:
    return data_dir / SERVICES_FILE


def read_services_file(data_dir: Path) -> dict[str, str]:
    """The embedded servers' URLs, if a live launcher wrote them."""
    path = services_file(data_dir)
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {key: str(info[key]) for key in ("database_url", "redis_url") if key in info}


# Connections one process's pool opens at most (VISIONAIRE_DB_POOL_MAX).
DB_POOL_MAX_DEFAULT = 20
# Connections kept free for what runs beside the platform's processes: a migration,
# `manage.py` commands, psql, the launcher's checks.
DB_CONNECTIONS_RESERVE = 10


def database_settings(
    url: str,
    *,
    pool_min: int = 2,
    pool_max: int = DB_POOL_MAX_DEFAULT,
    pool_wait_seconds: float = 10.0,
    application_name: str = "visionaire",
) -> dict:
    """Django's DATABASES entry for a libpq URL or key/value string.

    psycopg's own parser is used (not a hand-written one) so every form libpq
    accepts works, including a socket directory given as `?host=/path`.

    Connections come from a pool of at most `pool_max` per process (see
    `visionaire_site.db`); CONN_MAX_AGE must then be 0: a request or a task gives
    its connection back to the pool when it ends. (Persistent per-thread
    connections do not fit an ASGI server, which runs each request's sync code
    in a thread of its own: every such thread would keep a connection open.)
    `application_name` names the process in pg_stat_activity, unless the URL does.
    """
    from .db import POOL_RECONNECT_SECONDS, POOL_SLICE_SECONDS

    params = conninfo_to_dict(url)
    options = {
        key: value
        for key, value in params.items()
        if key not in {"dbname", "user", "password", "host", "port"}
    }
    options.setdefault("application_name", application_name)
    options["pool"] = {
        "min_size": min(pool_min, pool_max),
        "max_size": pool_max,
        # One slice of the wait; visionaire_site.db waits up to DB_POOL_TIMEOUT_SECONDS in all.
        "timeout": min(POOL_SLICE_SECONDS, pool_wait_seconds),
        "reconnect_timeout": POOL_RECONNECT_SECONDS,
        "max_idle": 300.0,
    }
    return {
        "ENGINE": "visionaire_site.db",
        "NAME": params.get("dbname", "visionaire"),
        "USER": params.get("user", ""),
        "PASSWORD": params.get("password", ""),
        "HOST": params.get("host", ""),
        "PORT": str(params.get("port", "")),
        "OPTIONS": options,
        "CONN_MAX_AGE": 0,
        # The pool checks a connection before handing it out, so one broken by a
        # server restart is replaced instead of failing the request.
        "CONN_HEALTH_CHECKS": True,
    }


def describe_database(url: str) -> str:
    """A short, password-free name for a database URL, for error messages."""
    params = conninfo_to_dict(url)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"PostgreSQL at {host}:{port}/{params.get('dbname', '')}"


def describe_redis(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"Redis at {parts.hostname or 'localhost'}:{parts.port or 6379}"
