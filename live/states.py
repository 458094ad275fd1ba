"""The states of a stream and of a pipeline, as the runtime writes them to Redis
and the API reports them (`stream_stats.state`, `pipeline stats.state`)."""

from __future__ import annotations

from enum import StrEnum

# What the runtime says of a running stream (last_error_msg), and the viewing routes repeat.
RUNNING_MESSAGE = "Stream is running.."


class StreamState(StrEnum):
    """A stream's state, written by its runner every second.

    Transitions:

    - INITIALIZING → RUNNING (first frame) ⇄ RECONNECTING (source fault, and back
      once frames come again);
    - any → TERMINATING (the runner is stopping) → STOPPED (stream deactivated,
      deleted, or a file source that reached its end without looping);
    - any → ERROR when the runner itself failed (configuration unreadable, a bug):
      it retries after a pause, starting again at INITIALIZING.

    Before any runner has written: INITIALIZING for an active stream, STOPPED for
    an inactive one (the API says so itself).
    """

    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    RECONNECTING = "RECONNECTING"
    STOPPED = "STOPPED"
    ERROR = "ERROR"
    TERMINATING = "TERMINATING"


class PipelineState(StrEnum):
    """A pipeline's state, written by its stream's runner.

    Transitions: PENDING (nothing written yet) → RUNNING (processes frames), or
    NO_SEAT (holds no active seat: not run), or ERROR (could not be set up; its
    message says why); any → STOPPED when the stream stops. A change of the
    pipeline or of its seat starts it again from its new spec.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    NO_SEAT = "NO_SEAT"
    ERROR = "ERROR"
    STOPPED = "STOPPED"
