"""The model-agnostic batching runtime (analytics/batching.py): many producers
each get their own items' results, batches form from what waits, a lone item
does not wait past max_wait, a full queue refuses at once, a model error reaches
every caller of its batch and the runtime goes on, a stop is orderly.

The model here is a plain function (items times two), gated where a test needs
the model busy: what is tested is the runtime's bookkeeping, not a network (the
face embedder and the object detector are tested through it with their real
models in tests/face/test_embed_batching.py and tests/objects/test_batching.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from analytics.batching import BatchingRuntime, ModelBusy, ModelStopped

WAIT = 60  # seconds: generous, the machine may be loaded


def await_condition(predicate, message: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.01)


class Model:
    """Doubles its items; records each batch; can be held (gate) or made to fail."""

    def __init__(self, *, gated: bool = False) -> None:
        self.batches: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not gated:
            self.release.set()
        self.fail: Exception | None = None
        self.lock = threading.Lock()

    def __call__(self, items):
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the model"
        with self.lock:
            self.batches.append(len(items))
        if self.fail is not None:
            raise self.fail
        return [item * 2 for item in items]


class Caller(threading.Thread):
    def __init__(self, runtime, items):
        super().__init__(daemon=True)
        self.runtime, self.items = runtime, items
        self.result = self.error = None

    def run(self):
        try:
            self.result = self.runtime.call(self.items, timeout=WAIT)
        except Exception as exc:
            self.error = exc


@pytest.mark.parametrize("batch_size", [1, 4, 16])
def test_many_producers_each_get_their_own_results(batch_size):
    model = Model()
    runtime = BatchingRuntime(model, batch_size=batch_size, max_wait_ms=20, capacity=256)
    producers, rounds = 8, 20
    start = threading.Barrier(producers)
    results: dict[int, list] = {}
    errors: list[Exception] = []

    def produce(index: int) -> None:
        try:
            start.wait(WAIT)
            got = []
            for round_ in range(rounds):
                # 1 to 5 items per call, each unique to this producer and round.
                items = [
                    np.full(3, 1000 * index + 10 * round_ + k, dtype=np.float32)
                    for k in range(1 + round_ % 5)
                ]
                got.append((items, runtime.call(items, timeout=WAIT)))
            results[index] = got
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(i,), daemon=True) for i in range(producers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert not errors, errors
        total = 0
        for index in range(producers):
            assert len(results[index]) == rounds
            for items, answer in results[index]:
                assert len(answer) == len(items)
                for item, result in zip(items, answer, strict=True):
                    np.testing.assert_array_equal(result, item * 2)
                total += len(items)
        stats = runtime.stats()
        assert stats["requests"] == stats["completed"] == producers * rounds
        assert stats["items"] == total == sum(model.batches)
        assert stats["busy"] == stats["failed"] == stats["queued"] == stats["in_flight"] == 0
        assert max(model.batches) <= max(batch_size, 5)  # at batch size 1 a call runs all its items
        if batch_size > 1:
            assert max(model.batches) <= batch_size
            # Eight producers at once: calls shared model calls.
            assert stats["batches"] < producers * rounds and stats["mean_batch_size"] > 1, stats
        else:
            assert stats["batches"] == producers * rounds
    finally:
        assert runtime.stop(WAIT)


def test_what_waits_goes_in_one_batch_and_a_lone_item_does_not_wait_for_company():
    model = Model(gated=True)
    runtime = BatchingRuntime(model, batch_size=8, max_wait_ms=0, capacity=64)
    try:
        first = Caller(runtime, [1])
        first.start()
        assert model.entered.wait(WAIT)
        # Three calls (6 items) queue while the model is busy with the first.
        waiting = [Caller(runtime, [10 * i, 10 * i + 1]) for i in range(1, 4)]
        for caller in waiting:
            caller.start()
        await_condition(lambda: runtime.stats()["queued"] == 6, "six items should be queued")
        model.release.set()
        for caller in [first, *waiting]:
            caller.join(WAIT)
            assert caller.error is None, caller.error
            assert caller.result == [2 * item for item in caller.items]
        assert model.batches == [1, 6]
    finally:
        model.release.set()
        assert runtime.stop(WAIT)

    # A lone item is inferred after max_wait, without company.
    model = Model()
    runtime = BatchingRuntime(model, batch_size=32, max_wait_ms=30, capacity=64)
    try:
        assert runtime.call([21], timeout=WAIT) == [42]
        assert model.batches == [1]
        assert runtime.stats()["max_wait_ms"] == pytest.approx(30)
    finally:
        assert runtime.stop(WAIT)


def test_batches_never_exceed_the_batch_size_and_a_call_may_span_several():
    model = Model(gated=True)
    runtime = BatchingRuntime(model, batch_size=3, max_wait_ms=0, capacity=64)
    try:
        first = Caller(runtime, [0])
        first.start()
        assert model.entered.wait(WAIT)
        big = Caller(runtime, list(range(1, 8)))  # 7 items: batches of 3, 3, 1
        big.start()
        await_condition(lambda: runtime.stats()["queued"] == 7, "seven items should be queued")
        model.release.set()
        big.join(WAIT)
        first.join(WAIT)
        assert big.error is None and big.result == [2 * i for i in range(1, 8)]
        assert model.batches == [1, 3, 3, 1]
    finally:
        model.release.set()
        assert runtime.stop(WAIT)


@pytest.mark.parametrize("batch_size", [2, 1])
def test_a_full_queue_refuses_at_once_and_the_runtime_goes_on(batch_size):
    model = Model(gated=True)
    runtime = BatchingRuntime(model, batch_size=batch_size, max_wait_ms=0, capacity=4, label="the test model")
    try:
        busy_with = [Caller(runtime, [1])]
        busy_with[0].start()
        assert model.entered.wait(WAIT)
        if batch_size > 1:
            # The queue (not the batch in flight) holds the capacity: 4 more items.
            busy_with += [Caller(runtime, [2, 3]), Caller(runtime, [4, 5])]
            for caller in busy_with[1:]:
                caller.start()
            await_condition(lambda: runtime.stats()["queued"] == 4, "four items should be queued")
        else:
            # At batch size 1 the items running in their callers' threads hold it.
            busy_with += [Caller(runtime, [2, 3, 4])]
            busy_with[1].start()
            await_condition(lambda: runtime.stats()["in_flight"] == 4, "four items should be running")

        started = time.monotonic()
        with pytest.raises(ModelBusy, match="the test model's queue is full \\(4 items\\)"):
            runtime.call([9], timeout=WAIT)
        assert time.monotonic() - started < WAIT  # refused, not queued behind the held model
        assert runtime.stats()["busy"] == 1

        model.release.set()
        for caller in busy_with:
            caller.join(WAIT)
            assert caller.error is None, caller.error
            assert caller.result == [2 * item for item in caller.items]
        # Room again; a call larger than the capacity runs in parts.
        assert runtime.call(list(range(10)), timeout=WAIT) == [2 * i for i in range(10)]
        stats = runtime.stats()
        assert stats["busy"] == 1 and stats["completed"] == len(busy_with) + 1
        assert stats["requests"] == len(busy_with) + 2
    finally:
        model.release.set()
        assert runtime.stop(WAIT)


@pytest.mark.parametrize("batch_size", [8, 1])
def test_a_model_error_reaches_every_waiter_and_the_runtime_keeps_working(batch_size):
    model = Model(gated=True)
    model.fail = RuntimeError("the model broke")
    runtime = BatchingRuntime(model, batch_size=batch_size, max_wait_ms=0, capacity=64)
    try:
        callers = [Caller(runtime, [i, i + 100]) for i in range(3)]
        callers[0].start()
        assert model.entered.wait(WAIT)
        for caller in callers[1:]:
            caller.start()
        if batch_size > 1:
            await_condition(lambda: runtime.stats()["queued"] == 4, "two calls should be queued")
        else:
            await_condition(lambda: runtime.stats()["in_flight"] == 6, "three calls should be running")
        model.release.set()
        for caller in callers:
            caller.join(WAIT)
            assert isinstance(caller.error, RuntimeError) and str(caller.error) == "the model broke"
        # The next calls are answered.
        model.fail = None
        assert runtime.call([7, 8], timeout=WAIT) == [14, 16]
        stats = runtime.stats()
        assert stats["failed"] == 3 and stats["completed"] == 1 and runtime.running
    finally:
        model.release.set()
        assert runtime.stop(WAIT)


def test_a_wrong_number_of_results_is_an_error_not_a_mixup():
    runtime = BatchingRuntime(lambda items: items[:-1], batch_size=4, max_wait_ms=0, capacity=8)
    try:
        with pytest.raises(RuntimeError, match="answered 1 results for 2 items"):
            runtime.call([1, 2], timeout=WAIT)
    finally:
        assert runtime.stop(WAIT)


def test_stop_finishes_the_batch_in_flight_and_fails_the_queued_ones():
    model = Model(gated=True)
    runtime = BatchingRuntime(model, batch_size=2, max_wait_ms=0, capacity=8)
    in_flight = Caller(runtime, [1])
    in_flight.start()
    assert model.entered.wait(WAIT)
    queued = Caller(runtime, [2])
    queued.start()
    await_condition(lambda: runtime.stats()["queued"] == 1, "the second call should be queued")
    assert runtime.stop(timeout=0) is False  # the model is still busy
    with pytest.raises(ModelStopped):
        runtime.call([3])
    model.release.set()
    in_flight.join(WAIT)
    queued.join(WAIT)
    assert runtime.stop(WAIT) is True and not runtime.running
    assert in_flight.error is None and in_flight.result == [2]
    assert isinstance(queued.error, ModelStopped)


def test_a_caller_that_waits_too_long_gets_a_timeout():
    model = Model(gated=True)
    runtime = BatchingRuntime(model, batch_size=2, max_wait_ms=0, capacity=8, label="the slow model")
    try:
        with pytest.raises(TimeoutError, match="the slow model gave no answer within 0.2 s"):
            runtime.call([1], timeout=0.2)
    finally:
        model.release.set()
        assert runtime.stop(WAIT)
