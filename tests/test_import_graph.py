"""The layers of the code base (README, "Architecture"): imports between top-level
packages only point downwards, so no two packages import each other.

Every `import` and `from ... import` is read with `ast`, including those inside
functions (an import moved into a function still makes a dependency).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Not product code: the test suite and the benchmarks may import anything.
NOT_PRODUCT = {"tests", "bench", "data"}
SITE = "visionaire_site"

# What each package may import, lowest layer last. The site imports every app.
ALLOWED: dict[str, set[str]] = {
    "workers": {"events", "streams", "analytics", "platform_config", "live", "core"},
    "viewing": {"streams", "platform_config", "live", "core"},
    "events": {"streams", "analytics", "platform_config", "live", "core"},
    "faces": {"analytics", "platform_config", "live", "core"},
    "vehicles": {"analytics", "platform_config", "live", "core"},
    "streams": {"analytics", "platform_config", "live", "core"},
    "analytics": {"platform_config", "live", "core"},
    "platform_config": {"live", "core"},
    "live": {"core"},
    "core": set(),
}


def project_packages() -> list[str]:
    return sorted(
        path.name
        for path in ROOT.iterdir()
        if path.is_dir() and (path / "__init__.py").is_file() and path.name not in NOT_PRODUCT
    )


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, absolute module name) of every absolute import in the tree; relative
    imports stay inside their own package and are left out."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def import_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported project package -> where ("path:line")."""
    packages = set(project_packages())
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, module in imported_modules(tree):
                top = module.split(".")[0]
                if top in packages and top != package:
                    graph[package][top].append(f"{path.relative_to(ROOT)}:{line}")
    return graph


def test_every_package_has_a_place_in_the_layers():
    assert set(project_packages()) == {*ALLOWED, SITE}


def test_no_two_packages_import_each_other():
    graph = import_graph()
    pairs = [
        f"{a} <-> {b}: {graph[a][b][0]}, {graph[b][a][0]}"
        for a in sorted(graph)
        for b in sorted(graph[a])
        if a < b and a in graph.get(b, {})
    ]
    assert pairs == []


def test_nothing_imports_the_site():
    graph = import_graph()
    offenders = {package: deps[SITE] for package, deps in graph.items() if SITE in deps}
    assert offenders == {}


def test_core_imports_no_project_package():
    assert dict(import_graph().get("core", {})) == {}


def test_live_imports_only_core():
    assert set(import_graph().get("live", {})) <= {"core"}


def test_imports_point_downwards():
    graph = import_graph()
    upwards = {
        f"{package} -> {dep}": where[0]
        for package, deps in graph.items()
        if package != SITE
        for dep, where in deps.items()
        if dep not in ALLOWED[package]
    }
    assert upwards == {}


# The face analytics and their models are named only by analytics/ (which owns them)
# and faces/ (enrollment runs on those models): every other package asks the registry.
FACE_NAMES = re.compile(r"NFV4-FR|NFV4-SS|analytics\.face|analytics/face")


def test_only_analytics_and_faces_name_the_face_analytics():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in project_packages()
        if package not in {"analytics", "faces"}
        for path in sorted((ROOT / package).rglob("*"))
        if path.suffix in {".py", ".html", ".js", ".txt"}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FACE_NAMES.search(line)
    ]
    assert offenders == []


def test_every_project_import_in_the_benchmarks_resolves():
    # The benchmarks run by hand, not in this suite: a module that moves must not
    # leave one of them failing at its first import (imports inside functions too).
    import importlib.util

    project = set(project_packages()) | {SITE}
    missing = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
                continue
            if node.module.split(".")[0] not in project:
                continue
            try:
                module = importlib.import_module(node.module)
            except ImportError:
                missing.append(f"{path.name}: {node.module}")
                continue
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if not hasattr(module, alias.name) and importlib.util.find_spec(name) is None:
                    missing.append(f"{path.name}: {name}")
    assert missing == []
