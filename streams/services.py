"""The control plane of streams and pipelines: validating what a client asks
for, writing the desired state in one transaction, and telling the owning node
about it once the transaction has committed. Nothing here decodes video except
the optional `check_capability` probe."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from typing import Any

from django.db import transaction

from analytics.models import Analytic, Seat
from analytics.registry import get_plugin, validate_config
from analytics.services import seat_take
from core.errors import BadRequest, Conflict, NotFound
from live.addresses import address_parse, address_validate
from live.keys import control_queue
from live.messages import ControlAction, ControlMessage
from live.redis import get_redis
from platform_config.models import Node
from platform_config.selectors import platform_config_get

from .models import Pipeline, Stream

logger = logging.getLogger(__name__)

STREAM_ID_RE = re.compile(r"[0-9a-f]{16}")
# How long check_capability waits for a source to open and for its first frame.
CAPABILITY_TIMEOUT_MS = 5000
# Control messages kept for a worker that was briefly away (the newest first).
CONTROL_QUEUE_MAX = 1000


def json_storage_problem(value: Any) -> str | None:
    """Why Postgres' jsonb would refuse `value`, if it would: it has no NaN or
    Infinity and cannot hold a NUL character."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        return "must not contain NaN or Infinity"
    if "\\u0000" in text:
        return "must not contain NUL characters"
    return None


# --- capability probe ----------------------------------------------------------


def _capture_target(address: str) -> tuple[str, int]:
    """What to hand cv2.VideoCapture for a validated address, and the backend."""
    import cv2

    parsed = address_parse(address)
    return parsed.target, cv2.CAP_V4L2 if parsed.kind == "device" else cv2.CAP_ANY


def stream_capability_check(*, address: str) -> None:
    """Open the source and read one frame; 400 `stream cannot be opened: <reason>`
    when that fails. Called before any transaction, since it may take seconds."""
    import cv2

    target, backend = _capture_target(address)
    if backend == cv2.CAP_ANY and target.startswith("/") and not os.path.isfile(target):
        raise BadRequest("stream cannot be opened: file does not exist")
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        CAPABILITY_TIMEOUT_MS,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        CAPABILITY_TIMEOUT_MS,
    ]
    capture = cv2.VideoCapture(target, backend, params)
    try:
        if not capture.isOpened():
            raise BadRequest("stream cannot be opened: the source could not be opened")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise BadRequest("stream cannot be opened: no frame could be read from the source")
    finally:
        capture.release()


# --- desired-state notifications ---------------------------------------------


def node_control_publish(*, node_num: int, action: ControlAction, stream_id: str) -> None:
    """Tell node `node_num` to start, stop or reload a stream, through a bounded
    Redis list that the node's worker consumes (workers.control), so a worker
    that was briefly away still gets it. A failure is logged, not raised: the
    reconcile job and the runners' own re-reads restore the desired state, and
    the database write has already committed."""
    payload = ControlMessage(action=action, stream_id=stream_id).encode()
    try:
        pipe = get_redis().pipeline(transaction=True)
        pipe.lpush(control_queue(node_num), payload)
        pipe.ltrim(control_queue(node_num), 0, CONTROL_QUEUE_MAX - 1)
        pipe.execute()
    except Exception:
        logger.exception("could not notify node %s to %s stream %s", node_num, action, stream_id)


def _notify_on_commit(*, node_num: int, action: ControlAction, stream_id: str) -> None:
    transaction.on_commit(lambda: node_control_publish(node_num=node_num, action=action, stream_id=stream_id))


# --- streams -----------------------------------------------------------------


def _stream_lock(stream: Stream) -> Stream:
    """The stream's row, locked for this transaction (404 if it was deleted meanwhile)."""
    try:
        return Stream.objects.select_for_update().get(pk=stream.pk)
    except Stream.DoesNotExist:
        raise NotFound("stream not found") from None


def stream_id_generate() -> str:
    return secrets.token_hex(8)


def stream_id_new() -> str:
    """A fresh stream id not yet in use."""
    # 64 random bits: a collision is unlikely but cheap to rule out.
    while True:
        stream_id = stream_id_generate()
        if not Stream.objects.filter(pk=stream_id).exists():
            return stream_id


def stream_create(
    *,
    node: Node,
    address: str,
    name: str = "",
    latitude: float = 0.0,
    longitude: float = 0.0,
    custom_data: dict[str, Any] | None = None,
    active: bool = True,
    check_capability: bool = False,
) -> Stream:
    """Create a stream on `node`, within the node's max_streams_per_node."""
    address_validate(address)
    if check_capability:
        stream_capability_check(address=address)
    limit = platform_config_get().max_streams_per_node
    with transaction.atomic():
        # Locking the node row serialises creations on one node, so two concurrent
        # requests cannot both see room for the last stream.
        Node.objects.select_for_update().get(pk=node.pk)
        if Stream.objects.filter(node=node).count() >= limit:
            raise BadRequest(
                f"node {node.num} already has the maximum of {limit} streams (max_streams_per_node)"
            )
        stream = Stream.objects.create(
            stream_id=stream_id_new(),
            node=node,
            name=name,
            address=address,
            latitude=latitude,
            longitude=longitude,
            custom_data=custom_data if custom_data is not None else {},
            active=active,
        )
        if active:
            _notify_on_commit(node_num=node.num, action="start", stream_id=stream.stream_id)
    return stream


STREAM_UPDATE_FIELDS = ("name", "address", "latitude", "longitude", "custom_data", "active")


def stream_update(*, stream: Stream, check_capability: bool = False, **changes: Any) -> Stream:
    """Apply a partial update; the node of a stream never changes."""
    unknown = set(changes) - set(STREAM_UPDATE_FIELDS)
    if unknown:
        raise TypeError(f"stream_update got unknown fields {sorted(unknown)}")
    if "address" in changes or check_capability:
        # The stored address too before the probe connects to it: the policy may have changed since.
        address_validate(changes.get("address", stream.address))
    if check_capability:
        stream_capability_check(address=changes.get("address", stream.address))
    with transaction.atomic():
        locked = _stream_lock(stream)
        was_active = locked.active
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.save()
        action: ControlAction | None
        if locked.active:
            action = "reload" if was_active else "start"
        else:
            action = "stop" if was_active else None  # a stopped stream stays stopped
        if action is not None:
            _notify_on_commit(node_num=locked.node_id, action=action, stream_id=locked.stream_id)
    return locked


@transaction.atomic
def stream_delete(*, stream: Stream) -> None:
    """Delete a stream with its pipelines, freeing their seats."""
    locked = _stream_lock(stream)
    Seat.objects.filter(pipeline__stream=locked).update(pipeline=None)
    Pipeline.objects.filter(stream=locked).delete()
    node_num, stream_id = locked.node_id, locked.stream_id
    was_active = locked.active
    locked.delete()
    if was_active:
        _notify_on_commit(node_num=node_num, action="stop", stream_id=stream_id)


# --- pipelines -----------------------------------------------------------------


def _pipeline_config_validated(*, analytic_id: str, config: Any) -> dict[str, Any]:
    """The config as it will be stored: validated by the analytic's model, defaults filled."""
    plugin = get_plugin(analytic_id)
    if not Analytic.objects.filter(pk=analytic_id, installed=True).exists():
        raise NotFound("analytic not found")
    validated = validate_config(plugin, config).model_dump(mode="json")
    problem = json_storage_problem(validated)
    if problem:
        raise BadRequest(f"invalid pipeline config: it {problem}")
    return validated


def pipeline_create(*, stream: Stream, analytic_id: str, config: Any) -> Pipeline:
    """Add an analytic to a stream: its config validated (defaults filled) and a
    seat of the analytic taken, both in one transaction."""
    validated = _pipeline_config_validated(analytic_id=analytic_id, config=config)
    with transaction.atomic():
        # The stream row lock serialises pipeline changes on one stream, so a
        # DELETE then POST, or two POSTs, cannot interleave.
        locked = _stream_lock(stream)
        if Pipeline.objects.filter(stream=locked, analytic_id=analytic_id).exists():
            raise Conflict("pipeline already exists")
        pipeline = Pipeline.objects.create(stream=locked, analytic_id=analytic_id, config=validated)
        seat_take(analytic_id=analytic_id, pipeline=pipeline)
        if locked.active:  # a stopped stream picks its pipelines up when it starts
            _notify_on_commit(node_num=locked.node_id, action="reload", stream_id=locked.stream_id)
    return pipeline


@transaction.atomic
def pipeline_delete(*, stream: Stream, analytic_id: str) -> None:
    """Remove an analytic from a stream and free its seat."""
    locked = _stream_lock(stream)
    pipeline = Pipeline.objects.filter(stream=locked, analytic_id=analytic_id).first()
    if pipeline is None:
        if not Analytic.objects.filter(pk=analytic_id).exists():
            raise NotFound("analytic not found")
        raise NotFound("pipeline not found")
    Seat.objects.filter(pipeline=pipeline).update(pipeline=None)
    pipeline.delete()
    if locked.active:
        _notify_on_commit(node_num=locked.node_id, action="reload", stream_id=locked.stream_id)


def pipeline_update(*, pipeline: Pipeline, config: Any) -> Pipeline:
    """Replace a pipeline's config (validated as on create), keeping its seat.
    The same as the API's DELETE then POST, without giving the seat up between."""
    validated = _pipeline_config_validated(analytic_id=pipeline.analytic_id, config=config)
    with transaction.atomic():
        locked = _stream_lock(pipeline.stream)
        current = Pipeline.objects.filter(pk=pipeline.pk, stream=locked).first()
        if current is None:
            raise NotFound("pipeline not found")
        current.config = validated
        current.save(update_fields=["config"])
        if locked.active:
            _notify_on_commit(node_num=locked.node_id, action="reload", stream_id=locked.stream_id)
    return current
