"""Nodes: their registration (SQL) and their live state (heartbeats in Redis).

A node's worker runs a `workers.node_agent.NodeAgent` that writes a heartbeat
here every NODE_HEARTBEAT_SECONDS; the API reads all of them with one MGET.

All times in heartbeats come from Redis's clock (TIME), and the API judges
their age by the same clock, so hosts whose clocks disagree are still judged
correctly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from django.db import transaction

from live.keys import NODES_SET_KEY, RESTART_CHANNEL, RESTART_GENERATION_KEY, heartbeat_key, node_info_key
from live.messages import Heartbeat, heartbeat_decode, heartbeat_encode, node_info_encode, restart_encode
from live.redis import LiveStateUnavailable, get_redis

from .models import Node

logger = logging.getLogger(__name__)


def heartbeat_ttl_seconds() -> float:
    # Long enough to outlive a few missed beats, short enough that a dead node's
    # key goes away by itself; online/offline is judged by age, not by presence.
    return max(3 * settings.NODE_OFFLINE_AFTER_SECONDS, 3 * settings.NODE_HEARTBEAT_SECONDS)


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


# --- writes (node agent side) ------------------------------------------------


def node_zero_ensure(**_kwargs) -> None:
    """A single-machine deployment has node 0 from the start (post_migrate)."""
    Node.objects.get_or_create(num=0)


def node_register(*, node_num: int, ip_address: str, started_at: datetime) -> Node:
    """Create or update the node's row when its worker starts."""
    with transaction.atomic():
        node, _ = Node.objects.update_or_create(
            num=node_num, defaults={"ip_address": ip_address, "last_started_at": started_at}
        )
    return node


def node_heartbeat_write(*, client: redis.Redis, heartbeat: Heartbeat) -> None:
    node_num = heartbeat["node_num"]
    pipe = client.pipeline(transaction=False)
    pipe.set(heartbeat_key(node_num), heartbeat_encode(heartbeat), px=int(heartbeat_ttl_seconds() * 1000))
    pipe.set(node_info_key(node_num), node_info_encode(heartbeat))
    pipe.sadd(NODES_SET_KEY, node_num)
    pipe.execute()


def node_heartbeat_clear(*, client: redis.Redis, node_num: int) -> None:
    """A node that stops cleanly is offline at once, not after the offline window."""
    client.delete(heartbeat_key(node_num))


def system_restart_request() -> int:
    """Ask every node to restart its stream runners; returns the restart generation.

    The generation counter makes the request durable: an agent that missed the
    pub/sub message (reconnecting, busy) sees the counter move on its next beat.
    """
    client = get_redis()
    try:
        generation = int(client.incr(RESTART_GENERATION_KEY))
        client.publish(RESTART_CHANNEL, restart_encode(generation))
    except redis.RedisError as exc:
        logger.warning("restart request failed: %s", exc)
        raise LiveStateUnavailable() from None
    return generation


# --- reads (API side) --------------------------------------------------------


@dataclass(frozen=True)
class NodeLive:
    """A node row joined with its latest heartbeat."""

    node: Node
    heartbeat: Heartbeat | None  # None when missing or older than the offline window
    age_sec: float
    last_run_mode: str

    @property
    def online(self) -> bool:
        return self.heartbeat is not None


def heartbeats_read(node_nums: list[int]) -> tuple[float, dict[int, dict], dict[int, dict]]:
    """(Redis now, heartbeat by node, last known info by node) in one round trip."""
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    pipe.time()
    if node_nums:
        pipe.mget([heartbeat_key(n) for n in node_nums] + [node_info_key(n) for n in node_nums])
    try:
        results = pipe.execute()
    except redis.RedisError as exc:
        logger.warning("reading node heartbeats failed: %s", exc)
        raise LiveStateUnavailable() from None
    seconds, micros = results[0]
    now = seconds + micros / 1_000_000
    values = results[1] if node_nums else []
    count = len(node_nums)
    beats = {
        n: b
        for n, raw in zip(node_nums, values[:count], strict=True)
        if (b := heartbeat_decode(raw)) is not None
    }
    infos = {
        n: i
        for n, raw in zip(node_nums, values[count:], strict=True)
        if (i := heartbeat_decode(raw)) is not None
    }
    return now, beats, infos


def nodes_live() -> list[NodeLive]:
    """Every registered node, ordered by number, with its heartbeat if it is online."""
    nodes = list(Node.objects.order_by("num"))
    now, beats, infos = heartbeats_read([n.num for n in nodes])
    result = []
    for node in nodes:
        beat = beats.get(node.num)
        age = now - float(beat.get("ts", 0)) if beat else float("inf")
        fresh = beat is not None and age <= settings.NODE_OFFLINE_AFTER_SECONDS
        last_mode = (beat or {}).get("run_mode") or infos.get(node.num, {}).get("run_mode") or "CPU"
        result.append(
            NodeLive(
                node=node,
                heartbeat=beat if fresh else None,  # type: ignore[arg-type]
                age_sec=max(0.0, age) if fresh else 0.0,
                last_run_mode=last_mode,
            )
        )
    return result


def number(value: Any) -> int | float:
    """A measured figure as the seed shows it: two decimals, and a whole number
    as an integer (`0`, not `0.0`), the way Go and JavaScript clients write it."""
    rounded = round(float(value or 0), 2)
    return int(rounded) if rounded.is_integer() else rounded


def node_status_body() -> dict[str, Any]:
    nodes = []
    for live in nodes_live():
        beat = live.heartbeat
        if beat is not None:
            entry = {
                "node_num": live.node.num,
                "status": "online",
                "running_time_sec": int(float(beat.get("uptime_sec", 0)) + live.age_sec),
                "ip_address": str(beat.get("ip_address") or live.node.ip_address or ""),
                "run_mode": live.last_run_mode,
            }
        else:
            entry = {
                "node_num": live.node.num,
                "status": "offline",
                "running_time_sec": 0,
                "ip_address": live.node.ip_address or "",
                "run_mode": live.last_run_mode,
            }
        nodes.append(entry)
    return {"node_number": len(nodes), "nodes": nodes}


def _gpu_entry(gpu: dict[str, Any]) -> dict[str, Any]:
    return {
        "gpu_id": int(gpu.get("gpu_id", 0)),
        "gpu_name": str(gpu.get("gpu_name", "")),
        "gpu_utilization": number(gpu.get("gpu_utilization")),
        "gpu_temperature": number(gpu.get("gpu_temperature")),
        "gpu_memory_total": int(gpu.get("gpu_memory_total", 0)),
        "gpu_memory_used": int(gpu.get("gpu_memory_used", 0)),
        "gpu_memory_free": int(gpu.get("gpu_memory_free", 0)),
        "services": [
            {
                "service_name": str(s.get("service_name", "")),
                "service_number": int(s.get("service_number", 0)),
            }
            for s in gpu.get("services", [])
        ],
    }


def resource_stats_body(*, with_ip: bool) -> dict[str, Any]:
    """`/resource_stats` (and `/v2/resource_stats` with `with_ip`): online nodes only."""
    devices = []
    for live in nodes_live():
        beat = live.heartbeat
        if beat is None:
            continue
        data = {
            "cpu_percent": number(beat.get("cpu_percent")),
            "ram_percent": number(beat.get("ram_percent")),
            "swap_memory_percent": number(beat.get("swap_memory_percent")),
            "gpus": [_gpu_entry(g) for g in beat.get("gpus", [])],
        }
        device: dict[str, Any] = {"node_num": live.node.num}
        if with_ip:
            device["ip_address"] = str(beat.get("ip_address") or live.node.ip_address or "")
        device["data"] = data
        devices.append(device)
    return {"devices": devices}
