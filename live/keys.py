"""Every Redis key, channel and queue through which the API and the workers talk.

All live under the prefix `visionaire:` (see `live.redis.key`). Who writes and
who reads each is said beside it; the shapes of the values are in
`live.messages`, `live.frames` and `live.leases`.
"""

from __future__ import annotations

from .redis import key

# --- nodes -----------------------------------------------------------------------

# Set of node numbers that ever wrote a heartbeat (node agent writes).
NODES_SET_KEY = key("nodes")
# Pub/sub channel of `/system/restart`: the restart generation as text (API publishes).
RESTART_CHANNEL = key("control", "restart")
# The restart generation counter, compared by every heartbeat (API increments).
RESTART_GENERATION_KEY = key("control", "restart", "generation")


def heartbeat_key(node_num: int) -> str:
    """A node agent's heartbeat (`live.messages.Heartbeat`, JSON, expiring)."""
    return key("node", node_num, "heartbeat")


def node_runtime_key(node_num: int) -> str:
    """A worker's report on its own machinery (`live.messages.RuntimeReport`,
    JSON, expiring like a heartbeat)."""
    return key("node", node_num, "runtime")


def node_info_key(node_num: int) -> str:
    """Last known facts about a node (run mode, address), kept without a TTL so an
    offline node still reports how it last ran."""
    return key("node", node_num, "info")


def node_queue(node_num: int) -> str:
    """The Celery queue that only node `node_num`'s worker consumes (stream tasks)."""
    return f"node.{node_num}"


# --- streams -----------------------------------------------------------------------


def control_queue(node_num: int) -> str:
    """The bounded list of control messages for a node (`live.messages.ControlMessage`):
    the API pushes, the node's control listener pops."""
    return key("control", "node", node_num, "queue")


def lease_key(stream_id: str) -> str:
    """The lease of a running stream (`live.leases.Lease`): held by its runner."""
    return key("lease", "stream", stream_id)


def starting_key(stream_id: str) -> str:
    """Marks a start queued for the stream but not yet taken up (workers.control)."""
    return key("starting", stream_id)


def stream_stats_key(stream_id: str) -> str:
    """A stream's live figures (`live.messages.StreamStats`, a hash): its runner writes."""
    return key("stream", stream_id, "stats")


def pipeline_stats_key(stream_id: str, analytic_id: str) -> str:
    """A pipeline's live figures (`live.messages.PipelineStats`, a hash): its runner writes."""
    return key("pipeline", stream_id, analytic_id)


def watch_key(stream_id: str) -> str:
    """The frame rate viewers of a stream ask for (API processes keep it alive;
    the runner publishes frames while it exists; see `live.frames`)."""
    return key("watch", stream_id)


def live_channel(stream_id: str) -> str:
    """Pub/sub channel of a watched stream's frames (`live.frames`): the runner publishes."""
    return key("live", stream_id)


# --- platform ------------------------------------------------------------------------

# The configuration's version counter: every process reloads its copy when it moves.
CONFIG_VERSION_KEY = key("config", "version")
# The lock of the events retention job (one run at a time in the cluster).
RETENTION_LOCK_KEY = key("retention", "lock")
