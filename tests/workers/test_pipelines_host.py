"""PipelineHost follows pipeline changes without restarting the unchanged ones."""

import numpy as np

from analytics.plugins import Frame
from live.states import PipelineState
from workers.pipelines import PipelineHost, PipelineSpec

BRIGHT = PipelineSpec(analytic_id="TEST-BRIGHT", config={"sampling_time_ms": 0}, seat_active=True)


def frame(level: int, index: int) -> Frame:
    return Frame(
        np.full((8, 8, 3), level, np.uint8), timestamp=float(index), index=index, stream_id="s", node_num=0
    )


def test_unchanged_pipeline_keeps_its_processor_and_state():
    host = PipelineHost([BRIGHT])
    processor = host.slots[0].processor
    host.process(frame(200, 1))  # above threshold: its state remembers it
    assert host.update([BRIGHT]) == []
    assert host.slots[0].processor is processor and processor.above


def test_changed_pipeline_is_rebuilt_and_closed_one_flushed():
    host = PipelineHost([BRIGHT])
    old = host.slots[0]
    changed = PipelineSpec(analytic_id="TEST-BRIGHT", config={"threshold": 10.0}, seat_active=True)
    flushed = host.update([changed])
    assert [analytic_id for analytic_id, _ in flushed] == ["TEST-BRIGHT"]
    assert old.state == PipelineState.STOPPED
    assert host.slots[0] is not old and host.slots[0].processor.config.threshold == 10.0


def test_removed_pipeline_is_closed():
    host = PipelineHost([BRIGHT])
    assert [a for a, _ in host.update([])] == ["TEST-BRIGHT"]
    assert host.slots == []


def sampled(host: PipelineHost, stamps) -> list[float]:
    """The timestamps of the frames the host handed to its pipeline."""
    taken = []
    for index, stamp in enumerate(stamps, 1):
        image = np.zeros((8, 8, 3), np.uint8)
        if host.process(Frame(image, timestamp=stamp, index=index, stream_id="s", node_num=0)):
            taken.append(stamp)
    return taken


def test_sampling_follows_the_streams_time_not_the_processing():
    every_200ms = PipelineSpec(analytic_id="TEST-BRIGHT", config={"sampling_time_ms": 200}, seat_active=True)
    # 25 fps for 2 s: every fifth frame, 5 a second, whenever the frames are processed.
    stamps = [1000 + i * 0.04 for i in range(50)]
    assert sampled(PipelineHost([every_200ms]), stamps) == stamps[::5]
    # 5 fps frames a hair early (decoder timestamps): every one still counts.
    stamps = [1000 + i * 0.2 - 1e-6 * (i % 2) for i in range(20)]
    assert sampled(PipelineHost([every_200ms]), stamps) == stamps
    # A gap restarts the schedule; a clock set back an hour does not stop the sampling.
    stamps = [1000.0, 1000.2, 1005.0, 1005.2, 1005.28, 1005.4, 1005.6, 2000.0 - 3600, 2000.2 - 3600]
    assert sampled(PipelineHost([every_200ms]), stamps) == [
        1000.0, 1000.2, 1005.0, 1005.2, 1005.4, 1005.6, 2000.0 - 3600, 2000.2 - 3600,
    ]  # fmt: skip
