"""Hands events from stream runners to the store, off the frame loop, in batches,
and keeps them while the store cannot take them.

One writer thread per worker process drains a bounded in-memory queue: it takes
up to EVENT_BATCH_SIZE events, waiting at most EVENT_BATCH_WAIT_MS after the
first for others to join, and stores them in one transaction
(`events.services.events_create_batch`: crops, one multi-row INSERT, then the
live publish after commit). A stream never waits on its database.

When PostgreSQL is unavailable (or the writer falls behind), nothing is lost
up to documented bounds:

- the batch in hand is retried with backoff (EVENT_RETRY_* below) until the
  database answers; meanwhile new events fill the memory queue
  (EVENT_QUEUE_CAPACITY events), then go to a spool file under the data folder
  (`<data dir>/spool/events-node<N>.jsonl`, crops inline, at most
  EVENT_SPOOL_MAX_BYTES); once the spool holds events, new ones go behind them,
  so the store receives events in the order they were submitted;
- when the database is back: the batch in hand, the memory queue, then the
  spool, in order; the spool file is emptied once replayed. A worker that stops
  during an outage writes what it holds in memory to the front of the spool,
  and the next one replays it;
- only past the spool's bound (or with no spool, past the memory queue) is an
  event dropped, and counted.

Each event gets its id (and its crop's file name) when submitted, and the store
skips ids it already holds, so a batch retried after a commit whose outcome was
lost (the connection died during COMMIT), or a spool replayed again after a
crash, is stored exactly once. An event the database refuses (bad data) is not
retried: the batch is stored one by one and only that event is counted failed.
The counts are in `stats()` and reach `/metrics`.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import TypedDict

from django.conf import settings
from django.db import connection

from core.db import database_outage
from events.services import events_create_batch
from live.events import EventRecord

logger = logging.getLogger(__name__)

# Retries of a batch while the database is unavailable: doubling delays, capped
# (a retry costs little: the process knows the server is gone and fails at once).
EVENT_RETRY_INITIAL_SECONDS = 0.5
EVENT_RETRY_MAX_SECONDS = 2.0


class SpoolFull(Exception):
    pass


class Spool:
    """An append-only file of pending events (one JSON line each), read from the
    front by the writer and emptied once all of it is stored.

    Every access happens under the sink's lock (appends from runner threads,
    reads by the writer). A process holds its file with an exclusive lock; a
    second process of the same node on this host takes the next free name, so
    two never share one.
    """

    def __init__(self, directory: Path, stem: str, max_bytes: int):
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._file = None
        for index in range(100):
            path = directory / (f"{stem}.jsonl" if index == 0 else f"{stem}.{index}.jsonl")
            handle = open(path, "a+b")  # noqa: SIM115 (held, locked, for the sink's lifetime)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.path, self._file = path, handle
            break
        if self._file is None:
            raise OSError(f"no free spool file for {stem} in {directory}")
        self.size = self._file.seek(0, os.SEEK_END)
        if self.size:  # a line cut short by a crash (or a full disk) is not an event
            self._file.seek(max(0, self.size - 1))
            if self._file.read(1) != b"\n":
                self._file.seek(0)
                whole = self._file.read().rfind(b"\n") + 1
                self._file.truncate(whole)
                self.size = whole
        self.read_at = 0
        # What is left from a process that stopped or died: replayed first (the
        # store skips what it already has). Counted by lines.
        self.pending = self._count_lines() if self.size else 0

    def _count_lines(self) -> int:
        self._file.seek(0)
        return sum(1 for _ in self._file)

    def append(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        if self.size + len(data) > self.max_bytes:
            raise SpoolFull
        try:
            self._file.seek(self.size)
            self._file.write(data)
            self._file.flush()  # in the OS's hands: a crash of this process loses nothing
        except OSError:
            # A full disk can leave part of a line: cut it, or the next line would be unreadable.
            with contextlib.suppress(OSError):
                self._file.truncate(self.size)
            raise
        self.size += len(data)
        self.pending += len(lines)

    def prepend(self, lines: list[bytes]) -> None:
        """Put `lines` before what is unread (a stop during an outage): the file is
        rewritten, which is rare and bounded by max_bytes."""
        data = b"".join(lines)
        self._file.seek(self.read_at)
        rest = self._file.read(self.size - self.read_at)
        self._file.seek(0)
        self._file.truncate()
        self._file.write(data + rest)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.size, self.read_at = len(data) + len(rest), 0
        self.pending += len(lines)

    def read(self, limit: int, end: int) -> tuple[list[bytes], int]:
        """Up to `limit` lines from the read position, none past `end`; and the
        position after them (commit it with `advance` once they are stored)."""
        self._file.seek(self.read_at)
        lines: list[bytes] = []
        position = self.read_at
        while len(lines) < limit and position < end:
            line = self._file.readline()
            if not line.endswith(b"\n"):
                break
            lines.append(line)
            position += len(line)
        return lines, position

    def advance(self, position: int, count: int) -> None:
        self.read_at = position
        self.pending = max(0, self.pending - count)

    def reset_if_done(self) -> bool:
        """Empty the file once everything in it was stored (call under the sink's lock)."""
        if self.read_at < self.size:
            return False
        self._file.seek(0)
        self._file.truncate()
        self.size = self.read_at = self.pending = 0
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


class SinkStats(TypedDict):
    queued: int  # waiting in memory now
    capacity: int
    submitted: int  # events handed to submit()
    written: int  # stored (and handed to the live publish)
    dropped: int  # lost: past the spool's bound (or the memory queue's, without a spool), or after stop
    failed: int  # refused by the database as bad (logged)
    batches: int  # transactions committed
    last_batch_size: int
    last_batch_ms: float
    spilled: int  # events written to the spool file
    replayed: int  # events stored from the spool file
    spooled: int  # in the spool file, not stored yet
    spool_bytes: int
    retries: int  # store attempts that failed because the database was unavailable
    database_up: bool  # the last store attempt reached the database


class EventSink:
    def __init__(
        self,
        capacity: int,
        *,
        batch_size: int = 100,
        batch_wait_s: float = 0.05,
        spool_dir: Path | None = None,
        spool_stem: str = "events",
        spool_max_bytes: int = 0,
        retry_initial_s: float = EVENT_RETRY_INITIAL_SECONDS,
        retry_max_s: float = EVENT_RETRY_MAX_SECONDS,
    ) -> None:
        self.capacity = capacity
        self.batch_size = max(1, batch_size)
        self.batch_wait_s = max(0.0, batch_wait_s)
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = max(retry_initial_s, retry_max_s)
        self._memory: collections.deque[EventRecord] = collections.deque()
        self._cond = threading.Condition()  # guards the queue, the spool's appends and the counters
        self.spool: Spool | None = None
        if spool_dir and spool_max_bytes:
            try:
                self.spool = Spool(spool_dir, spool_stem, spool_max_bytes)
            except OSError as exc:  # the writer still works, bounded by memory alone
                logger.error(
                    "no event spool (%s): past %d events in memory, events are dropped", exc, capacity
                )
        # While the spool holds events, new ones go behind them (keeps the order).
        self._spilling = bool(self.spool and self.spool.pending)
        self._in_hand = 0  # events taken by the writer and not yet settled
        self.submitted = 0
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self.batches = 0
        self.spilled = 0
        self.replayed = 0
        self.retries = 0
        self.database_up = True
        self.last_batch_size = 0
        self.last_batch_ms = 0.0
        self._stopping = False
        self._stop_requested = threading.Event()  # ends a retry's wait (submits must not)
        if self._spilling:
            logger.warning(
                "event spool %s holds %d events from before: storing them",
                self.spool.path,
                self.spool.pending,
            )
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    # -- runner threads -------------------------------------------------------------
    def submit(self, record: EventRecord) -> bool:
        """Queue one event (stamped by `EventRecord.for_stream`); False when dropped.
        It gets its id here, so a retried or replayed store keeps it once."""
        item = record.with_id()
        with self._cond:
            self.submitted += 1
            if self._stopping:
                return self._drop("the event writer is stopped")
            if not self._spilling and len(self._memory) < self.capacity:
                self._memory.append(item)
                self._cond.notify_all()
                return True
            if self.spool is None:
                return self._drop("the event writer's queue is full")
            try:
                line = item.to_json()
            except (TypeError, ValueError) as exc:  # not JSON: the database would refuse it too
                self.failed += 1
                logger.warning("event of %s on %s not kept: %s", item.analytic_id, item.stream_id, exc)
                return False
            try:
                self.spool.append([line])
            except SpoolFull:
                return self._drop(f"the event spool is full ({self.spool.max_bytes} bytes)")
            except OSError as exc:
                return self._drop(f"the event spool cannot be written: {exc}")
            if not self._spilling:
                logger.warning(
                    "event writer behind (database unavailable or slow): spilling to %s", self.spool.path
                )
            self._spilling = True
            self.spilled += 1
            self._cond.notify_all()
            return True

    def _drop(self, why: str) -> bool:
        # Called with the lock held.
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 100 == 0:
            logger.warning("%s: %d events dropped so far", why, self.dropped)
        return False

    # -- observers --------------------------------------------------------------------
    def stats(self) -> SinkStats:
        with self._cond:
            return SinkStats(
                queued=len(self._memory),
                capacity=self.capacity,
                submitted=self.submitted,
                written=self.written,
                dropped=self.dropped,
                failed=self.failed,
                batches=self.batches,
                last_batch_size=self.last_batch_size,
                last_batch_ms=round(self.last_batch_ms, 2),
                spilled=self.spilled,
                replayed=self.replayed,
                spooled=self.spool.pending if self.spool else 0,
                spool_bytes=self.spool.size if self.spool else 0,
                retries=self.retries,
                database_up=self.database_up,
            )

    def _settled(self) -> bool:
        return not self._memory and not self._in_hand and not (self.spool and self.spool.pending)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted event was stored, failed or dropped (tests, shutdown)."""
        with self._cond:
            return self._cond.wait_for(self._settled, timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Store what is held, then end the writer thread and its database
        connection (worker shutdown). With the database unavailable, what memory
        holds goes to the front of the spool for the next start. Events
        submitted after this are dropped."""
        with self._cond:
            self._stopping = True
            self._stop_requested.set()
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the writer thread --------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                taken = self._take()
                if taken is None:
                    return
                batch, spool_position = taken
                count = len(batch)
                if not self._store(batch):  # stopping while the database is unavailable
                    self._persist_on_stop(batch)
                    return
                with self._cond:
                    if spool_position is not None and self.spool is not None:
                        self.spool.advance(spool_position, count)
                        self.replayed += count
                        if not self._memory and self.spool.reset_if_done():
                            self._spilling = False
                            logger.warning("event spool replayed: the writer is back to memory")
                    self._in_hand = 0
                    self._cond.notify_all()
        except Exception:  # a bug: say so loudly; what memory holds is kept on disk if possible
            logger.exception("the event writer stopped on an unexpected error")
            self._persist_on_stop([])
            raise
        finally:
            if self.spool is not None:
                self.spool.close()
            connection.close()  # this thread's own connection

    def _take(self) -> tuple[list[EventRecord], int | None] | None:
        """The next batch: from memory (older) first, then from the spool. Waits
        up to `batch_wait_s` after the first event for others to join it. None
        when stopping and nothing more should be stored from memory."""
        with self._cond:
            while True:
                if self._memory:
                    break
                spool_end = self.spool.size if self.spool and self._spilling and not self._stopping else 0
                if spool_end and self.spool.read_at < spool_end:
                    lines, position = self.spool.read(self.batch_size, spool_end)
                    batch = []
                    for line in lines:
                        try:
                            batch.append(EventRecord.from_json(line))
                        except (ValueError, KeyError, TypeError) as exc:
                            self.failed += 1
                            logger.warning("unreadable line in %s skipped: %s", self.spool.path, exc)
                    self.spool.advance(position, len(lines) - len(batch))
                    if not batch:
                        continue
                    self._in_hand = len(batch)
                    return batch, position
                if self._stopping:
                    return None
                self._cond.wait()
            if not self._stopping:
                deadline = time.monotonic() + self.batch_wait_s
                while len(self._memory) < self.batch_size and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._cond.wait(remaining):
                        break
            batch = [self._memory.popleft() for _ in range(min(self.batch_size, len(self._memory)))]
            self._in_hand = len(batch)
            return batch, None

    def _store(self, batch: list[EventRecord]) -> bool:
        """Store `batch`, retrying while the database is unavailable; False when a
        stop arrived before the database came back (the batch is still unstored)."""
        delay = self.retry_initial_s
        since: float | None = None
        while True:
            outage = self._write(batch)
            if outage is None:
                if since is not None:
                    logger.warning("event writer: the database is back after %.0fs", time.monotonic() - since)
                return True
            with self._cond:
                self.retries += 1
                self.database_up = False
                held = len(batch) + len(self._memory) + (self.spool.pending if self.spool else 0)
            if since is None:  # once per outage, not once per retry
                since = time.monotonic()
                logger.warning(
                    "event writer: %s; keeping %d events, retrying every %gs at most",
                    outage,
                    held,
                    self.retry_max_s,
                )
            if self._stop_requested.wait(delay):
                return False
            delay = min(delay * 2, self.retry_max_s)

    def _write(self, batch: list[EventRecord]) -> str | None:
        """One attempt; None when every event is settled (stored or failed), else
        the outage that stopped it (the unsettled events stay in `batch`, in order)."""
        started = time.perf_counter()
        try:
            events_create_batch(records=batch)
            self._count(len(batch), 0, started)
            batch.clear()
            return None
        except Exception as exc:
            outage = database_outage(exc)
            if outage is not None:
                connection.close()
                return outage
            # One bad event must not cost the others: store them one by one.
            logger.exception("batch of %d events not stored; retrying one by one", len(batch))
            connection.close()
        stored = failed = 0
        while batch:
            item = batch[0]
            try:
                events_create_batch(records=[item])
                stored += 1
            except Exception as exc:
                outage = database_outage(exc)
                if outage is not None:
                    connection.close()
                    self._count(stored, failed, started)
                    return outage
                logger.exception("event of %s on %s not stored", item.analytic_id, item.stream_id)
                failed += 1
            batch.pop(0)
        self._count(stored, failed, started)
        return None

    def _count(self, stored: int, failed: int, started: float) -> None:
        with self._cond:
            self.written += stored
            self.failed += failed
            self.database_up = True
            self.batches += 1
            self.last_batch_size = stored + failed
            self.last_batch_ms = (time.perf_counter() - started) * 1000
            self._in_hand -= stored + failed
            self._cond.notify_all()

    def _persist_on_stop(self, batch: list[EventRecord]) -> None:
        """Stopping with the database unavailable: the batch in hand and the memory
        queue go to the front of the spool (they are older than what it holds)."""
        with self._cond:
            held = [*batch, *self._memory]
            self._memory.clear()
            self._in_hand = 0
            if not held:
                return
            if self.spool is None:
                self.dropped += len(held)
                logger.warning(
                    "event writer stopped with the database unavailable: %d events lost", len(held)
                )
                return
            try:
                self.spool.prepend([item.to_json() for item in held])
            except (OSError, TypeError, ValueError) as exc:
                self.dropped += len(held)
                logger.warning("event writer stopped: %d events could not be spooled (%s)", len(held), exc)
                return
            self.spilled += len(held)
            logger.warning("event writer stopped with the database unavailable: %d events spooled", len(held))


_sink_lock = threading.Lock()
_sink: EventSink | None = None


def event_sink() -> EventSink:
    """The process's event writer, started on first use: one per process, even when
    several stream runners emit their first events at once."""
    global _sink
    with _sink_lock:
        if _sink is None:
            _sink = EventSink(
                capacity=settings.EVENT_QUEUE_CAPACITY,
                batch_size=settings.EVENT_BATCH_SIZE,
                batch_wait_s=settings.EVENT_BATCH_WAIT_MS / 1000,
                spool_dir=Path(settings.EVENT_SPOOL_DIR),
                spool_stem=f"events-node{settings.NODE_NUM}",
                spool_max_bytes=settings.EVENT_SPOOL_MAX_BYTES,
            )
        return _sink


def event_sink_started() -> EventSink | None:
    """The process's sink if something already used it (never starts one)."""
    return _sink


def event_sink_forget() -> None:
    """Forget the process's sink without stopping it (tests): the next
    `event_sink()` starts another."""
    global _sink
    with _sink_lock:
        _sink = None
