"""How well this platform's face engine recognises people: measured on a folder
of labelled photos (one sub-folder per person), through the engine's own
detection, alignment and embedding (not the HTTP routes), so that the figures
are the ones enrollment and recognition would see.

- Verification: every same-person pair and every cross-identity pair of photos
  with a face; the similarity at which the false-accept rate (FAR) falls to
  1e-2 / 1e-3 / 1e-4 and the true-accept rate (TAR) there, plus the score
  distributions (same person p5/median, different people median/p99/max). A FAR
  needs at least 1/FAR cross-identity pairs to be measured; it is null below.
  Pairs are counted in histograms of 1e-4 similarity (memory does not grow
  with the number of pairs; thresholds are exact to 1e-4).
- Open set 1:N: the people are shuffled (a seed) and split in two halves; one
  photo of each person of the first half is enrolled (the first photo that
  passes the enrollment quality check), the second half are strangers. For each
  gallery size (10/100/1000, those the first half allows; the whole half when
  it allows none) the gallery holds that many enrolled people, people with
  other photos to probe first; probes are their other photos (mated) and every
  photo of the strangers (non-mated). Per decision threshold: the false-name
  rate (a stranger's best score reaches it), the rank-1 genuine accept (the
  right person is best and reaches it) and the misnamed rate (a wrong enrolled
  person is best and reaches it). Thresholds: the fixed one in settings
  (`FACE_MATCH_THRESHOLD`), the one the embedder's score model puts in force
  for `max_false_match_rate` at that gallery size (`analytics.face.calibration`),
  and the one that meets that rate on these strangers (when there are enough).
- Enrollment refusal: the share of photos the quality check
  (`analytics.face.quality`) refuses, by reason; people left with none.

`evaluate()` returns a JSON-able dict; `face_eval` prints it.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from django.conf import settings

from analytics.face.calibration import ScoreModel, score_model
from analytics.face.quality import QualityLimits, assess

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
FARS = (1e-2, 1e-3, 1e-4)
GALLERY_SIZES = (10, 100, 1000)
HISTOGRAM_BINS = 10_000  # similarity resolution 1e-4
# Similarity rows computed at once in the pair loop: about this many scores (~16 MB).
_PAIR_BLOCK = 4_000_000
# Faces embedded per run of the embedder (its own batch limit applies inside).
_EMBED_BATCH = 32


class EvaluationError(ValueError):
    """The folder cannot be evaluated (the message says why)."""


@dataclass
class Photo:
    person: str
    path: Path
    embedding: np.ndarray | None = None  # None: unreadable or no face
    refusals: list[str] = field(default_factory=list)  # enrollment refusal codes; empty: accepted
    quality: dict | None = None


def photos_in(folder: Path) -> list[Photo]:
    """The photos of a folder with one sub-folder per person (hidden entries and
    other files ignored), in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"{folder} is not a folder")
    photos = [
        Photo(person=person.name, path=path)
        for person in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        for path in sorted(person.iterdir())
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in PHOTO_SUFFIXES
    ]
    people = {photo.person for photo in photos}
    if len(people) < 2:
        suffixes = ", ".join(sorted(PHOTO_SUFFIXES))
        raise EvaluationError(
            f"{folder} needs at least two sub-folders (one per person) with photos ({suffixes}); "
            f"found photos of {len(people)}"
        )
    return photos


class Progress:
    """A progress line on stderr: a bar redrawn in place on a terminal, a line
    every 10 % otherwise (logs). Hand-written: tqdm is not among the platform's
    locked dependencies."""

    def __init__(self, total: int, label: str, stream=None, enabled: bool = True):
        self.total, self.label, self.done = max(1, total), label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1

    def update(self, count: int = 1) -> None:
        self.done = min(self.total, self.done + count)
        if not self.enabled:
            return
        now = time.monotonic()
        finished = self.done >= self.total
        if self.tty:
            if finished or now - self._last_draw >= 0.2:
                self._last_draw = now
                self.stream.write("\r" + self._line(now))
                self.stream.flush()
        else:
            decile = self.done * 10 // self.total
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(self._line(now) + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        filled = round(30 * self.done / self.total)
        eta = "?" if math.isinf(left) else f"{int(left // 60)}:{int(left % 60):02d}"
        return (
            f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
            f"{rate:.1f}/s, {eta} left"
        )


# --- embedding ---------------------------------------------------------------------


def embed_photos(
    photos: list[Photo], *, engine, limits: QualityLimits, min_score: float, progress: Progress | None = None
) -> None:
    """Fills each photo's embedding, quality and refusals in place: the largest
    face (as a search does), assessed and embedded as enrollment would."""
    embedder = engine.embedder
    batched = hasattr(embedder, "embed_chips")
    pending: list[tuple[Photo, np.ndarray]] = []

    def flush() -> None:
        if pending:
            vectors = embedder.embed_chips(np.stack([chip for _, chip in pending]))
            for (photo, _), vector in zip(pending, vectors, strict=True):
                photo.embedding = vector
            if progress:
                progress.update(len(pending))
            pending.clear()

    for photo in photos:
        image = _read(photo.path)
        faces = [] if image is None else engine.detector.detect(image, min_score=min_score)
        if not faces:
            photo.refusals = ["unreadable" if image is None else "no_face"]
            if progress:
                progress.update()
            continue
        face = max(faces, key=lambda found: found.box[2] * found.box[3])
        quality, chip = assess(embedder, image, face)
        photo.quality = quality.as_dict()
        photo.refusals = [refusal.code for refusal in quality.refusals(limits)]
        if batched:
            pending.append((photo, chip))
            if len(pending) >= _EMBED_BATCH:
                flush()
        else:
            photo.embedding = embedder.embed(image, face)
            if progress:
                progress.update()
    flush()


def _read(path: Path) -> np.ndarray | None:
    try:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError:
        return None
    # imdecode rather than imread: paths with any characters, and no exceptions.
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


# --- verification --------------------------------------------------------------------


class _Histogram:
    """Counts of similarities in [0, 1] in bins of 1/HISTOGRAM_BINS, and the
    `keep` most extreme pairs (highest or lowest) with their photo indices:
    the pairs to look at for labelling mistakes."""

    def __init__(self, *, keep: int = 10, highest: bool = True) -> None:
        self.counts = np.zeros(HISTOGRAM_BINS + 1, dtype=np.int64)
        self.maximum = -math.inf
        self.keep, self.highest = keep, highest
        self.extremes: list[tuple[float, int, int]] = []

    def add(
        self, values: np.ndarray, first: np.ndarray | None = None, second: np.ndarray | None = None
    ) -> None:
        if values.size:
            index = np.clip((values * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS)
            self.counts += np.bincount(index, minlength=HISTOGRAM_BINS + 1)
            self.maximum = max(self.maximum, float(values.max()))
            if first is not None and second is not None and self.keep:
                signed = values if self.highest else -values
                top = (
                    np.argpartition(-signed, self.keep)[: self.keep]
                    if signed.size > self.keep
                    else range(signed.size)
                )
                merged = self.extremes + [(float(values[k]), int(first[k]), int(second[k])) for k in top]
                merged.sort(key=lambda item: -item[0] if self.highest else item[0])
                self.extremes = merged[: self.keep]

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def at_or_above(self, threshold: float) -> int:
        """Pairs whose similarity's bin starts at or above `threshold`."""
        start = int(math.ceil(threshold * HISTOGRAM_BINS - 1e-9))
        return int(self.counts[max(0, start) :].sum())

    def quantile(self, q: float) -> float:
        """The lower edge of the bin holding the q-quantile."""
        cumulative = np.cumsum(self.counts)
        index = int(np.searchsorted(cumulative, q * self.total, side="left"))
        return min(index, HISTOGRAM_BINS) / HISTOGRAM_BINS

    def threshold_for(self, rate: float) -> float | None:
        """The lowest bin edge t with (pairs >= t) / total <= rate; None when
        fewer than 1/rate pairs were counted."""
        total = self.total
        if total * rate < 1:
            return None
        above = np.cumsum(self.counts[::-1])[::-1]  # above[k]: pairs in bins k and up
        allowed = np.nonzero(above <= rate * total)[0]
        return float(allowed[0]) / HISTOGRAM_BINS if len(allowed) else 1.0


def _similarities(embeddings: np.ndarray, others: np.ndarray, scale: float) -> np.ndarray:
    cosine = np.clip(embeddings @ others.T, -1.0, 1.0)
    return np.clip(1.0 - (1.0 - cosine) / scale, 0.0, 1.0)


def pair_histograms(
    labels: np.ndarray, embeddings: np.ndarray, scale: float
) -> tuple[_Histogram, _Histogram]:
    """(genuine, impostor) histograms over every unordered pair of photos (with
    the lowest same-person and highest cross-identity pairs)."""
    genuine, impostor = _Histogram(highest=False), _Histogram(highest=True)
    count = len(embeddings)
    block = max(1, _PAIR_BLOCK // max(count, 1))
    columns = np.arange(count)
    for start in range(0, count, block):
        rows = np.arange(start, min(count, start + block))
        scores = _similarities(embeddings[rows], embeddings, scale)
        upper = columns[np.newaxis, :] > rows[:, np.newaxis]
        same = labels[rows][:, np.newaxis] == labels[np.newaxis, :]
        for histogram, mask in ((genuine, upper & same), (impostor, upper & ~same)):
            first, second = np.nonzero(mask)
            histogram.add(scores[first, second], rows[first], second)
    return genuine, impostor


def verification(genuine: _Histogram, impostor: _Histogram, *, fixed_threshold: float) -> dict:
    def rate(histogram: _Histogram, threshold: float) -> float | None:
        return None if not histogram.total else histogram.at_or_above(threshold) / histogram.total

    roc = []
    for far in FARS:
        threshold = impostor.threshold_for(far)
        roc.append(
            {
                "far": far,
                "threshold": threshold,
                "tar": None if threshold is None else _round(rate(genuine, threshold)),
                "note": None
                if threshold is not None
                else f"needs at least {math.ceil(1 / far)} cross-identity pairs, {impostor.total} measured",
            }
        )
    return {
        "genuine_pairs": genuine.total,
        "impostor_pairs": impostor.total,
        "roc": roc,
        "same_person": _quantiles(genuine, {"p5": 0.05, "median": 0.5}),
        "different_people": {
            **_quantiles(impostor, {"median": 0.5, "p99": 0.99}),
            "max": None if not impostor.total else round(impostor.maximum, 4),
        },
        "at_fixed_threshold": {
            "threshold": fixed_threshold,
            "far": _round(rate(impostor, fixed_threshold), 6),
            "tar": _round(rate(genuine, fixed_threshold)),
        },
    }


def _quantiles(histogram: _Histogram, which: dict[str, float]) -> dict:
    return {name: (histogram.quantile(q) if histogram.total else None) for name, q in which.items()}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


# --- open set ---------------------------------------------------------------------------


def open_set(
    photos: list[Photo],
    *,
    gallery_sizes: Iterable[int],
    scale: float,
    model: ScoreModel | None,
    max_false_match_rate: float,
    fixed_threshold: float,
    seed: int,
) -> dict:
    by_person: dict[str, list[Photo]] = {}
    for photo in photos:
        if photo.embedding is not None:
            by_person.setdefault(photo.person, []).append(photo)
    people = sorted(by_person)
    enrolled_half, strangers = split_people(people, seed)
    enrollment: dict[str, Photo] = {}
    for person in enrolled_half:
        accepted = next((photo for photo in by_person[person] if not photo.refusals), None)
        if accepted is not None:
            enrollment[person] = accepted
    # People with other photos to probe first, so that small galleries still
    # measure genuine accepts; the shuffle decides within each group.
    candidates = sorted(enrollment, key=lambda person: len(by_person[person]) < 2)
    sizes = [size for size in gallery_sizes if size <= len(candidates)]
    note = None
    if not sizes and candidates:
        sizes = [len(candidates)]
        note = f"the folder allows a gallery of {len(candidates)} people only"
    stranger_vectors = _stack([photo for person in strangers for photo in by_person[person]])
    results = []
    for size in sizes:
        gallery = candidates[:size]
        gallery_vectors = _stack([enrollment[person] for person in gallery])
        mated = [
            (index, photo)
            for index, person in enumerate(gallery)
            for photo in by_person[person]
            if photo is not enrollment[person]
        ]
        mated_vectors = _stack([photo for _, photo in mated])
        mated_truth = np.array([index for index, _ in mated], dtype=np.int64)
        stranger_best = _best(stranger_vectors, gallery_vectors, scale)[0]
        mated_best, mated_who = _best(mated_vectors, gallery_vectors, scale)
        thresholds: dict[str, float] = {"fixed": fixed_threshold}
        if model is not None:
            thresholds["calibrated"] = model.threshold(max_false_match_rate, size)
        if len(stranger_best) * max_false_match_rate >= 1:
            # The lowest threshold at which at most the target share of these strangers is named.
            ordered = np.sort(stranger_best)[::-1]
            allowed = int(math.floor(max_false_match_rate * len(ordered)))
            thresholds["measured"] = float(ordered[allowed]) + 1e-4 if allowed < len(ordered) else 0.0
        decisions = {}
        for name, threshold in thresholds.items():
            decision = {
                "threshold": round(threshold, 4),
                "false_name_rate": _share(stranger_best >= threshold),
                "genuine_accept_rank1": _share((mated_best >= threshold) & (mated_who == mated_truth)),
                "misnamed": _share((mated_best >= threshold) & (mated_who != mated_truth)),
            }
            if model is not None:
                decision["predicted_false_name_rate"] = _round(model.false_match(threshold, size), 6)
            decisions[name] = decision
        results.append(
            {
                "gallery_size": size,
                "mated_probes": len(mated),
                "stranger_probes": len(stranger_best),
                "decisions": decisions,
            }
        )
    return {
        "people": len(people),
        "enrolled_half": len(enrolled_half),
        "enrolled": len(enrollment),
        "strangers": len(strangers),
        "max_false_match_rate": max_false_match_rate,
        "galleries": results,
        "note": note,
    }


def split_people(people: list[str], seed: int) -> tuple[list[str], list[str]]:
    """(to enroll, strangers): the people shuffled by `seed`, cut in halves."""
    order = np.random.default_rng(seed).permutation(len(people))
    half = len(people) // 2
    return [people[i] for i in order[:half]], [people[i] for i in order[half:]]


def _stack(photos: list[Photo]) -> np.ndarray:
    if not photos:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([photo.embedding for photo in photos]).astype(np.float32)


def _best(probes: np.ndarray, gallery: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    if len(probes) == 0 or len(gallery) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    scores = _similarities(probes, gallery, scale)
    who = scores.argmax(axis=1)
    return scores[np.arange(len(probes)), who], who


def _share(mask: np.ndarray) -> float | None:
    return None if mask.size == 0 else round(float(mask.mean()), 4)


# --- all together --------------------------------------------------------------------------


def evaluate(
    folder: Path,
    *,
    engine=None,
    gallery_sizes: Iterable[int] = GALLERY_SIZES,
    max_false_match_rate: float = 0.01,
    limits: QualityLimits | None = None,
    seed: int = 0,
    progress: Callable[[int], Progress] | None = None,
) -> dict:
    """The figures of the module docstring for `folder`, as a JSON-able dict."""
    if not 0 < max_false_match_rate < 1:
        raise EvaluationError(f"max_false_match_rate must lie between 0 and 1, got {max_false_match_rate}")
    if engine is None:
        from analytics.face.engine import face_engine

        engine = face_engine()
    limits = limits or QualityLimits()
    folder = Path(folder)
    photos = photos_in(folder)
    bar = progress(len(photos)) if progress else None
    started = time.monotonic()
    embed_photos(photos, engine=engine, limits=limits, min_score=settings.FACE_DETECT_MIN_SCORE, progress=bar)
    if bar:
        bar.close()
    seconds = time.monotonic() - started
    embedded = [photo for photo in photos if photo.embedding is not None]
    if len({photo.person for photo in embedded}) < 2:
        raise EvaluationError(f"faces were found in the photos of fewer than two people in {folder}")
    scale = engine.embedder.similarity_scale
    fixed = float(settings.FACE_MATCH_THRESHOLD)
    labels = np.array([photo.person for photo in embedded])
    genuine, impostor = pair_histograms(labels, _stack(embedded), scale)
    model = score_model(engine.embedder.name)
    refusals = Counter(code for photo in photos for code in photo.refusals)
    refused = sum(1 for photo in photos if photo.refusals)
    people = {photo.person for photo in photos}
    people_enrollable = {photo.person for photo in photos if not photo.refusals}
    measured = ScoreModel.from_quantiles(
        impostor_quantile=impostor.quantile,
        impostor_count=impostor.total,
        impostor_max=impostor.maximum if impostor.total else 0.0,
        genuine_quantile=genuine.quantile,
        genuine_count=genuine.total,
        name="measured",
        base=model,
    )

    def pairs(histogram: _Histogram) -> list[dict]:
        return [
            {
                "similarity": round(score, 4),
                "a": str(embedded[i].path.relative_to(folder)),
                "b": str(embedded[j].path.relative_to(folder)),
            }
            for score, i, j in histogram.extremes
        ]

    return {
        "folder": str(folder),
        "engine": engine.describe(),
        "photos": len(photos),
        "people": len(people),
        "photos_with_face": len(embedded),
        "seconds": round(seconds, 1),
        "verification": {
            **verification(genuine, impostor, fixed_threshold=fixed),
            # Worth a look: labelling mistakes and duplicate photos show up here first.
            "lowest_same_person_pairs": pairs(genuine),
            "highest_different_people_pairs": pairs(impostor),
        },
        "open_set": open_set(
            embedded,
            gallery_sizes=gallery_sizes,
            scale=scale,
            model=model,
            max_false_match_rate=max_false_match_rate,
            fixed_threshold=fixed,
            seed=seed,
        ),
        "enrollment": {
            "limits": {
                "min_sharpness": limits.min_sharpness,
                "min_face_size": limits.min_face_size,
                "min_detector_score": limits.min_detector_score,
                "max_yaw": limits.max_yaw,
                "max_pitch": limits.max_pitch,
            },
            "refused": refused,
            "refusal_rate": round(refused / len(photos), 4),
            "reasons": dict(sorted(refusals.items())),
            "people_without_an_accepted_photo": len(people - people_enrollable),
        },
        "score_model": {
            "shipped": None if model is None else model.name,
            "shipped_table": None if model is None else [row.as_dict() for row in model.table()],
            "measured_source": measured.source,
            "measured_table": [row.as_dict() for row in measured.table(GALLERY_SIZES)],
        },
    }
