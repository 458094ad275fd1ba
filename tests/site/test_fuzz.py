"""Schema-driven fuzzing: schemathesis runs every phase (the schema's examples,
coverage of its boundaries, random valid and invalid requests, and stateful
sequences that follow the links between operations) against the platform's
ASGI application under uvicorn, with every check (no 5xx, status codes,
content types, headers and bodies as documented, invalid data refused, deleted
resources gone...).

One check is left out: `positive_data_acceptance` expects every request the
schema allows to succeed, but the contract refuses schema-valid requests for
reasons a schema cannot state (an image that is base64 but not a JPEG, a full
node, an unknown keyspace, a licence key that is not configured).

Schemathesis runs as its own command and its pytest plugin is off, so its
modules are never imported (and compiled by pytest's assertion rewriting) in
the test process: CPython 3.11.7 could fail that compilation with "AST
constructor recursion depth mismatch" when it happened deep in a call stack.
The run is derandomized and bounded (`--max-examples`); stream addresses may
only point at loopback (test settings).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.viewing.support import AsgiServer

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 10
# MJPEG answers are endless multipart streams, which schemathesis would read
# forever once a stream exists: they get their own run while none does.
MJPEG = "^/mjpeg/"
ALL_PHASES = ["examples", "coverage", "fuzzing", "stateful"]


@pytest.fixture
def server(transactional_db, settings):
    """The ASGI application under uvicorn; the migrations' rows (nodes, seats,
    configuration) are restored after the test's flush."""
    root = logging.getLogger()
    level = root.level
    with AsgiServer() as server:
        settings.API_PORT = server.port  # refused as a stream address, as in production
        yield server
    root.setLevel(level)  # fuzzed /config/platform calls change the log level


def schemathesis_run(server: AsgiServer, workdir: Path, phases: list[str], *selection: str) -> dict:
    """Run `st run` on the served document; the phases' statuses and the operations tested."""
    report = workdir / "events.ndjson"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        server.url("/openapi.json"),
        "--phases",
        ",".join(phases),
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--suppress-health-check",
        "all",
        "--no-color",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        *selection,
    ]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis found problems:\n{output[-20000:]}"
    summary: dict = {"phases": {}, "operations": 0}
    for line in report.read_text().splitlines():
        event = json.loads(line)
        if "PhaseFinished" in event:
            phase = event["PhaseFinished"]
            summary["phases"][phase["phase"]["name"]] = phase["status"]
        elif "LoadingFinished" in event:
            summary["operations"] = event["LoadingFinished"]["statistic"]["operations"]["selected"]
    return summary


@pytest.mark.timeout(2000)  # two schemathesis subprocesses, each with its own 900 s limit
def test_every_phase_finds_no_server_error_and_no_schema_violation(server, tmp_path):
    (tmp_path / "mjpeg").mkdir()
    (tmp_path / "rest").mkdir()
    mjpeg = schemathesis_run(
        server, tmp_path / "mjpeg", ["examples", "coverage", "fuzzing"], "--include-path-regex", MJPEG
    )
    assert mjpeg["operations"] == 4
    assert mjpeg["phases"]["coverage"] == mjpeg["phases"]["fuzzing"] == "success", mjpeg
    rest = schemathesis_run(server, tmp_path / "rest", ALL_PHASES, "--exclude-path-regex", MJPEG)
    assert rest["operations"] >= 40
    assert all(rest["phases"][phase] == "success" for phase in ALL_PHASES), rest


def test_schemathesis_is_not_imported_in_the_test_process():
    """Its pytest plugin is off (pyproject addopts) and the run above is a subprocess."""
    assert not any(name == "schemathesis" or name.startswith("schemathesis.") for name in sys.modules)
