#!/usr/bin/env python3
"""Entry point for a fresh clone: creates the virtual environment, installs the
project into it when pyproject.toml changed, then hands over to the launcher
inside the environment.

Standard library only: this file runs before anything is installed.

    python3 visionaire.py up                 # API :4004, worker for node 0, beat
    python3 visionaire.py test [pytest args] # the test suite
    python3 visionaire.py worker --node N    # a worker for node N (another host)
    python3 visionaire.py manage <command>   # Django management commands
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VISIONAIRE_VENV", ROOT / ".venv"))
STAMP = VENV / ".visionaire-install.json"
# Commands that need the test tools installed as well.
TEST_COMMANDS = {"test", "bench", "fuzz"}


def _fail(message: str) -> None:
    print(f"visionaire: {message}", file=sys.stderr)
    raise SystemExit(2)


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def _wanted_hash() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "requirements-nodeps.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def _installed() -> dict:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}


def ensure_environment(extras: set[str]) -> Path:
    """Create .venv and install the project with `extras`; a no-op when the
    stamp says the same pyproject.toml was already installed with them."""
    if sys.version_info < (3, 11):  # noqa: UP036 (this file runs under whatever python3 the user has)
        _fail(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    python = _venv_python()
    if not python.exists():
        print(f"visionaire: creating virtual environment in {VENV}", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    stamp = _installed()
    if stamp.get("hash") == _wanted_hash() and extras <= set(stamp.get("extras", [])):
        return python
    installed = set(stamp.get("extras", []))
    accelerators = {"cpu", "gpu"}
    if stamp.get("hash") == _wanted_hash():
        # Keep what was installed (e.g. the test tools), but one ONNX Runtime build only.
        extras = extras | (installed - (accelerators if extras & accelerators else set()))
    target = f".[{','.join(sorted(extras))}]" if extras else "."
    print(f"visionaire: installing {target} into {VENV} (first run takes a few minutes)", flush=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    try:
        subprocess.check_call([*pip, "--upgrade", "pip"], cwd=ROOT)
        if installed & accelerators and not (installed & accelerators) <= extras:
            # Switching between onnxruntime and onnxruntime-gpu: they share a module.
            subprocess.check_call(
                [str(python), "-m", "pip", "uninstall", "-y", "-q", "onnxruntime", "onnxruntime-gpu"],
                cwd=ROOT,
            )
        subprocess.check_call([*pip, "-e", target], cwd=ROOT)
        subprocess.check_call([*pip, "--no-deps", "-r", "requirements-nodeps.txt"], cwd=ROOT)
    except subprocess.CalledProcessError as exc:
        _fail(f"installing dependencies failed (exit {exc.returncode}); see pip's output above")
    STAMP.write_text(json.dumps({"hash": _wanted_hash(), "extras": sorted(extras)}))
    return python


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
    if command == "test":
        ensure_system_packages()
    extras = {accelerator_extra()} | ({"test"} if command in TEST_COMMANDS else set())
    python = ensure_environment(extras)
    os.chdir(ROOT)
    os.execv(str(python), [str(python), "-m", "visionaire_site.launcher", *(argv or ["up"])])


if __name__ == "__main__":
    main(sys.argv[1:])
