"""POST /extract/{node}/{stream_id}/{pipeline_id}: an external image pushed into a
pipeline becomes stored, searchable, broadcast events.

Where it runs: in the API process that receives the request, synchronously,
through the same code the pipeline runs on live frames (the analytic's
`extract_records` when it has one, as smart search does; otherwise its processor
on the image as a one-frame stream, flushed), and stored with the same event
writer service (`events.services.events_create_batch`: crops, rows, one live
publish after commit). So the answer comes once the events are stored and a
client may search for them at once; the stream's worker is not involved, and
the push works whether the stream is running or not. The cost is the face
engine loaded in the API process (it is for image search anyway).

`metadata` is kept whole in each event's `pipeline_data.metadata`; its text
values are added to the events' search text. Three keys are read when present:
`primary_text` and `secondary_text` (strings, at most 200 characters: the
events' texts) and `timestamp_ms` (when the image was taken, unix ms).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from analytics.plugins import EventRecord, Frame
from analytics.registry import get_plugin, validate_config
from core.validation import refuse
from streams.models import Pipeline

from .models import Event
from .services import events_create_batch

TEXT_MAX = 200
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
# Search text taken from metadata values: enough for labels, not a document.
METADATA_TEXT_MAX = 1000


def _metadata_texts(value: Any, depth: int = 0) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict) and depth < 4:
        for item in value.values():
            yield from _metadata_texts(item, depth + 1)
    elif isinstance(value, list) and depth < 4:
        for item in value:
            yield from _metadata_texts(item, depth + 1)


def metadata_search_text(metadata: dict[str, Any]) -> str:
    words = " ".join(" ".join(text.split()) for text in _metadata_texts(metadata) if text.strip())
    return words[:METADATA_TEXT_MAX].strip()


def extract_metadata_validate(metadata: dict[str, Any]) -> dict[str, Any]:
    """The keys of `metadata` that the events use, checked (after the image: the
    order a client should fix them in): the part of the /extract body's schema
    that depends on the free-form object."""
    texts = {}
    for key in ("primary_text", "secondary_text"):
        value = metadata.get(key, "")
        if not isinstance(value, str) or len(value) > TEXT_MAX:
            refuse(f"metadata.{key} must be a string of at most {TEXT_MAX} characters")
        texts[key] = value
    taken = metadata.get("timestamp_ms")
    if "timestamp_ms" in metadata and (type(taken) is not int or not 0 <= taken <= MAX_TIMESTAMP_MS):
        refuse(f"metadata.timestamp_ms must be an integer between 0 and {MAX_TIMESTAMP_MS}")
    return {"metadata": metadata, **texts, "taken": taken / 1000 if taken is not None else None}


def _records(pipeline: Pipeline, image: np.ndarray, timestamp: float) -> list[EventRecord]:
    plugin = get_plugin(pipeline.analytic_id)
    config = validate_config(plugin, pipeline.config)
    records = plugin.extract_records(config, image, timestamp=timestamp)
    if records is not None:
        return list(records)
    processor = plugin.create_processor(config)
    stream = pipeline.stream
    frame = Frame(
        image=image, timestamp=timestamp, index=0, stream_id=stream.stream_id, node_num=stream.node_id
    )
    return [*processor.process(frame).events, *processor.close().events]


def pipeline_extract(
    *,
    pipeline: Pipeline,
    image: np.ndarray,
    metadata: dict[str, Any],
    primary_text: str = "",
    secondary_text: str = "",
    taken: float | None = None,
) -> list[Event]:
    """Run `image` through the pipeline's analytic and store what it makes (the
    texts and time given override none the analytic set); nothing is stored if
    any event fails."""
    timestamp = taken if taken is not None else time.time()
    extra_text = metadata_search_text(metadata)
    stream = pipeline.stream
    records = [
        replace(
            record,
            pipeline_data={**record.pipeline_data, "source": "extract", "metadata": metadata},
            primary_text=record.primary_text or primary_text,
            secondary_text=record.secondary_text or secondary_text,
            search_text=" ".join(part for part in (record.search_text, extra_text) if part),
        ).for_stream(stream, analytic_id=pipeline.analytic_id, emitted_at=timestamp)
        for record in _records(pipeline, image, timestamp)
    ]
    return events_create_batch(records=records)
