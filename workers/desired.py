"""What the control plane wants of a stream, as the runtime reads it from SQL."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import close_old_connections

from analytics.models import Seat
from core.db import connection_release
from streams.models import Stream

from .pipelines import PipelineSpec


@dataclass(frozen=True)
class DesiredStream:
    """A stream as its runner reads it; its events are stamped with it
    (live.events.EventRecord.for_stream)."""

    stream_id: str
    node_num: int
    name: str
    address: str
    latitude: float
    longitude: float
    active: bool
    pipelines: tuple[PipelineSpec, ...]


def desired_stream_get(stream_id: str) -> DesiredStream | None:
    """The stream's desired state, or None when it no longer exists.

    Called from long-lived worker threads: stale connections (a restarted
    Postgres, an idle timeout) are dropped first so a fault costs one retry,
    and the connection is given back to the pool after the read.
    """
    close_old_connections()
    try:
        stream = Stream.objects.filter(stream_id=stream_id).first()
        if stream is None:
            return None
        active_seats = set(
            Seat.objects.filter(pipeline__stream_id=stream_id, active=True).values_list(
                "pipeline_id", flat=True
            )
        )
        pipelines = tuple(
            PipelineSpec(analytic_id=p.analytic_id, config=p.config, seat_active=p.id in active_seats)
            for p in stream.pipelines.order_by("analytic_id")
        )
    finally:
        # A runner thread reads this every few seconds for hours: between reads
        # its connection goes back to the process's pool.
        connection_release()
    return DesiredStream(
        stream_id=stream.stream_id,
        node_num=stream.node_id,
        name=stream.name,
        address=stream.address,
        latitude=stream.latitude,
        longitude=stream.longitude,
        active=stream.active,
        pipelines=pipelines,
    )
