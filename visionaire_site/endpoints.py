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


def database_settings(url: str) -> dict:
    """Django's DATABASES entry for a libpq URL or key/value string.

    psycopg's own parser is used (not a hand-written one) so every form libpq
    accepts works, including a socket directory given as `?host=/path`.
    """
    params = conninfo_to_dict(url)
    options = {
        key: value
        for key, value in params.items()
        if key not in {"dbname", "user", "password", "host", "port"}
    }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": params.get("dbname", "visionaire"),
        "USER": params.get("user", ""),
        "PASSWORD": params.get("password", ""),
        "HOST": params.get("host", ""),
        "PORT": str(params.get("port", "")),
        "OPTIONS": options,
        "CONN_MAX_AGE": 60,
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
