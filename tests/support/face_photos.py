"""Real face photos for the face tests.

- `astronaut_bgr()`: scikit-image's astronaut (Eileen Collins), one frontal face.
- `FacePhotos`: the test images of the `face_recognition` 1.3.0 source
  distribution on PyPI (several photos of Barack Obama, one of Joe Biden),
  downloaded once with pip and kept in a cache folder (the test data dir), so
  later sessions work offline.

Files in the sdist's tests/test_images: obama.jpg, obama2.jpg (turned ~30°),
obama3.jpg, obama_partial_face.jpg, obama_partial_face2.jpg (cut by the frame
edge), biden.jpg, 32bit.png (obama2 as a 32-bit PNG).
"""

from __future__ import annotations

import os
import tarfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .sdist_photos import sdist_unpacked

SDIST = "face_recognition==1.3.0"
IMAGES_IN_SDIST = "face_recognition-1.3.0/tests/test_images/"
OBAMA = ("obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg")
BIDEN = ("biden.jpg",)


class FacePhotosUnavailable(RuntimeError):
    pass


@lru_cache(maxsize=1)
def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def jpeg_bytes(image: np.ndarray, quality: int = 92) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def _test_images(tar: tarfile.TarFile, archive: str, destination: Path) -> None:
    for member in tar.getmembers():
        if member.isfile() and member.name.startswith(IMAGES_IN_SDIST):
            source = tar.extractfile(member)
            assert source is not None
            (destination / Path(member.name).name).write_bytes(source.read())


def face_photos_dir(cache_root: str | os.PathLike) -> Path:
    """The folder holding the sdist's test images, downloading them on first use."""
    return sdist_unpacked(
        cache_root,
        sdist=SDIST,
        folder="face_recognition-1.3.0-test_images",
        ready=lambda target: (target / "biden.jpg").is_file(),
        extract=_test_images,
        unavailable=FacePhotosUnavailable,
        purpose="its test photos",
    )


class FacePhotos:
    """The photos of one folder, read as BGR arrays or raw file bytes."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, name: str) -> Path:
        return self.folder / name

    def bytes(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def bgr(self, name: str) -> np.ndarray:
        image = cv2.imread(str(self.path(name)), cv2.IMREAD_COLOR)
        assert image is not None, name
        return image
