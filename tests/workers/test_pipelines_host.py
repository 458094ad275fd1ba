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
