"""The dependency locks: locks/<set>.txt, made from pyproject.toml with uv.

    python3 visionaire.py lock           # regenerate every lock from pyproject.toml
    python3 visionaire.py lock --check   # exit 1 with one line when they disagree

Each lock pins every package of one install set (the sets visionaire.py installs:
an ONNX Runtime build, with or without the test tools), transitive ones included,
with the sha256 of each of its files on PyPI, for every platform and Python the
project supports (`uv pip compile --universal`). Its header records a digest of the
pyproject.toml tables it was made from, so a dependency changed without relocking
is caught.

visionaire.py loads this file by path before anything is installed: the top level
uses the standard library only (packaging is imported where the check needs it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = "locks"
# The install sets, named by their extras (visionaire.py picks one by the same rule).
SETS: dict[str, tuple[str, ...]] = {
    "cpu": ("cpu",),
    "gpu": ("gpu",),
    "cpu-test": ("cpu", "test"),
    "gpu-test": ("gpu", "test"),
}
INDEX = "https://pypi.org/simple"
# An override with a marker no interpreter satisfies: uv then leaves the package out.
NEVER = "python_version < '0'"
REGENERATE = "python3 visionaire.py lock"
DIGEST_LINE = re.compile(r"^# pyproject-sha256: ([0-9a-f]{64})$", re.M)


def set_name(extras: set[str] | tuple[str, ...]) -> str:
    return "-".join(sorted(extras))


def lock_path(root: Path, name: str) -> Path:
    return root / LOCKS / f"{name}.txt"


def load_pyproject(root: Path) -> dict:
    with open(root / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def lock_inputs(pyproject: dict) -> dict:
    """Everything in pyproject.toml that a lock is made from."""
    project = pyproject.get("project", {})
    return {
        "requires-python": project.get("requires-python", ""),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-system": pyproject.get("build-system", {}).get("requires", []),
        "lock": pyproject.get("tool", {}).get("visionaire", {}).get("lock", {}),
    }


def pyproject_digest(pyproject: dict) -> str:
    canonical = json.dumps(lock_inputs(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def recorded_digest(lock_text: str) -> str | None:
    found = DIGEST_LINE.search(lock_text)
    return found.group(1) if found else None


def also_requirements(pyproject: dict) -> list[str]:
    """Locked beside the dependencies: the build backend and [tool.visionaire.lock].also."""
    inputs = lock_inputs(pyproject)
    return [*inputs["build-system"], *inputs["lock"].get("also", [])]


def set_requirements(pyproject: dict, extras: tuple[str, ...]) -> list[str]:
    inputs = lock_inputs(pyproject)
    found = list(inputs["dependencies"])
    for extra in extras:
        found += inputs["optional-dependencies"].get(extra, [])
    return found + also_requirements(pyproject)


def omitted(pyproject: dict, extras: tuple[str, ...]) -> list[str]:
    lock = lock_inputs(pyproject)["lock"]
    names = list(lock.get("omit", []))
    for extra in extras:
        names += lock.get("omit-with-extra", {}).get(extra, [])
    return names


def minimum_python(pyproject: dict) -> str:
    found = re.search(r">=\s*(\d+\.\d+)", lock_inputs(pyproject)["requires-python"])
    if not found:
        raise SystemExit('visionaire: pyproject.toml needs requires-python = ">=X.Y" to lock for')
    return found.group(1)


def blocks(lock_text: str) -> dict[str, str]:
    """Each pinned package's lines (its pin and --hash continuations), by lowercase name."""
    found: dict[str, str] = {}
    current = None
    for line in lock_text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            current = re.split(r"[=<>!~;\s\[]", line, maxsplit=1)[0].lower().replace("_", "-")
            found[current] = found.get(current, "") + line + "\n"
        elif current is not None:
            found[current] += line + "\n"
    return found


def header(name: str, extras: tuple[str, ...], digest: str, uv_version: str) -> str:
    return (
        f"# Lock of the install set {name!r} (extras: {', '.join(extras)}): every package with\n"
        f"# its version and PyPI hashes. Made by `{REGENERATE}` ({uv_version}) from\n"
        "# pyproject.toml; do not edit. visionaire.py installs it with\n"
        "# `pip install --require-hashes --no-deps -r`.\n"
        f"# pyproject-sha256: {digest}\n"
    )


# --- making the locks --------------------------------------------------------


def _uv(root: Path) -> list[str]:
    """The uv of this environment, the version pinned in pyproject's test extra
    (installed here when another one is found, so the locks never depend on it)."""
    uv = Path(sys.executable).with_name("uv")
    pinned = next(
        (
            spec
            for spec in lock_inputs(load_pyproject(root))["optional-dependencies"].get("test", [])
            if re.match(r"uv\s*==", spec)
        ),
        None,
    )
    if pinned is None:
        raise SystemExit("visionaire: pin uv in the test extra of pyproject.toml (uv==X.Y.Z)")
    version = pinned.split("==", 1)[1].split(";")[0].strip()
    current = subprocess.run([str(uv), "--version"], capture_output=True, text=True) if uv.exists() else None
    if current is None or current.returncode != 0 or current.stdout.split()[1:2] != [version]:
        print(f"visionaire: installing uv {version} into {uv.parent.parent}", flush=True)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", f"uv=={version}"])
    return [str(uv)]


def compile_lock(root: Path, name: str, uv: list[str]) -> str:
    pyproject = load_pyproject(root)
    extras = SETS[name]
    # uv's own settings and index variables must not change what is resolved.
    env = {key: value for key, value in os.environ.items() if not key.startswith("UV_")}
    with tempfile.TemporaryDirectory() as tmp:
        overrides = Path(tmp) / "overrides.txt"
        overrides.write_text("".join(f"{package} ; {NEVER}\n" for package in omitted(pyproject, extras)))
        command = [
            *uv,
            "pip",
            "compile",
            "pyproject.toml",
            "-",  # the packages locked beside the dependencies, from stdin
            *[arg for extra in extras for arg in ("--extra", extra)],
            "--override",
            str(overrides),
            "--universal",
            "--python-version",
            minimum_python(pyproject),
            "--generate-hashes",
            "--no-header",
            "--no-config",
            "--default-index",
            INDEX,
            "--quiet",
        ]
        result = subprocess.run(
            command,
            cwd=root,
            env=env,
            input="".join(f"{spec}\n" for spec in also_requirements(pyproject)),
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        raise SystemExit(f"visionaire: locking {name!r} failed:\n{result.stderr}")
    # "uv X.Y.Z (platform)": the version only, so the header is the same on every machine.
    version = " ".join(subprocess.run([*uv, "--version"], capture_output=True, text=True).stdout.split()[:2])
    return header(name, extras, pyproject_digest(pyproject), version) + result.stdout


def write_locks(root: Path) -> None:
    uv = _uv(root)
    (root / LOCKS).mkdir(exist_ok=True)
    for name in SETS:
        text = compile_lock(root, name, uv)
        lock_path(root, name).write_text(text)
        print(
            f"visionaire: {lock_path(root, name).relative_to(root)}: {len(blocks(text))} packages", flush=True
        )
    problems = check_locks(root)
    if problems:
        raise SystemExit(f"visionaire: the new locks fail their check: {'; '.join(problems)}")


# --- checking them -----------------------------------------------------------


def pins(lock_text: str) -> dict[str, list[tuple[object, bool]]]:
    """name -> [(version, has hashes)] for every pin of the lock."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    found: dict[str, list[tuple[object, bool]]] = {}
    for block in blocks(lock_text).values():
        logical = block.replace("\\\n", " ")
        for line in logical.splitlines():
            spec, *hashes = re.split(r"\s+--hash=", line.strip())
            requirement = Requirement(spec)
            exact = [s.version for s in requirement.specifier if s.operator == "=="]
            version = Version(exact[0]) if len(exact) == 1 else None
            found.setdefault(canonicalize_name(requirement.name), []).append((version, bool(hashes)))
    return found


def check_lock(pyproject: dict, name: str, lock_text: str) -> list[str]:
    """What in one lock disagrees with pyproject.toml (empty when nothing)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    where = f"{LOCKS}/{name}.txt"
    problems = []
    if recorded_digest(lock_text) != pyproject_digest(pyproject):
        problems.append(f"{where} was made from other dependency tables than pyproject.toml's")
    locked = pins(lock_text)
    for spec in set_requirements(pyproject, SETS[name]):
        requirement = Requirement(spec)
        versions = locked.get(canonicalize_name(requirement.name), [])
        if not versions:
            problems.append(f"{where} has no pin for {requirement.name} ({spec})")
        elif not any(
            v is not None and requirement.specifier.contains(v, prereleases=True) for v, _ in versions
        ):
            found = ", ".join(str(v) for v, _ in versions)
            problems.append(f"{where} pins {requirement.name} {found}, pyproject.toml wants {spec}")
    for package in omitted(pyproject, SETS[name]):
        if canonicalize_name(package) in locked:
            problems.append(f"{where} pins {package}, which must never be installed with it")
    for package, versions in sorted(locked.items()):
        if any(version is None or not hashed for version, hashed in versions):
            problems.append(f"{where}: {package} is not pinned to one version with hashes")
    return problems


def check_locks(root: Path) -> list[str]:
    pyproject = load_pyproject(root)
    problems = []
    for name in SETS:
        path = lock_path(root, name)
        if not path.exists():
            problems.append(f"{LOCKS}/{name}.txt is missing")
            continue
        problems += check_lock(pyproject, name, path.read_text())
    return problems


def main(argv: list[str], root: Path = ROOT) -> int:
    if argv not in ([], ["--check"]):
        print(f"usage: {REGENERATE} [--check]", file=sys.stderr)
        return 2
    if argv == ["--check"]:
        problems = check_locks(root)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            print(f"visionaire: {problems[0]}{more}; run `{REGENERATE}`", file=sys.stderr)
            return 1
        print(f"visionaire: {', '.join(f'{LOCKS}/{name}.txt' for name in SETS)} agree with pyproject.toml")
        return 0
    write_locks(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
