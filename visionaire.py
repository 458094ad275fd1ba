#!/usr/bin/env python3
"""Entry point for a fresh clone: creates the virtual environment, installs the
locked dependencies (locks/<set>.txt, exact versions and hashes) and the project
into it when the lock changed, then hands over to the launcher inside the
environment.

Standard library only: this file runs before anything is installed.

    python3 visionaire.py up                 # API :4004, worker for node 0, beat
    python3 visionaire.py test [pytest args] # the test suite
    python3 visionaire.py lock [--check]     # regenerate locks/ from pyproject.toml (or check them)
    python3 visionaire.py worker --node N    # a worker for node N (another host)
    python3 visionaire.py manage <command>   # Django management commands
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VISIONAIRE_VENV", ROOT / ".venv"))
STAMP = VENV / ".visionaire-install.json"
# Commands that need the test tools installed as well.
TEST_COMMANDS = {"test", "bench"}
ACCELERATORS = {"cpu", "gpu"}
# Installed first from the lock (see ensure_environment): the installer and the build backend.
INSTALLER = ("pip", "setuptools")


def _fail(message: str) -> None:
    print(f"visionaire: {message}", file=sys.stderr)
    raise SystemExit(2)


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def _lockfiles():
    """visionaire_site/lockfiles.py (what a lock is, how it is named and checked),
    loaded by path: its top level needs the standard library only."""
    path = ROOT / "visionaire_site" / "lockfiles.py"
    spec = importlib.util.spec_from_file_location("visionaire_lockfiles", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _installed() -> dict:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}


def _create_venv() -> Path:
    if sys.version_info < (3, 11):  # noqa: UP036 (this file runs under whatever python3 the user has)
        _fail(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    python = _venv_python()
    if not python.exists():
        print(f"visionaire: creating virtual environment in {VENV}", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    return python


def _read_lock(lockfiles, extras: set[str]) -> tuple[Path, str]:
    lock = lockfiles.lock_path(ROOT, lockfiles.set_name(extras))
    try:
        return lock, lock.read_text()
    except OSError:
        _fail(
            f"{lock.relative_to(ROOT)} is missing: restore it from git, or run `python3 visionaire.py lock`"
        )


def _install_from_lock(python: Path, lockfiles, lock_text: str, names: tuple[str, ...]) -> None:
    """Install only `names`, with the versions and hashes the lock gives them."""
    found = lockfiles.blocks(lock_text)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as subset:
        subset.write("".join(found[name] for name in names))
        subset.flush()
        subprocess.check_call([*_pip(python), "--require-hashes", "--no-deps", "-r", subset.name], cwd=ROOT)


def _pip(python: Path) -> list[str]:
    return [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]


def ensure_environment(extras: set[str]) -> Path:
    """Create the venv and install the lock of `extras` (locks/<set>.txt) and the
    project; a no-op when the stamp says that same lock was installed."""
    python = _create_venv()
    lockfiles = _lockfiles()
    stamp = _installed()
    installed = set(stamp.get("extras", []))
    # Keep what was installed (e.g. the test tools), but one ONNX Runtime build only.
    extras = extras | (installed - (ACCELERATORS if extras & ACCELERATORS else set()))
    lock, text = _read_lock(lockfiles, extras)
    where = lock.relative_to(ROOT)
    if lockfiles.recorded_digest(text) != lockfiles.pyproject_digest(lockfiles.load_pyproject(ROOT)):
        print(
            f"visionaire: pyproject.toml's dependencies changed since {where} was made; "
            "installing the lock as it is (run `python3 visionaire.py lock`)",
            file=sys.stderr,
            flush=True,
        )
    digest = hashlib.sha256(text.encode()).hexdigest()
    if stamp.get("lock") == str(where) and stamp.get("lock_sha256") == digest:
        return python
    print(f"visionaire: installing {where} into {VENV} (first run takes a few minutes)", flush=True)
    pip = _pip(python)
    try:
        if installed & ACCELERATORS and not (installed & ACCELERATORS) <= extras:
            # Switching between onnxruntime and onnxruntime-gpu: they share a module.
            subprocess.check_call(
                [str(python), "-m", "pip", "uninstall", "-y", "-q", "onnxruntime", "onnxruntime-gpu"],
                cwd=ROOT,
            )
        # The installer and the build backend first, from the lock: the lock's few
        # source-only packages and the project are then built with them, not with
        # whatever an isolated build environment would download.
        _install_from_lock(python, lockfiles, text, INSTALLER)
        subprocess.check_call(
            [*pip, "--require-hashes", "--no-deps", "--no-build-isolation", "-r", str(lock)]
        )
        subprocess.check_call([*pip, "--no-deps", "--no-build-isolation", "-e", "."], cwd=ROOT)
    except subprocess.CalledProcessError as exc:
        _fail(f"installing dependencies failed (exit {exc.returncode}); see pip's output above")
    STAMP.write_text(json.dumps({"lock": str(where), "lock_sha256": digest, "extras": sorted(extras)}))
    return python


def lock(argv: list[str]) -> None:
    """`lock [--check]`: regenerate locks/ from pyproject.toml, or check they agree.
    Needs only uv and packaging, installed from the test lock."""
    python = _create_venv()
    lockfiles = _lockfiles()
    _, text = _read_lock(lockfiles, {accelerator_extra(), "test"})
    try:
        _install_from_lock(python, lockfiles, text, ("uv", "packaging"))
    except subprocess.CalledProcessError as exc:
        _fail(f"installing uv from the lock failed (exit {exc.returncode}); see pip's output above")
    # -P: not the script's folder (visionaire_site/, whose redis.py would shadow redis) on sys.path.
    script = ROOT / "visionaire_site" / "lockfiles.py"
    os.execv(str(python), [str(python), "-P", str(script), *argv])


def accelerator_extra() -> str:
    """ "gpu" (onnxruntime-gpu) where an NVIDIA GPU answers, else "cpu"; settable
    with VISIONAIRE_ONNXRUNTIME=cpu|gpu."""
    forced = os.environ.get("VISIONAIRE_ONNXRUNTIME", "").strip().lower()
    if forced in ("cpu", "gpu"):
        return forced
    try:
        found = subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        found = False
    return "gpu" if found else "cpu"


def ensure_system_packages() -> None:
    """The suite uses real media tools (ffmpeg, a GStreamer RTSP server, Chromium):
    install the missing Debian packages before the first test run."""
    script = ROOT / ".ci" / "system-deps"
    if subprocess.call(["bash", str(script)], cwd=ROOT) != 0:
        _fail(f"installing the system packages the tests need failed; see {script.relative_to(ROOT)}")


def main(argv: list[str]) -> None:
    command = argv[0] if argv else "up"
    if command == "lock":
        lock(argv[1:])
    if command == "test":
        ensure_system_packages()
    extras = {accelerator_extra()} | ({"test"} if command in TEST_COMMANDS else set())
    python = ensure_environment(extras)
    os.chdir(ROOT)
    os.execv(str(python), [str(python), "-m", "visionaire_site.launcher", *(argv or ["up"])])


if __name__ == "__main__":
    main(sys.argv[1:])
