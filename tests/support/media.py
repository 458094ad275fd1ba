"""Real test media, made with Debian's ffmpeg (`.ci/system-deps` installs it).

Every maker writes to the path it is given and returns it; an existing non-empty
file is reused, so a session-scoped directory (see `MediaCache` and the `media`
fixture in tests/support/fixtures.py) makes each variant once per test session.
Files are written under a temporary name and renamed, so a half-written file is
never mistaken for a cached one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"

# ffmpeg's lavfi test sources usable as `pattern`.
PATTERNS = ("testsrc", "testsrc2", "smptebars", "rgbtestsrc", "mandelbrot")

SMALL = {"width": 320, "height": 240, "fps": 25}


class MediaError(RuntimeError):
    pass


def _run(args: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, check=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise MediaError(f"{args[0]} is not installed: run `bash .ci/system-deps`") from exc
    except subprocess.CalledProcessError as exc:
        raise MediaError(f"{' '.join(args)} failed: {exc.stderr.decode(errors='replace')[-2000:]}") from exc


def _cached(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _publish(tmp: Path, path: Path) -> Path:
    os.replace(tmp, path)
    return path


def _tmp_for(path: Path) -> Path:
    # Keep the extension: ffmpeg picks the muxer from it.
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def h264_file(
    path: str | os.PathLike,
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    seconds: float = 4,
    pattern: str = "testsrc",
) -> Path:
    """An H.264 (libx264, yuv420p) MP4 with a keyframe every second (`-g fps`).

    `pattern` is an ffmpeg lavfi source (testsrc draws a frame counter, so frames differ).
    `+faststart` puts the index first, so the file also works when streamed.
    """
    path = Path(path)
    if _cached(path):
        return path
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}, not {pattern!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_for(path)
    _run(
        [
            FFMPEG, "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"{pattern}=size={width}x{height}:rate={fps}",
            "-t", str(seconds),
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-g", str(fps), "-keyint_min", str(fps), "-sc_threshold", "0",
            "-movflags", "+faststart",
            str(tmp),
        ]
    )  # fmt: skip
    return _publish(tmp, path)


def h264_transcoded(
    source: str | os.PathLike, path: str | os.PathLike, *, width: int = 1280, height: int = 720, fps: int = 25
) -> Path:
    """A video file as an H.264 MP4 of another size and rate (frames repeated or
    dropped to reach `fps`), keyframe every second, as a camera would send it."""
    path = Path(path)
    if _cached(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_for(path)
    _run(
        [
            FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", str(source),
            "-vf", f"scale={width}:{height},fps={fps}",
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-g", str(fps), "-keyint_min", str(fps), "-sc_threshold", "0",
            "-movflags", "+faststart", "-an",
            str(tmp),
        ]
    )  # fmt: skip
    return _publish(tmp, path)


def small_h264_file(path: str | os.PathLike, *, seconds: float = 4, pattern: str = "testsrc") -> Path:
    """A 320x240 25 fps H.264 MP4: cheap to make, decode and stream."""
    return h264_file(path, seconds=seconds, pattern=pattern, **SMALL)


def mjpeg_frames(
    directory: str | os.PathLike,
    *,
    width: int = 320,
    height: int = 240,
    count: int = 25,
    fps: int = 25,
    pattern: str = "testsrc",
    quality: int = 5,
) -> list[bytes]:
    """`count` distinct baseline JPEG frames (ffmpeg's mjpeg encoder), for an HTTP MJPEG source.

    The frames are cached as numbered .jpg files in `directory` (one directory per variant).
    """
    directory = Path(directory)
    files = sorted(directory.glob("frame_*.jpg"))
    if len(files) != count:
        if pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, not {pattern!r}")
        tmp = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _run(
            [
                FFMPEG, "-nostdin", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", f"{pattern}=size={width}x{height}:rate={fps}",
                "-frames:v", str(count), "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", str(quality),
                str(tmp / "frame_%05d.jpg"),
            ]
        )  # fmt: skip
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(tmp, directory)
        files = sorted(directory.glob("frame_*.jpg"))
    frames = [f.read_bytes() for f in files]
    if len(frames) != count or not all(f.startswith(b"\xff\xd8") and f.endswith(b"\xff\xd9") for f in frames):
        raise MediaError(f"ffmpeg made {len(frames)} JPEG frames in {directory}, expected {count}")
    return frames


def not_a_video(path: str | os.PathLike, *, size: int = 64 * 1024, text: bool = False) -> Path:
    """A file named like a video that is not one: random bytes, or (text=True) a text file."""
    path = Path(path)
    if _cached(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_for(path)
    if text:
        tmp.write_text("This is a text file with a video file's name.\n" * 64)
    else:
        # Not a valid container header at the start, and the same bytes every run: some
        # random draws happen to decode as a raw H.263 stream (seen once in ~thousands).
        tmp.write_bytes(b"NOTAVIDEO\x00" + random.Random(0).randbytes(size))
    return _publish(tmp, path)


@dataclass(frozen=True)
class Probe:
    codec: str
    width: int
    height: int
    fps: float
    frames: int
    seconds: float


def probe(path: str | os.PathLike) -> Probe:
    """ffprobe's view of a video file's first video stream (frames counted from the index)."""
    out = _run(
        [
            FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries",
            "stream=codec_name,width,height,avg_frame_rate,nb_frames:format=duration",
            "-of", "json", str(path),
        ]
    ).stdout  # fmt: skip
    data = json.loads(out)
    stream = data["streams"][0]
    num, den = (int(x) for x in stream["avg_frame_rate"].split("/"))
    return Probe(
        codec=stream["codec_name"],
        width=int(stream["width"]),
        height=int(stream["height"]),
        fps=num / den if den else 0.0,
        frames=int(stream.get("nb_frames", 0)),
        seconds=float(data["format"]["duration"]),
    )


class MediaCache:
    """Makes each media variant once, named by its parameters, inside `root`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def h264(
        self,
        *,
        width: int = 1280,
        height: int = 720,
        fps: int = 25,
        seconds: float = 4,
        pattern: str = "testsrc",
    ) -> Path:
        name = f"{pattern}_{width}x{height}_{fps}fps_{seconds}s.mp4"
        return h264_file(
            self.root / name, width=width, height=height, fps=fps, seconds=seconds, pattern=pattern
        )

    def small_h264(self, *, seconds: float = 4, pattern: str = "testsrc") -> Path:
        return self.h264(seconds=seconds, pattern=pattern, **SMALL)

    def mjpeg_frames(
        self, *, width: int = 320, height: int = 240, count: int = 25, fps: int = 25, pattern: str = "testsrc"
    ) -> list[bytes]:
        name = f"mjpeg_{pattern}_{width}x{height}_{fps}fps_{count}"
        return mjpeg_frames(
            self.root / name, width=width, height=height, count=count, fps=fps, pattern=pattern
        )

    def not_a_video(self, *, text: bool = False) -> Path:
        return not_a_video(self.root / ("text_named.mp4" if text else "random_bytes.mp4"), text=text)
