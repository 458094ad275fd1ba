"""The one shape of an event from the analytic that sees it to the row and the
WebSocket message.

An analytic's processor fills what it knows (`EventRecord`: texts, pipeline
data, crop, embedding, search text, and when it was seen if earlier than the
frame that emits it). The stream runner stamps who saw it (`for_stream`: the
stream's identity, the analytic, the time). The node's event writer gives it
its id, queues it and, while the database is away, keeps it in its spool file
(`to_json` / `from_json`, one line each). The events service stores a batch of
them (events.services.events_create_batch) and the publisher builds the live
message from the stored row and the record (events.publisher).
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

# The spool line's version; `from_json` also reads lines written before it had one.
EVENT_VERSION = 1


class StreamIdentity(Protocol):
    """What an event is stamped with of its stream: a stream row (streams.models.Stream)
    in the API, the runner's desired state (workers.desired.DesiredStream) on a node."""

    @property
    def stream_id(self) -> str: ...
    @property
    def node_num(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def latitude(self) -> float: ...
    @property
    def longitude(self) -> float: ...


def json_plain(value: Any) -> Any:
    """`value` with numpy scalars and arrays (an analytic's arithmetic leaves them in
    its data) turned into Python numbers and lists, tuples into lists: what the
    database's JSON column and the event channel's JSON take. An event must never be
    lost to a float32."""
    if isinstance(value, dict):
        return {str(key): json_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_plain(item) for item in value]
    if hasattr(value, "dtype") and hasattr(value, "tolist"):
        return json_plain(value.tolist())
    return value


@dataclass(frozen=True)
class EventRecord:
    # What the analytic fills.
    primary_text: str = ""
    secondary_text: str = ""
    pipeline_data: dict[str, Any] = field(default_factory=dict)
    image_jpeg: bytes = b""
    embedding: list[float] | None = None
    search_text: str = ""
    # When what the event reports was seen (unix seconds). An analytic sets it when
    # that is earlier than the frame that emits it (a face track's event is made once
    # the track has ended); `for_stream` sets it to the frame's time otherwise.
    timestamp: float | None = None
    # What the runner stamps (`for_stream`).
    analytic_id: str = ""
    stream_id: str = ""
    node_num: int = 0
    stream_name: str = ""
    stream_address: str = ""
    stream_latitude: float = 0.0
    stream_longitude: float = 0.0
    # Given by a writer that may store the same event twice (a retry after a commit
    # whose outcome was lost): the row is then stored once, and its crop has a fixed
    # name whichever attempt saves it.
    event_id: uuid.UUID | None = None

    def for_stream(self, stream: StreamIdentity, *, analytic_id: str, emitted_at: float) -> EventRecord:
        """A copy stamped with the stream and analytic that emitted it at `emitted_at`
        (the frame's time; kept only when the analytic did not say when it saw it)."""
        return replace(
            self,
            analytic_id=analytic_id,
            stream_id=stream.stream_id,
            node_num=stream.node_num,
            stream_name=stream.name,
            stream_address=stream.address,
            stream_latitude=float(stream.latitude),
            stream_longitude=float(stream.longitude),
            timestamp=self.timestamp if self.timestamp is not None else emitted_at,
            pipeline_data=json_plain(self.pipeline_data),
        )

    def with_id(self) -> EventRecord:
        """This record with an event id (a fresh one unless it has one)."""
        return self if self.event_id is not None else replace(self, event_id=uuid.uuid4())

    @property
    def seen_at(self) -> datetime:
        """When it was seen; a record not stamped yet has no time (an error to store)."""
        if self.timestamp is None:
            raise ValueError("the event record has no timestamp: stamp it with for_stream")
        return datetime.fromtimestamp(self.timestamp, tz=UTC)

    # -- one JSON line (the event writer's spool), the crop in base64 ------------------
    def to_json(self) -> bytes:
        """TypeError or ValueError when something in it is not JSON (the database would refuse it too)."""
        body = asdict(self)
        body["image_jpeg"] = base64.b64encode(self.image_jpeg or b"").decode("ascii")
        body["event_id"] = self.event_id.hex if self.event_id is not None else None
        return (
            json.dumps({"v": EVENT_VERSION, **body}, separators=(",", ":"), allow_nan=False).encode() + b"\n"
        )

    @classmethod
    def from_json(cls, line: bytes | str) -> EventRecord:
        """ValueError, KeyError or TypeError for a line that is not an event."""
        body = json.loads(line)
        if not isinstance(body, dict):
            raise TypeError("an event line is a JSON object")
        if "record" in body:  # written before records carried their stream (no `v`)
            body = _unversioned(body)
        body.pop("v", None)
        known = cls.__dataclass_fields__
        fields = {name: value for name, value in body.items() if name in known}
        fields["image_jpeg"] = base64.b64decode(fields.get("image_jpeg") or "")
        if fields.get("event_id") is not None:
            fields["event_id"] = uuid.UUID(fields["event_id"])
        return cls(**fields)


def _unversioned(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a spool line of the earlier layout: the analytic's record, its
    stream, and the emitting frame's time beside them."""
    record = dict(body["record"])
    stream = body["stream"]
    if record.get("timestamp") is None:
        record["timestamp"] = body["timestamp"]
    return {
        **record,
        "analytic_id": body["analytic_id"],
        "stream_id": stream["stream_id"],
        "node_num": stream["node_num"],
        "stream_name": stream["name"],
        "stream_address": stream["address"],
        "stream_latitude": stream["latitude"],
        "stream_longitude": stream["longitude"],
        "event_id": body["event_id"],
    }
