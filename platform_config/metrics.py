"""/metrics series of the platform: nodes (registered, online, their heartbeat's
figures and GPUs), and whether PostgreSQL and Redis answered the scrape."""

from __future__ import annotations

import redis
from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily

from core.db import database_outage
from core.errors import ApiError
from core.metrics import AppCollector, Families

from .models import Node
from .nodes import nodes_live


class NodeFamilies(Families):
    def __init__(self) -> None:
        node = ["node_num"]
        gpu = ["node_num", "gpu_id", "gpu_name"]
        self.nodes_total = GaugeMetricFamily("visionaire_nodes_total", "Registered nodes")
        self.nodes_online = GaugeMetricFamily("visionaire_nodes_online", "Nodes with a fresh heartbeat")
        self.node_up = GaugeMetricFamily(
            "visionaire_node_up", "1 when the node's heartbeat is fresh", labels=node
        )
        self.node_cpu = GaugeMetricFamily("visionaire_node_cpu_percent", "Host CPU use", labels=node)
        self.node_ram = GaugeMetricFamily("visionaire_node_ram_percent", "Host memory use", labels=node)
        self.node_swap = GaugeMetricFamily("visionaire_node_swap_percent", "Host swap use", labels=node)
        self.node_uptime = GaugeMetricFamily(
            "visionaire_node_uptime_seconds", "Seconds since the node's worker started", labels=node
        )
        self.gpu_util = GaugeMetricFamily("visionaire_node_gpu_utilization_percent", "GPU use", labels=gpu)
        self.gpu_temp = GaugeMetricFamily(
            "visionaire_node_gpu_temperature_celsius", "GPU temperature", labels=gpu
        )
        self.gpu_mem_used = GaugeMetricFamily(
            "visionaire_node_gpu_memory_used_bytes", "GPU memory used", labels=gpu
        )
        self.gpu_mem_total = GaugeMetricFamily(
            "visionaire_node_gpu_memory_total_bytes", "GPU memory size", labels=gpu
        )
        self.database_up = GaugeMetricFamily(
            "visionaire_database_up", "1 when PostgreSQL answered this scrape"
        )
        self.live_state_up = GaugeMetricFamily(
            "visionaire_live_state_up", "1 when the live state store (Redis) answered this scrape"
        )


class NodesCollector(AppCollector):
    def families(self) -> NodeFamilies:
        return NodeFamilies()

    def fill(self, f: NodeFamilies) -> None:
        try:
            f.nodes_total.add_metric([], Node.objects.count())
        except DatabaseError as exc:
            if database_outage(exc) is None:
                raise
            f.database_up.add_metric([], 0)  # the other apps' series say nothing either
            return
        f.database_up.add_metric([], 1)
        try:
            live_nodes = nodes_live()
        except (redis.RedisError, ApiError):
            f.live_state_up.add_metric([], 0)
            return
        f.live_state_up.add_metric([], 1)
        online = 0
        for live in live_nodes:
            node = str(live.node.num)
            beat = live.heartbeat
            f.node_up.add_metric([node], 1 if beat else 0)
            if beat is None:
                continue
            online += 1
            f.node_cpu.add_metric([node], float(beat.get("cpu_percent", 0)))
            f.node_ram.add_metric([node], float(beat.get("ram_percent", 0)))
            f.node_swap.add_metric([node], float(beat.get("swap_memory_percent", 0)))
            f.node_uptime.add_metric([node], float(beat.get("uptime_sec", 0)) + live.age_sec)
            for gpu in beat.get("gpus", []):
                labels = [node, str(gpu.get("gpu_id", 0)), str(gpu.get("gpu_name", ""))]
                f.gpu_util.add_metric(labels, float(gpu.get("gpu_utilization", 0)))
                f.gpu_temp.add_metric(labels, float(gpu.get("gpu_temperature", 0)))
                f.gpu_mem_used.add_metric(labels, float(gpu.get("gpu_memory_used", 0)))
                f.gpu_mem_total.add_metric(labels, float(gpu.get("gpu_memory_total", 0)))
        f.nodes_online.add_metric([], online)
