"""/metrics series of the analytics: the counts over time they stored, as one
counter per analytic that declares `count_metric` (analytics.plugins), read from
PostgreSQL at scrape time so one scrape of the API covers every node."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily

from core.metrics import AppCollector, Families

from .counts import counts_totals
from .registry import all_plugins

LABELS = ["stream_id", "zone", "label", "direction"]


class CountFamilies(Families):
    def __init__(self) -> None:
        # analytic id -> its counter (the name ends in _total in the exposition)
        self.counters = {
            plugin.id: CounterMetricFamily(plugin.count_metric[0], plugin.count_metric[1], labels=LABELS)
            for plugin in all_plugins()
            if plugin.count_metric is not None
        }

    def all(self) -> list:
        return list(self.counters.values())


class CountsCollector(AppCollector):
    def families(self) -> CountFamilies:
        return CountFamilies()

    def fill(self, f: CountFamilies) -> None:
        for analytic_id, family in f.counters.items():
            for stream_id, zone, label, direction, total in counts_totals(analytic_id):
                family.add_metric([stream_id, zone, label, direction], total)
