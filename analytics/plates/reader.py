"""Text on a vehicle: the plate localiser and reader.

No plate detector with a usable licence exists in the package registries, so the
text detector of PP-OCRv6 (DB, "det small") localises text on the vehicle's box
and PP-OCRv6's recogniser ("rec small", CTC over 18,708 characters) reads each
line. Both ONNX files ship inside the `rapidocr` 3.10.0 wheel (Apache-2.0; weights
from PaddleOCR, Apache-2.0, see the wheel's MODEL_LICENSES.md) under
`rapidocr/models/`. They are opened by path with this project's sessions
(`workers.model_runtime`: CUDA where it really works, else CPU; explicit
providers); rapidocr's own engine classes are not used, because they download any
model or character list they do not find, and a missing bundled file must be an
error here, not a download.

From rapidocr only the detector's post-processing (`DBPostProcess`: binary map to
boxes, with pyclipper/shapely) and the rotated crop of a box are reused. The
recogniser's output is decoded here (greedy CTC) because per-character
confidences and the runner-up characters are needed for voting and for correcting
confusions by slot, and because decoding only over the characters a plate can
carry (letters, digits, separators; lower case folded into upper case) keeps the
recogniser from answering with look-alike symbols of other scripts.

Detector size: `limit_type: "max"` with 640 px keeps a crop's size (shrinking
only what is larger); rapidocr's default (`min`, 736) enlarges every small crop,
which costs ten times more on a vehicle's box. Regions smaller than `det_min_side`
are enlarged to it, since the text of a distant plate is only a few pixels high.

Search order on a vehicle box: its lower part (`lower_fraction`), where plates
are, then the whole box when nothing acceptable was found there. An optional
pre-filter (OpenCV's Haar cascade for plates, in opencv-python-headless) first
tries the small regions it proposes.

Thread-safe: ONNX Runtime sessions run concurrently, the decoding keeps no state,
and the Haar cascade (not safe to share between threads) is used under a lock.
One reader per configuration and process: `plate_reader()`.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from django.core.exceptions import ImproperlyConfigured

from analytics.plates.formats import Parsed, PlateFormat
from analytics.plates.voting import Reading
from core.images import as_bgr

logger = logging.getLogger(__name__)

PACKAGE = "rapidocr"
PACKAGE_VERSION = "3.10.0"
DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
HAAR_CASCADE = "haarcascade_russian_plate_number.xml"

REC_HEIGHT = 48  # the recogniser's input height (PP-OCR rec: [N, 3, 48, W])
REC_MIN_WIDTH = 320  # PP-OCR pads narrower batches to 48x320; so does this decoder
REC_BATCH = 6  # crops per recognition call
REC_MAX_RATIO = 24.0  # longer lines are squeezed: no plate line is 24 times wider than high
SEPARATORS = " -.·"  # read as one separator class, shown as a space


class PlateModelsMissing(ImproperlyConfigured):
    pass


@dataclass(frozen=True)
class BundledModels:
    det: Path
    rec: Path


def bundled_models() -> BundledModels:
    """The detector and recogniser ONNX files inside the installed rapidocr wheel."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PlateModelsMissing(
            f"the {PACKAGE} package is not installed: it carries the plate reader's models "
            f"({PACKAGE}=={PACKAGE_VERSION} is in the project's locks; "
            "run `python3 visionaire.py` to install them)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    paths = BundledModels(det=folder / DET_MODEL, rec=folder / REC_MODEL)
    for path in (paths.det, paths.rec):
        if not path.is_file() or path.stat().st_size == 0:
            raise PlateModelsMissing(
                f"{path} is missing: the plate reader uses only the models inside the {PACKAGE} "
                f"{PACKAGE_VERSION} wheel (reinstall it from the project's locks) and never downloads any"
            )
    return paths


@dataclass(frozen=True)
class ReaderConfig:
    det_limit_side: int = 640
    det_limit_type: str = "max"  # "max": the long side at most det_limit_side; "min": the short side at least
    det_min_side: int = 96  # smaller regions are enlarged to this short side first
    det_thresh: float = 0.3  # DB binarisation threshold
    det_box_thresh: float = 0.5  # a box's mean text probability at least this
    det_unclip_ratio: float = 1.6
    lower_fraction: float = 0.6  # the lower part of the vehicle box searched first
    max_lines: int = 6  # text lines recognised per region, largest first (bounded work per crop)
    # Each line is also read widened by this many line heights on both sides: the detector
    # splits a small plate's groups, or drops a lone letter at its edge, where the gaps
    # between groups are wide; the recogniser reads the whole plate line in one go.
    widen: float = 1.5
    widen_lines: int = 2  # the largest lines only: each widened read costs a recognition
    haar_prefilter: bool = False
    haar_max_regions: int = 2

    def __post_init__(self) -> None:
        if self.det_limit_type not in ("max", "min"):
            raise ImproperlyConfigured("det_limit_type must be 'max' or 'min'")
        if not 32 <= self.det_limit_side <= 4096:
            raise ImproperlyConfigured("det_limit_side must be between 32 and 4096 pixels")
        if not 0.1 <= self.lower_fraction <= 1.0:
            raise ImproperlyConfigured("lower_fraction must be between 0.1 and 1")
        if self.max_lines < 1:
            raise ImproperlyConfigured("max_lines must be at least 1")
        if self.widen_lines < 0:
            raise ImproperlyConfigured("widen_lines must be 0 or more")
        if not 0.0 <= self.widen <= 5.0:
            raise ImproperlyConfigured("widen must be between 0 and 5 line heights")


@dataclass(frozen=True)
class CharRead:
    """One recognised character: its confidence and the runners-up [(char, probability)]."""

    char: str
    confidence: float
    alternatives: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class TextLine:
    """A line of text: its characters (separators as spaces) and its box, four corners
    (top-left, top-right, bottom-right, bottom-left) in the pixels of the image read."""

    chars: tuple[CharRead, ...]
    box: np.ndarray = field(compare=False, repr=False)
    det_score: float = 1.0

    @property
    def text(self) -> str:
        return "".join(c.char for c in self.chars)

    @property
    def confidence(self) -> float:
        scores = [c.confidence for c in self.chars if c.char != " "]
        return float(np.mean(scores)) if scores else 0.0

    @property
    def height(self) -> float:
        box = self.box
        return float((np.linalg.norm(box[0] - box[3]) + np.linalg.norm(box[1] - box[2])) / 2)

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2) around the box."""
        x1, y1 = np.floor(self.box.min(axis=0)).astype(int)
        x2, y2 = np.ceil(self.box.max(axis=0)).astype(int)
        return int(x1), int(y1), int(x2), int(y2)

    def shifted(self, dx: float, dy: float) -> TextLine:
        return TextLine(self.chars, self.box + np.float32([dx, dy]), self.det_score)


@dataclass(frozen=True)
class VehicleRead:
    """The text candidates found on a vehicle crop (single lines, and neighbouring
    lines of one row joined), where they were found, and the time it took."""

    candidates: tuple[TextLine, ...]
    region: str  # "haar", "lower", "whole", or "" when nothing was read
    det_ms: float
    rec_ms: float


@dataclass(frozen=True)
class PlateRead:
    """The plate found on a vehicle crop: the line as recognised (`text`), laid over the
    region's format (`parsed`: the corrected plate, its display form, one confidence per
    character), its box (four corners in the crop's pixels) and the time it took."""

    text: str
    parsed: Parsed
    box: np.ndarray = field(compare=False, repr=False)
    region: str = ""
    det_ms: float = 0.0
    rec_ms: float = 0.0

    @property
    def plate(self) -> str:
        return self.parsed.plate

    @property
    def display(self) -> str:
        return self.parsed.display

    @property
    def confidences(self) -> tuple[float, ...]:
        return self.parsed.confidences

    @property
    def confidence(self) -> float:
        return self.parsed.confidence

    def reading(self) -> Reading:
        """This frame's reading for the track's vote."""
        return Reading.from_parsed(self.parsed)


# Ranking of the lines that fit the format (badges, dealer names and a plate's own small
# second line fit some formats too): a plate's characters are the largest text on the
# vehicle's back, read with confidence, needing few corrections.
RANK_HEIGHT = 0.3
RANK_CORRECTION = 0.2


def _plate_classes(characters: Sequence[str]) -> tuple[list[str], list[list[int]]]:
    """The classes the decoder keeps: blank, a separator, digits, letters (both cases),
    each with the recogniser's output indexes it sums."""
    index = {char: i for i, char in enumerate(characters)}
    names, members = ["", " "], [[0], [index[c] for c in SEPARATORS if c in index]]
    for char in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        found = [index[c] for c in {char, char.lower()} if c in index]
        if found:
            names.append(char)
            members.append(found)
    return names, members


def _widened(box: np.ndarray, lines: float, shape: tuple[int, ...]) -> np.ndarray:
    """The box (tl, tr, br, bl) lengthened along its own direction by `lines` times its
    height on each side and a little taller, kept inside the image."""
    tl, tr, br, bl = box.astype(np.float32)
    along = (tr - tl) / max(float(np.linalg.norm(tr - tl)), 1e-6)
    across = (bl - tl) / max(float(np.linalg.norm(bl - tl)), 1e-6)
    height = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2
    dx, dy = along * lines * height, across * 0.1 * height
    quad = np.float32([tl - dx - dy, tr + dx - dy, br + dx + dy, bl - dx + dy])
    quad[:, 0] = quad[:, 0].clip(0, shape[1] - 1)
    quad[:, 1] = quad[:, 1].clip(0, shape[0] - 1)
    return quad


def join_rows(lines: Sequence[TextLine]) -> list[TextLine]:
    """Lines of one row (overlapping vertically, of similar height, close side by side)
    joined left to right with a space: a plate's groups are often detected apart."""
    ordered = sorted(lines, key=lambda line: line.bounds[0])
    joined: list[TextLine] = []
    for start in range(len(ordered)):
        row = [ordered[start]]
        for other in ordered[start + 1 :]:
            last = row[-1]
            lx1, ly1, lx2, ly2 = last.bounds
            ox1, oy1, ox2, oy2 = other.bounds
            height = max(last.height, other.height)
            # Centres on one level (a plate's smaller second line sits lower), heights alike
            # (a lone character's box is tighter than a word's), a gap of a few characters.
            if (
                abs((ly1 + ly2) - (oy1 + oy2)) / 2 <= 0.3 * height
                and min(last.height, other.height) >= 0.55 * height
                and -0.5 * height <= ox1 - lx2 <= 2.0 * height
            ):
                row.append(other)
        if len(row) > 1:
            chars: list[CharRead] = []
            for part in row:
                if chars:
                    chars.append(CharRead(" ", 1.0))
                chars.extend(part.chars)
            corners = np.concatenate([part.box for part in row])
            x1, y1 = corners.min(axis=0)
            x2, y2 = corners.max(axis=0)
            box = np.float32([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
            joined.append(TextLine(tuple(chars), box, min(part.det_score for part in row)))
    return joined


class PlateReader:
    def __init__(self, config: ReaderConfig | None = None, models: BundledModels | None = None):
        from rapidocr.ch_ppocr_det.utils import DBPostProcess

        from analytics.runtime import SESSIONS

        self.config = config or ReaderConfig()
        self.models = models or bundled_models()
        try:
            self._det = SESSIONS.get(f"plates-det:{self.models.det}", lambda: str(self.models.det))
            self._rec = SESSIONS.get(f"plates-rec:{self.models.rec}", lambda: str(self.models.rec))
        except Exception as exc:  # ONNX Runtime raises its own types for unreadable models
            raise PlateModelsMissing(f"ONNX Runtime cannot load the plate reader's models: {exc}") from exc
        characters = self._rec.get_modelmeta().custom_metadata_map.get("character")
        if not characters:
            raise PlateModelsMissing(
                f"{self.models.rec} carries no character list in its metadata (rapidocr would download one)"
            )
        # PP-OCR's CTC layout: the blank first, then the model's characters, then a space.
        self._names, members = _plate_classes(["<blank>", *characters.splitlines(), " "])
        self._columns = np.array([i for m in members for i in m])
        self._starts = np.cumsum([0] + [len(m) for m in members[:-1]])
        self._post = DBPostProcess(
            thresh=self.config.det_thresh,
            box_thresh=self.config.det_box_thresh,
            max_candidates=100,
            unclip_ratio=self.config.det_unclip_ratio,
            use_dilation=True,
            score_mode="fast",
        )
        self._haar = None
        self._haar_lock = threading.Lock()
        if self.config.haar_prefilter:
            path = Path(cv2.data.haarcascades) / HAAR_CASCADE
            cascade = cv2.CascadeClassifier(str(path))
            if cascade.empty():
                raise ImproperlyConfigured(f"OpenCV cannot load its plate cascade {path}")
            self._haar = cascade
        self.providers = self._det.get_providers()

    # --- detection -------------------------------------------------------------------

    def _det_input(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        height, width = image.shape[:2]
        config = self.config
        scale = 1.0
        if config.det_limit_type == "max":
            if max(height, width) > config.det_limit_side:
                scale = config.det_limit_side / max(height, width)
        elif min(height, width) < config.det_limit_side:
            scale = config.det_limit_side / min(height, width)
        if min(height, width) * scale < config.det_min_side:
            scale = config.det_min_side / min(height, width)
        new_h = max(32, int(round(height * scale / 32)) * 32)
        new_w = max(32, int(round(width * scale / 32)) * 32)
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        tensor = (resized.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[np.newaxis]
        return np.ascontiguousarray(tensor), new_h / height, new_w / width

    def detect(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Text boxes (four corners, image pixels) and their scores, largest first."""
        image = as_bgr(image)
        if min(image.shape[:2]) < 4:
            return []
        tensor, _, _ = self._det_input(image)
        pred = self._det.run(None, {self._det.get_inputs()[0].name: tensor})[0]
        boxes, scores = self._post(pred, image.shape[:2])
        found = [(np.float32(box), float(score)) for box, score in zip(boxes, scores, strict=True)]
        found.sort(key=lambda item: -cv2.contourArea(item[0]))
        return found

    # --- recognition -----------------------------------------------------------------

    def _decode(self, probs: np.ndarray) -> tuple[CharRead, ...]:
        """Greedy CTC over the plate classes: repeated classes collapse, blanks drop."""
        folded = np.add.reduceat(probs[:, self._columns], self._starts, axis=1)  # [T, classes]
        best = folded.argmax(axis=1)
        chars: list[CharRead] = []
        t = 0
        while t < len(best):
            end = t
            while end + 1 < len(best) and best[end + 1] == best[t]:
                end += 1
            cls = int(best[t])
            if cls != 0:
                peak = t + int(folded[t : end + 1, cls].argmax())
                order = np.argsort(-folded[peak])
                alternatives = tuple(
                    (self._names[int(o)], round(float(folded[peak, o]), 4))
                    for o in order[:4]
                    if int(o) not in (0, 1, cls) and folded[peak, o] >= 0.01
                )[:3]
                name = self._names[cls]
                if not (name == " " and (not chars or chars[-1].char == " ")):
                    chars.append(CharRead(name, round(float(folded[peak, cls]), 4), alternatives))
            t = end + 1
        while chars and chars[-1].char == " ":
            chars.pop()
        return tuple(chars)

    def recognize(self, crops: Sequence[np.ndarray]) -> list[tuple[CharRead, ...]]:
        """The characters of each text-line crop (BGR), in the order given.

        Crops run in batches of similar width (sorted by aspect ratio, as PP-OCR does):
        a batch is padded to its widest crop, so a long line in a batch of short ones
        would multiply the work."""
        ratios = [min(REC_MAX_RATIO, c.shape[1] / max(c.shape[0], 1)) for c in crops]
        order = sorted(range(len(crops)), key=ratios.__getitem__)
        results: list[tuple[CharRead, ...]] = [()] * len(crops)
        for start in range(0, len(order), REC_BATCH):
            chunk = order[start : start + REC_BATCH]
            width = max(REC_MIN_WIDTH, int(np.ceil(REC_HEIGHT * max(ratios[i] for i in chunk))))
            batch = np.zeros((len(chunk), 3, REC_HEIGHT, width), dtype=np.float32)
            for row, i in enumerate(chunk):
                resized_w = max(1, min(width, int(np.ceil(REC_HEIGHT * ratios[i]))))
                resized = cv2.resize(as_bgr(crops[i]), (resized_w, REC_HEIGHT))  # bilinear
                batch[row, :, :, :resized_w] = (resized.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
            probs = self._rec.run(None, {self._rec.get_inputs()[0].name: batch})[0]
            for row, i in enumerate(chunk):
                results[i] = self._decode(probs[row])
        return results

    # --- regions and vehicles ----------------------------------------------------------

    def read_region(self, image: np.ndarray) -> tuple[list[TextLine], float, float]:
        """Every text line of an image, largest first: (lines, detection ms, recognition ms)."""
        from rapidocr.utils.process_img import get_rotate_crop_image

        image = as_bgr(image)
        started = time.perf_counter()
        boxes = self.detect(image)[: self.config.max_lines]
        det_ms = 1000 * (time.perf_counter() - started)
        if not boxes:
            return [], det_ms, 0.0
        started = time.perf_counter()
        quads = [box for box, _ in boxes]
        scores = [score for _, score in boxes]
        if self.config.widen > 0:
            widest = boxes[: self.config.widen_lines]
            quads += [_widened(box, self.config.widen, image.shape) for box, _ in widest]
            scores += [score for _, score in widest]
        crops = [get_rotate_crop_image(image, quad.copy()) for quad in quads]
        keep = [i for i, crop in enumerate(crops) if min(crop.shape[:2]) >= 4]
        reads = self.recognize([crops[i] for i in keep])
        lines: list[TextLine] = []
        seen: set[str] = set()
        for i, chars in zip(keep, reads, strict=True):
            line = TextLine(chars, quads[i], scores[i])
            # A widened read that says what the line said adds nothing.
            if any(c.char != " " for c in chars) and (i < len(boxes) or line.text not in seen):
                lines.append(line)
                seen.add(line.text)
        return lines, det_ms, 1000 * (time.perf_counter() - started)

    def _haar_regions(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        with self._haar_lock:
            found = self._haar.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3, minSize=(24, 8))
        rects = sorted((tuple(int(v) for v in r) for r in found), key=lambda r: -r[2] * r[3])
        regions = []
        height, width = image.shape[:2]
        for x, y, w, h in rects[: self.config.haar_max_regions]:
            # The cascade's rectangle often clips the plate's ends: widen it.
            x1, x2 = max(0, int(x - 0.25 * w)), min(width, int(x + 1.25 * w))
            y1, y2 = max(0, int(y - 0.5 * h)), min(height, int(y + 1.5 * h))
            regions.append((x1, y1, x2, y2))
        return regions

    def read_vehicle(
        self, vehicle: np.ndarray, *, accept: Callable[[TextLine], bool] | None = None
    ) -> VehicleRead:
        """Text candidates on a vehicle crop (BGR), coordinates in the crop's pixels.

        `accept` tells a plate from other text (a format's test); the first region
        with an accepted candidate ends the search. Without it, the first region
        with any text does."""
        vehicle = as_bgr(vehicle)
        height = vehicle.shape[0]
        det_ms = rec_ms = 0.0
        tried: list[tuple[str, tuple[int, int, int, int]]] = []
        if self._haar is not None:
            tried += [("haar", region) for region in self._haar_regions(vehicle)]
        top = int(height * (1.0 - self.config.lower_fraction))
        if top > 0:
            tried.append(("lower", (0, top, vehicle.shape[1], height)))
        tried.append(("whole", (0, 0, vehicle.shape[1], height)))
        everything: list[TextLine] = []
        for name, (x1, y1, x2, y2) in tried:
            lines, det, rec = self.read_region(vehicle[y1:y2, x1:x2])
            det_ms += det
            rec_ms += rec
            candidates = [line.shifted(x1, y1) for line in (*lines, *join_rows(lines))]
            everything += candidates
            if candidates and (accept is None or any(accept(c) for c in candidates)):
                return VehicleRead(tuple(candidates), name, det_ms, rec_ms)
        return VehicleRead(tuple(everything), "", det_ms, rec_ms)

    def read_plate(self, vehicle: np.ndarray, plate_format: PlateFormat) -> PlateRead | None:
        """The plate on a vehicle crop (BGR) under a region's format, or None when no
        line of text fits it."""

        def fits(line: TextLine) -> bool:
            return plate_format.parse_line(line.chars) is not None

        found = self.read_vehicle(vehicle, accept=fits)
        parsed = [(line, plate_format.parse_line(line.chars)) for line in found.candidates]
        fitting = [(line, p) for line, p in parsed if p is not None]
        if not fitting:
            return None
        tallest = max(line.height for line, _ in fitting)

        def rank(item: tuple[TextLine, Parsed]) -> float:
            line, p = item
            return p.confidence + RANK_HEIGHT * line.height / tallest - RANK_CORRECTION * p.corrections

        line, best = max(fitting, key=rank)
        return PlateRead(line.text, best, line.box, found.region, found.det_ms, found.rec_ms)


@functools.lru_cache(maxsize=4)
def plate_reader(config: ReaderConfig | None = None) -> PlateReader:
    """The process's reader for this configuration (models load once)."""
    return PlateReader(config)
