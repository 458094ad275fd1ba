"""/metrics series from each online node's runtime report (workers/runtime_report.py):
its event writer's counters, and the info series of the shared models that the
analytics declare (analytics.runtime.ModelInfoMetric, e.g. the face engine's)."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from analytics.registry import shared_models
from core.metrics import AppCollector, Families, add_sample
from live.keys import node_runtime_key
from live.messages import as_number, runtime_report_decode
from live.redis import get_redis
from platform_config.nodes import nodes_live

# Event writer counters: (report field, family attribute).
WRITER_FIELDS = (
    ("written", "events_written"),
    ("dropped", "events_dropped"),
    ("failed", "events_failed"),
    ("queued", "events_queued"),
    ("spilled", "events_spilled"),
    ("replayed", "events_replayed"),
    ("spooled", "events_spooled"),
    ("retries", "events_retries"),
)


class RuntimeFamilies(Families):
    def __init__(self) -> None:
        node = ["node_num"]
        self.events_written = CounterMetricFamily(
            "visionaire_event_writer_written", "Events stored by the node's event writer", labels=node
        )
        self.events_dropped = CounterMetricFamily(
            "visionaire_event_writer_dropped",
            "Events dropped by the node's event writer: past its memory queue and spool file bounds",
            labels=node,
        )
        self.events_spilled = CounterMetricFamily(
            "visionaire_event_writer_spilled",
            "Events the node's event writer kept in its spool file (database unavailable or slow)",
            labels=node,
        )
        self.events_replayed = CounterMetricFamily(
            "visionaire_event_writer_replayed", "Events stored from the node's spool file", labels=node
        )
        self.events_spooled = GaugeMetricFamily(
            "visionaire_event_writer_spool_depth", "Events waiting in the node's spool file", labels=node
        )
        self.events_retries = CounterMetricFamily(
            "visionaire_event_writer_retries",
            "Store attempts of the node's event writer that failed: database unavailable",
            labels=node,
        )
        self.events_failed = CounterMetricFamily(
            "visionaire_event_writer_failed", "Events the node's event writer could not store", labels=node
        )
        self.events_queued = GaugeMetricFamily(
            "visionaire_event_writer_queue_depth", "Events waiting in the node's event writer", labels=node
        )
        # One family per shared model that declares an info series (model name -> family).
        self.models = {
            model.name: GaugeMetricFamily(
                model.info_metric.name,
                model.info_metric.documentation,
                labels=[*node, *model.info_metric.labels],
            )
            for model in shared_models()
            if model.info_metric is not None
        }

    def all(self) -> list:
        return [family for name, family in vars(self).items() if name != "models"] + list(
            self.models.values()
        )


class RuntimeCollector(AppCollector):
    def families(self) -> RuntimeFamilies:
        return RuntimeFamilies()

    def fill(self, f: RuntimeFamilies) -> None:
        online = [live.node.num for live in nodes_live() if live.heartbeat]
        if not online:
            return
        raws = get_redis().mget([node_runtime_key(num) for num in online])
        labels_of = {model.name: model.info_metric.labels for model in shared_models() if model.info_metric}
        for num, raw in zip(online, raws, strict=True):
            report = runtime_report_decode(raw)
            if report is None:
                continue
            node = [str(num)]
            writer = report["event_writer"] or {}
            for field, family in WRITER_FIELDS:
                add_sample(getattr(f, family), node, as_number(writer.get(field)))
            for name, family in f.models.items():
                status = report["models"].get(name) or {}
                if status.get("state"):
                    family.add_metric([*node, *(str(status.get(key, "")) for key in labels_of[name])], 1)
