"""Licence plates rendered with a real font, on a vehicle, over a real street scene.

Plates are drawn with Pillow (in the test lock) in DejaVu Sans Mono Bold (Debian's
`fonts-dejavu-core`), black on white or yellow, with a black border:

- `uk`: one line, e.g. "LS15 EBC", 520x111 mm proportions.
- `id`: Indonesian, e.g. "B 1234 XYZ", with the small month.year line of the
  plate's expiry under it ("08.27"), 430x135 mm proportions.

A vehicle is a drawn rear view (body, rear window reflecting the scene, tail
lights, bumper, a model badge in another font as distracting text, the plate on
the lower body), or, given `car_photo`, a real photograph of a car's rear
(`licenseplate_motion.jpg` of Debian's opencv-doc, motion-blurred) with the
rendered plate laid over its own: an object detector trained on photographs
(the bundled YOLOv3-tiny) finds the photographed car in every frame and rarely
finds the drawn one. The background is a real street video (vtest.avi from
Debian's opencv-doc, see `opencv_samples`). Each vehicle is perspective-warped and drives towards the
camera, growing, over a few frames; the frames are encoded to H.264 by ffmpeg, so
the reader sees compression and scaling as from a camera.

`plate_set()` gives a fixed, seeded list of passes (ID and UK, white and yellow,
varied size, skew and colour); `plate_video()` writes them to one file (with
`gap_frames` of the bare street between passes, so that a tracker sees each
pass as a vehicle of its own) and returns where each vehicle is in each frame.
"""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tests.support.media import FFMPEG, MediaError

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/local/share/fonts"))
FONT = "DejaVuSansMono-Bold.ttf"
BADGE_FONT = "DejaVuSans-Bold.ttf"
COLOURS = {"white": (245, 245, 240), "yellow": (40, 200, 250)}  # BGR; UK rear yellow
BODY_COLOURS = [(200, 200, 205), (235, 235, 235), (40, 40, 45), (40, 40, 170), (150, 80, 30), (110, 110, 115)]
BADGES = ["HATCH", "SPORT 1.6", "GT", "HYBRID", "AVANZA", "XENIA"]


@dataclass(frozen=True)
class PlatePass:
    """One vehicle pass: its plate as displayed, the plate's style and colour, and how
    it is seen (vehicle width at the pass's nearest point, perspective skew, colour)."""

    number: str
    style: str  # "id" or "uk"
    colour: str  # "white" or "yellow"
    width: int = 420  # the vehicle's width in pixels at its nearest
    skew: float = 0.0  # -1..1: how much the vehicle is seen from one side
    tilt: float = 0.0  # degrees of roll
    body: int = 0  # index into BODY_COLOURS
    badge: int = 0  # index into BADGES
    expiry: str = "08.27"  # ID plates' second line

    @property
    def plate(self) -> str:
        return self.number.replace(" ", "")


class FontMissing(RuntimeError):
    pass


@functools.cache
def font_path(name: str) -> Path:
    """A DejaVu font file of Debian's `fonts-dejavu-core`, or a clear error."""
    for folder in FONT_DIRS:
        found = sorted(folder.rglob(name)) if folder.is_dir() else []
        if found:
            return found[0]
    raise FontMissing(
        f"{name} was not found under {', '.join(map(str, FONT_DIRS))}: the plate tests render plates in "
        "Debian's DejaVu fonts; install them with `apt-get install -y fonts-dejavu-core`"
    )


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(name)), size)


def _fit_font(draw: ImageDraw.ImageDraw, text: str, name: str, width: float, height: float):
    """The largest font size whose rendering of `text` fits width x height (ink box)."""
    low, high = 4, 400
    while low < high:
        mid = (low + high + 1) // 2
        x1, y1, x2, y2 = draw.textbbox((0, 0), text, font=_font(name, mid))
        if x2 - x1 <= width and y2 - y1 <= height:
            low = mid
        else:
            high = mid - 1
    return _font(name, low)


def _draw_centred(draw, text: str, font, centre: tuple[float, float], fill) -> None:
    x1, y1, x2, y2 = draw.textbbox((0, 0), text, font=font)
    draw.text((centre[0] - (x1 + x2) / 2, centre[1] - (y1 + y2) / 2), text, font=font, fill=fill)


def render_plate(spec: PlatePass, height: int = 120) -> np.ndarray:
    """The plate alone (BGR), `height` pixels high."""
    ratio = 520 / 111 if spec.style == "uk" else 430 / 135
    width = int(round(height * ratio))
    b, g, r = COLOURS[spec.colour]
    image = Image.new("RGB", (width, height), (60, 60, 60))
    draw = ImageDraw.Draw(image)
    border = max(2, height // 30)
    draw.rounded_rectangle(
        (0, 0, width - 1, height - 1), radius=height // 10, fill=(r, g, b), outline=(0, 0, 0), width=border
    )
    if spec.style == "uk":
        font = _fit_font(draw, spec.number, FONT, width * 0.88, height * 0.70)
        _draw_centred(draw, spec.number, font, (width / 2, height / 2), (0, 0, 0))
    else:
        font = _fit_font(draw, spec.number, FONT, width * 0.90, height * 0.52)
        _draw_centred(draw, spec.number, font, (width / 2, height * 0.40), (0, 0, 0))
        small = _fit_font(draw, spec.expiry, FONT, width * 0.30, height * 0.16)
        _draw_centred(draw, spec.expiry, small, (width / 2, height * 0.82), (0, 0, 0))
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


def render_vehicle(spec: PlatePass, scene: np.ndarray, width: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """A vehicle's rear view with the plate on it: (BGR image, 0/255 mask of the vehicle)."""
    height = int(width * 0.78)
    body = BODY_COLOURS[spec.body % len(BODY_COLOURS)]
    image = np.zeros((height, width, 3), np.uint8)
    mask = np.zeros((height, width), np.uint8)
    # Body with a narrower cabin on top.
    cabin = np.int32([[0.16 * width, 0.02 * height], [0.84 * width, 0.02 * height],
                      [0.94 * width, 0.40 * height], [0.06 * width, 0.40 * height]])  # fmt: skip
    for target, value in ((image, body), (mask, 255)):
        cv2.fillConvexPoly(target, cabin, value)
        cv2.rectangle(target, (0, int(0.38 * height)), (width - 1, int(0.90 * height)), value, -1)
    # Shading: lighter at the top of the body, darker at the bottom.
    shade = np.linspace(1.15, 0.8, height, dtype=np.float32)[:, None, None]
    image = np.clip(image.astype(np.float32) * shade, 0, 255).astype(np.uint8)
    # Rear window reflecting the scene.
    window = np.int32([[0.21 * width, 0.06 * height], [0.79 * width, 0.06 * height],
                       [0.87 * width, 0.35 * height], [0.13 * width, 0.35 * height]])  # fmt: skip
    reflection = cv2.resize(scene, (width, height))
    reflection = cv2.GaussianBlur(reflection, (0, 0), 3)
    glass = (0.35 * reflection + 0.65 * np.array([40, 35, 30])).astype(np.uint8)
    window_mask = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(window_mask, window, 255)
    image[window_mask > 0] = glass[window_mask > 0]
    # Tail lights, bumper, wheels.
    for x1, x2 in ((0.02, 0.2), (0.8, 0.98)):
        cv2.rectangle(image, (int(x1 * width), int(0.42 * height)), (int(x2 * width), int(0.53 * height)),
                      (30, 30, 200), -1)  # fmt: skip
    cv2.rectangle(image, (0, int(0.80 * height)), (width - 1, int(0.90 * height)), (45, 45, 45), -1)
    for x1, x2 in ((0.06, 0.24), (0.76, 0.94)):
        corners = (int(x1 * width), int(0.90 * height)), (int(x2 * width), height - 1)
        cv2.rectangle(image, *corners, (20, 20, 20), -1)
        cv2.rectangle(mask, *corners, 255, -1)
    # A model badge: text that is not a plate.
    pil = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    draw = ImageDraw.Draw(pil)
    badge = BADGES[spec.badge % len(BADGES)]
    font = _fit_font(draw, badge, BADGE_FONT, width * 0.16, height * 0.045)
    _draw_centred(draw, badge, font, (0.80 * width, 0.58 * height), (210, 210, 215))
    image = cv2.cvtColor(np.asarray(pil), cv2.COLOR_RGB2BGR)
    # The plate on the lower body.
    plate_width = int(width * (0.32 if spec.style == "uk" else 0.28))
    plate = render_plate(spec, height=max(24, int(plate_width / (4.68 if spec.style == "uk" else 3.19))))
    plate = cv2.resize(plate, (plate_width, int(plate_width * plate.shape[0] / plate.shape[1])))
    px = (width - plate.shape[1]) // 2
    py = int(0.66 * height) - plate.shape[0] // 2
    image[py : py + plate.shape[0], px : px + plate.shape[1]] = plate
    return image, mask


# The car's rear in licenseplate_motion.jpg (rows 25-460 of 482) and the centre of its
# plate, as fractions of that crop.
PHOTO_ROWS = (25, 460)
PHOTO_PLATE_CENTRE = (0.49, 0.54)


def photo_vehicle(spec: PlatePass, photo: np.ndarray, width: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """A photographed car's rear with the rendered plate over its own: (BGR image, mask)."""
    car = photo[PHOTO_ROWS[0] : PHOTO_ROWS[1]]
    height = int(round(width * car.shape[0] / car.shape[1]))
    image = cv2.resize(car, (width, height), interpolation=cv2.INTER_AREA)
    # Somewhat wider than the photo's own plate, as the drawn vehicle's (its text is as large).
    plate_width = int(width * (0.32 if spec.style == "uk" else 0.28))
    plate = render_plate(spec, height=max(24, int(plate_width / (4.68 if spec.style == "uk" else 3.19))))
    plate = cv2.resize(plate, (plate_width, int(plate_width * plate.shape[0] / plate.shape[1])))
    px = int(PHOTO_PLATE_CENTRE[0] * width) - plate.shape[1] // 2
    py = int(PHOTO_PLATE_CENTRE[1] * height) - plate.shape[0] // 2
    image[py : py + plate.shape[0], px : px + plate.shape[1]] = plate
    return image, np.full((height, width), 255, np.uint8)


def _warp(image: np.ndarray, mask: np.ndarray, skew: float, tilt: float) -> tuple[np.ndarray, np.ndarray]:
    """Seen from one side (the far edge shorter) and rolled by `tilt` degrees."""
    height, width = mask.shape
    s = 0.18 * skew
    source = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    target = np.float32([[0, height * max(0, s)], [width, height * max(0, -s)],
                         [width * (1 - 0.5 * abs(s)), height * (1 - max(0, -s))],
                         [width * 0.5 * abs(s), height * (1 - max(0, s))]])  # fmt: skip
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), tilt, 1.0)
    target = np.float32(cv2.transform(target[None], rotation)[0])
    target -= target.min(axis=0)
    size = (int(np.ceil(target[:, 0].max())) + 1, int(np.ceil(target[:, 1].max())) + 1)
    matrix = cv2.getPerspectiveTransform(source, target)
    warped = cv2.warpPerspective(image, matrix, size, flags=cv2.INTER_LINEAR)
    warped_mask = cv2.warpPerspective(mask, matrix, size, flags=cv2.INTER_LINEAR)
    return warped, warped_mask


@dataclass(frozen=True)
class VehicleBox:
    """Where a pass's vehicle is in one frame of the video, in frame pixels."""

    frame: int
    pass_index: int
    box: tuple[int, int, int, int]  # x1, y1, x2, y2


def _pass_frames(
    spec: PlatePass,
    scene: np.ndarray,
    frames: int,
    size: tuple[int, int],
    rng: random.Random,
    car_photo: np.ndarray | None = None,
) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """The pass's frames: the vehicle drives from far (small, up) to near (bottom)."""
    frame_w, frame_h = size
    if car_photo is not None:
        vehicle, mask = photo_vehicle(spec, car_photo, width=int(spec.width * 1.4))
    else:
        vehicle, mask = render_vehicle(spec, scene, width=int(spec.width * 1.4))
    vehicle, mask = _warp(vehicle, mask, spec.skew, spec.tilt)
    lane = rng.uniform(0.3, 0.7) * frame_w
    drift = rng.uniform(-0.08, 0.08) * frame_w
    out = []
    for i in range(frames):
        progress = i / max(1, frames - 1)
        # The nearest frame shows the vehicle at spec.width; the first at about 70% of it.
        scale = spec.width * (0.7 + 0.3 * progress) / (spec.width * 1.4)
        w = max(8, int(vehicle.shape[1] * scale))
        h = max(8, int(vehicle.shape[0] * scale))
        small = cv2.resize(vehicle, (w, h), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)
        cx = lane + drift * progress
        bottom = frame_h * (0.72 + 0.26 * progress)
        x1, y1 = int(cx - w / 2), int(bottom - h)
        x1 = min(max(0, x1), frame_w - w)
        y1 = min(max(0, y1), frame_h - h)
        frame = scene.copy()
        alpha = (small_mask.astype(np.float32) / 255)[:, :, None]
        region = frame[y1 : y1 + h, x1 : x1 + w].astype(np.float32)
        frame[y1 : y1 + h, x1 : x1 + w] = (alpha * small + (1 - alpha) * region).astype(np.uint8)
        out.append((frame, (x1, y1, x1 + w, y1 + h)))
    return out


def plate_set(count: int = 24, seed: int = 7) -> list[PlatePass]:
    """A fixed list of passes: half Indonesian, half UK; white and yellow; varied size,
    skew, roll, body colour. The numbers use the confusable characters often."""
    rng = random.Random(seed)
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ" + "BSZGOIDQ"  # the confusables twice as likely
    uk_letters = "ABCDEFGHJKLMNOPRSTUVWXYZ"  # UK plates never use I or Q
    passes = []
    for i in range(count):
        if i % 2 == 0:
            prefix = "".join(rng.choice(letters) for _ in range(rng.choice((1, 1, 2))))
            digits = str(rng.randint(1, 9))
            digits += "".join(rng.choice("0123456789") for _ in range(rng.choice((0, 1, 2, 3, 3))))
            suffix = "".join(rng.choice(letters) for _ in range(rng.choice((1, 2, 3, 3))))
            number, style = f"{prefix} {digits} {suffix}", "id"
        else:
            area = "".join(rng.choice(uk_letters) for _ in range(2))
            age = rng.choice(["15", "65", "20", "70", "21", "71", "58", "08", "19", "69"])
            tail = "".join(rng.choice(uk_letters) for _ in range(3))
            number, style = f"{area}{age} {tail}", "uk"
        passes.append(
            PlatePass(
                number=number,
                style=style,
                colour="yellow" if i % 4 in (1, 2) else "white",
                width=rng.choice((300, 360, 420, 480)),
                skew=rng.uniform(-0.8, 0.8),
                tilt=rng.uniform(-4, 4),
                body=rng.randrange(len(BODY_COLOURS)),
                badge=rng.randrange(len(BADGES)),
                expiry=f"{rng.randint(1, 12):02d}.{rng.randint(25, 30)}",
            )
        )
    return passes


def plate_video(
    path: str | os.PathLike,
    passes: list[PlatePass],
    scenes: list[np.ndarray],
    *,
    frames_per_pass: int = 8,
    size: tuple[int, int] = (1280, 720),
    fps: int = 25,
    seed: int = 3,
    car_photo: np.ndarray | None = None,
    gap_frames: int = 0,
) -> tuple[Path, list[VehicleBox]]:
    """An H.264 file of the passes one after another over the street scenes, each
    followed by `gap_frames` of its bare scene, and the vehicle's box in each frame
    (a drawn vehicle, or `car_photo` with the plate on it). Reused when it exists (the
    boxes sit beside it, in JSON)."""
    path = Path(path)
    manifest = path.with_suffix(".json")
    if path.is_file() and path.stat().st_size > 0 and manifest.is_file():
        return path, [VehicleBox(**row) for row in json.loads(manifest.read_text())]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    width, height = size
    command = [
        FFMPEG, "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", str(fps),
        "-movflags", "+faststart", str(tmp),
    ]  # fmt: skip
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError as exc:
        raise MediaError(f"{FFMPEG} is not installed: run `bash .ci/system-deps`") from exc
    rng = random.Random(seed)
    boxes: list[VehicleBox] = []
    index = 0
    try:
        for number, spec in enumerate(passes):
            scene = cv2.resize(scenes[number % len(scenes)], size, interpolation=cv2.INTER_LINEAR)
            for frame, box in _pass_frames(spec, scene, frames_per_pass, size, rng, car_photo):
                process.stdin.write(frame.tobytes())
                boxes.append(VehicleBox(index, number, box))
                index += 1
            for _ in range(gap_frames):
                process.stdin.write(scene.tobytes())
                index += 1
        process.stdin.close()
        if process.wait(timeout=300) != 0:
            raise MediaError(f"ffmpeg failed: {process.stderr.read().decode(errors='replace')[-2000:]}")
    except BaseException:
        process.kill()
        process.wait()
        tmp.unlink(missing_ok=True)
        raise
    manifest.write_text(json.dumps([asdict(b) for b in boxes]))
    os.replace(tmp, path)
    return path, boxes


def vehicle_crops(path: Path, boxes: list[VehicleBox], margin: float = 0.05):
    """Decode the video and yield (pass index, frame index, vehicle crop) for every box,
    the box widened by `margin` as a detector's box is rarely tight."""
    by_frame: dict[int, list[VehicleBox]] = {}
    for box in boxes:
        by_frame.setdefault(box.frame, []).append(box)
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            for box in by_frame.get(index, []):
                x1, y1, x2, y2 = box.box
                mx, my = int((x2 - x1) * margin), int((y2 - y1) * margin)
                h, w = frame.shape[:2]
                crop = frame[max(0, y1 - my) : min(h, y2 + my), max(0, x1 - mx) : min(w, x2 + mx)]
                yield box.pass_index, index, crop
            index += 1
    finally:
        capture.release()
    if index <= max(by_frame, default=-1):
        raise MediaError(f"{path} has {index} frames, the boxes name frame {max(by_frame)}")
