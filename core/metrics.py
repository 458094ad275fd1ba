"""What every app's /metrics collector shares.

Each app adds its own collector to prometheus_client's default registry (the
one django-prometheus exports at /metrics) from its AppConfig.ready(); the
series are gathered at scrape time, from the database and from the live state
in Redis that node agents and stream runners on any host write, so one scrape
of the API covers the whole cluster.
"""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from collections.abc import Iterator

import redis
from django.db import DatabaseError
from prometheus_client.core import REGISTRY
from prometheus_client.registry import Collector

from .db import database_outage
from .errors import ApiError

logger = logging.getLogger(__name__)


class Families:
    """The metric families of one scrape, declared once (as attributes) so that
    describe() and collect() agree on names."""

    def all(self) -> list:
        return list(vars(self).values())


class AppCollector(Collector):
    """An app's series. A scrape during a database or Redis outage still answers:
    what was read before the outage is kept, the rest stays empty (and it is logged)."""

    @abstractmethod
    def families(self) -> Families: ...

    @abstractmethod
    def fill(self, families) -> None: ...

    def describe(self) -> Iterator:
        # Names only: registering must not query the database.
        return iter(self.families().all())

    def collect(self) -> Iterator:
        families = self.families()
        try:
            self.fill(families)
        except DatabaseError as exc:
            if database_outage(exc) is None:
                raise
            logger.warning("metrics (%s): database unavailable: %s", type(self).__name__, exc)
        except (redis.RedisError, ApiError) as exc:  # LiveStateUnavailable is an ApiError
            logger.warning("metrics (%s): live state unavailable: %s", type(self).__name__, exc)
        return iter(families.all())


def add_sample(family, labels: list[str], value: float | None, *, scale: float = 1.0) -> None:
    """Add a sample when there is a value (a figure missing from a report adds none)."""
    if value is not None:
        family.add_metric(labels, value * scale)


_register_lock = threading.Lock()
_registered: set[type] = set()


def collector_register(collector: AppCollector) -> None:
    """Add `collector` to the default registry, once per collector class and process."""
    with _register_lock:
        if type(collector) not in _registered:
            REGISTRY.register(collector)
            _registered.add(type(collector))
