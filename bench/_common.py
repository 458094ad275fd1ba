"""What every benchmark shares: output (readable lines and one JSON line per figure),
percentiles, the machine a figure came from, CPU windows, and the servers + Django
setup of the scripts that need a database.

Each script stays runnable on its own (`.venv/bin/python bench/<name>.py`); it puts the
project root on sys.path before importing this module.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import resource
import socket
import time
from collections.abc import Callable
from pathlib import Path


def say(text: str = "") -> None:
    print(text, flush=True)


def emit(record: dict) -> None:
    """One figure as one JSON line ({"bench": ...}): what tooling reads."""
    print(json.dumps(record, separators=(",", ":")), flush=True)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def machine(**extra) -> dict:
    """The machine a run came from, plus the versions a script names (opencv=..., ...)."""
    import psutil

    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        **extra,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


OTHER_LOAD: list[float] = []  # other processes' CPU % of every window, for a closing warning


class CpuWindow:
    """CPU used by this process and by everything else over a window, in % of one core."""

    def __init__(self) -> None:
        self.wall = time.monotonic()
        self.own = process_cpu()
        self.busy = self._busy()

    @staticmethod
    def _busy() -> float:
        import psutil

        times = psutil.cpu_times()
        return times.user + times.nice + times.system + times.irq + times.softirq + times.steal

    def result(self) -> tuple[float, float, float]:
        """(seconds, own CPU %, other processes' CPU %)."""
        wall = time.monotonic() - self.wall
        own = process_cpu() - self.own
        other = max(0.0, 100 * (self._busy() - self.busy - own) / wall)
        OTHER_LOAD.append(other)
        return wall, 100 * own / wall, other


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def servers(data_dir: Path):
    """DATABASE_URL + REDIS_URL when both are set, else embedded ones in data_dir."""
    from visionaire_site.services import EmbeddedServers, configured_endpoints

    configured = configured_endpoints()
    if configured is not None:
        yield configured
        return
    say(f"starting embedded PostgreSQL and Redis in {data_dir}")
    with EmbeddedServers(data_dir) as endpoints:
        yield endpoints


def django_setup(
    endpoints,
    data_dir: Path,
    *,
    before_migrate: Callable[[], None] | None = None,
    sync_analytics: bool = False,
    sync_seats: bool = False,
    **environ: str,
) -> None:
    """Point Django at the bench's servers and data folder, migrate, and optionally
    register the analytics (a bench analytic registered by before_migrate included)."""
    os.environ.update(
        DATABASE_URL=endpoints.database_url,
        REDIS_URL=endpoints.redis_url,
        VISIONAIRE_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="visionaire_site.settings",
        **environ,
    )
    os.environ.setdefault("VISIONAIRE_LOG_LEVEL", "warning")
    import django

    django.setup()
    if before_migrate is not None:
        before_migrate()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    if sync_analytics or sync_seats:
        from analytics.services import analytics_sync_registry

        analytics_sync_registry()
    if sync_seats:
        from analytics.services import seats_sync_community

        seats_sync_community()
