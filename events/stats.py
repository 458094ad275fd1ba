"""Storage figures for /database/stats: the database and the stored media
(event crops, enrollment photos) against the volume's free space or a quota."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from django.conf import settings
from django.db import connection

from .models import Event

logger = logging.getLogger(__name__)

# A walk of the media folder stops after this many entries, so a huge media
# store cannot make /database/stats slow; the figure is then a lower bound.
MEDIA_WALK_MAX_ENTRIES = 500_000


def database_size_bytes() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return int(cursor.fetchone()[0])


def media_size_bytes(root: Path, max_entries: int = MEDIA_WALK_MAX_ENTRIES) -> int:
    """Bytes of regular files under `root` (symlinks not followed)."""
    total = 0
    seen = 0
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    seen += 1
                    if seen > max_entries:
                        logger.warning("media size: stopped after %d entries under %s", max_entries, root)
                        return total
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(Path(entry.path))
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:  # vanished while walking (e.g. retention removed it)
                        continue
        except OSError:
            continue
    return total


def database_stats_measure() -> dict[str, int]:
    """Storage in use (database + stored media) and what is left: the volume's
    free space, or what remains of STORAGE_QUOTA_BYTES when one is set."""
    media_root = Path(settings.MEDIA_ROOT)
    media_root.mkdir(parents=True, exist_ok=True)
    used = database_size_bytes() + media_size_bytes(media_root)
    quota = settings.STORAGE_QUOTA_BYTES
    free = max(0, quota - used) if quota > 0 else shutil.disk_usage(media_root).free
    return {
        "total_size_bytes": used + free,
        "used_size_bytes": used,
        "free_size_bytes": free,
        "event_count": Event.objects.count(),
    }
