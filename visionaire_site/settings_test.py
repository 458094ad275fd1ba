"""Test settings: the real Postgres and Redis, tuned for a fast suite."""

import os
import sys

os.environ.setdefault("VISIONAIRE_ANALYTIC_MODULES", "tests.support.analytics")
# Tests (fuzzing included) must never make the platform connect outside this machine:
# stream addresses may only point at loopback (also in the workers the tests spawn).
os.environ.setdefault("VISIONAIRE_STREAM_ALLOW_NETWORKS", "127.0.0.0/8,::1")


def _own_redis_database(url: str, worker: str) -> str:
    """The Redis URL of this test process's own database: the suite runs in several
    processes (pytest-xdist workers gw0, gw1, ...), and each flushes its database
    between tests. Worker and API processes that a test spawns inherit the URL."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{1 + int(worker.removeprefix('gw'))}"))


# Only in the test process itself: a worker or server it spawns inherits the variable
# but is handed its Redis URL (this database's, or a server of the test's own).
if (
    "pytest" in sys.modules
    and os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw")
    and os.environ.get("REDIS_URL")
):
    os.environ["REDIS_URL"] = _own_redis_database(os.environ["REDIS_URL"], os.environ["PYTEST_XDIST_WORKER"])

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
NODE_HEARTBEAT_SECONDS = 0.2
NODE_OFFLINE_AFTER_SECONDS = 2.0
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
STREAM_OPEN_TIMEOUT_SECONDS = 3.0
STREAM_STALL_SECONDS = 2.0
STREAM_BACKOFF_INITIAL_SECONDS = 0.2
STREAM_BACKOFF_MAX_SECONDS = 1.0
STREAM_LEASE_SECONDS = 3.0
STREAM_START_GRACE_SECONDS = 5.0
STREAM_DESIRED_CHECK_SECONDS = 0.5
# Each test process spools events in a folder of its own (unless a test names one),
# so what one run leaves there is never replayed into another's database.
if not os.environ.get("VISIONAIRE_EVENT_SPOOL_DIR"):
    import tempfile
    from pathlib import Path

    EVENT_SPOOL_DIR = Path(tempfile.gettempdir()) / f"visionaire-test-spool-{os.getpid()}"
