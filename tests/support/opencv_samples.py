"""Real street video and photos from Debian's `opencv-doc` package.

`examples/data/vtest.avi` (768x576, 795 frames, pedestrians on a square seen
from above, a parked van), `messi5.jpg` (football players and a ball) and
`licenseplate_motion.jpg` (600x482, the rear of a real car, motion-blurred) are
fetched once with `apt-get download opencv-doc` (the suite's system packages
come from Debian too, see .ci/system-deps), extracted with `dpkg-deb`, checked
against their sha256 and kept in a cache folder (the test data dir), so later
sessions work offline. The files are written to a temporary folder and renamed,
so a half-extracted cache is never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import cv2
import numpy as np

PACKAGE = "opencv-doc"
DATA_IN_PACKAGE = "usr/share/doc/opencv-doc/examples/data/"
FILES = {
    "vtest.avi": "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    "messi5.jpg": "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9",
    "licenseplate_motion.jpg": "ea6fa9cea75df91bec656d1d3b903111a9c0708c6a3b88f405a5156de38ff9d6",
}


class SamplesUnavailable(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def opencv_samples_dir(cache_root: str | os.PathLike) -> Path:
    """The folder holding the sample files, fetching them on first use."""
    target = Path(cache_root) / "opencv-doc-samples"
    if all((target / name).is_file() for name in FILES):
        return target
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root) as work:
        try:
            subprocess.run(
                ["apt-get", "download", PACKAGE], cwd=work, check=True, capture_output=True, timeout=600
            )
        except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace")[-500:] or str(exc)
            raise SamplesUnavailable(
                f"`apt-get download {PACKAGE}` failed (run `apt-get update` first?): {detail}"
            ) from exc
        package = next(Path(work).glob(f"{PACKAGE}_*.deb"))
        unpacked = Path(work) / "samples"
        unpacked.mkdir()
        wanted = {f"./{DATA_IN_PACKAGE}{name}": name for name in FILES}
        # dpkg-deb writes the package's file tree as a tar stream; read only what is needed.
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(package)], stdout=subprocess.PIPE) as dpkg:
            assert dpkg.stdout is not None
            with tarfile.open(fileobj=dpkg.stdout, mode="r|") as tar:
                for member in tar:
                    name = wanted.get(member.name)
                    if name and member.isfile():
                        source = tar.extractfile(member)
                        assert source is not None
                        (unpacked / name).write_bytes(source.read())
            dpkg.stdout.close()
        for name, expected in FILES.items():
            path = unpacked / name
            if not path.is_file():
                raise SamplesUnavailable(f"{package.name} has no {DATA_IN_PACKAGE}{name}")
            if _sha256(path) != expected:
                raise SamplesUnavailable(f"{name} in {package.name} is not the file the tests expect")
        try:
            os.replace(unpacked, target)
        except OSError:
            # A cache made before a file was added to FILES: add the missing ones.
            for name in FILES:
                if not (target / name).is_file():
                    os.replace(unpacked / name, target / name)
        shutil.rmtree(unpacked, ignore_errors=True)
    return target


def video_frames(path: Path, indexes: list[int]) -> list[np.ndarray]:
    """The frames of a video file at these indexes (decoded in order)."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    wanted, frames, index = set(indexes), {}, 0
    try:
        while index <= max(indexes):
            ok, frame = capture.read()
            if not ok:
                break
            if index in wanted:
                frames[index] = frame
            index += 1
    finally:
        capture.release()
    missing = sorted(wanted - set(frames))
    if missing:
        raise SamplesUnavailable(f"{path} has no frames {missing}")
    return [frames[i] for i in indexes]
