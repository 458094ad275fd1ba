"""The OpenAPI document: it generates, covers every path of the contract, and
matches the committed copy (docs/openapi.json) so API changes show in review."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "contract" / "API.md"
OURS = ROOT / "docs" / "contract" / "ours.md"  # this platform's own routes
COMMITTED = ROOT / "docs" / "openapi.json"
REGENERATE = "python3 visionaire.py manage spectacular --format openapi-json --file docs/openapi.json"


def contract_operations() -> set[tuple[str, str]]:
    """(method, path) of every HTTP route in spec/API.md and in our own additions,
    optional segments expanded."""
    text = SPEC.read_text() + OURS.read_text()
    operations = set()
    for method, path in re.findall(r"^\| (GET|POST|PUT|DELETE) \| `([^`]+)`", text, re.M):
        for variant in re.sub(r"\[(/\{[a-z_]+\})\]", r"\1", path), re.sub(r"\[/\{[a-z_]+\}\]", "", path):
            operations.add((method.lower(), variant))
    for path in re.findall(r"`GET (/events[^`?]*)", text):
        operations.add(("get", path))
    return operations


@pytest.fixture(scope="module")
def document(django_db_blocker):
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def test_the_contract_has_its_routes():
    operations = contract_operations()
    assert ("get", "/mjpeg/fps/{fps}/{node}/{stream_id}/{analytic_id}") in operations
    assert ("get", "/events/{event_id}/image.jpg") in operations
    # The contract: 49 (its table rows, optional segments expanded, 3 event routes); ours: 9.
    assert len(operations) == 58


def test_every_contract_route_is_described(document):
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    missing = sorted(contract_operations() - described)
    assert not missing, f"routes of spec/API.md missing from the OpenAPI document: {missing}"


def test_every_operation_has_response_schemas_and_json_bodies_have_request_schemas(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation.get("responses"), f"{where} has no responses"
            success = [code for code in operation["responses"] if code.startswith("2")]
            assert success, f"{where} documents no success response"
            errors = [code for code in operation["responses"] if code[0] in "45"]
            if path not in ("/", "/metrics", "/openapi.json", "/docs"):
                assert errors, f"{where} documents no error response"
            if method in ("post", "put") and path not in ("/system/restart",):
                content = operation.get("requestBody", {}).get("content", {})
                assert "application/json" in content, f"{where} has no JSON request schema"


def test_served_document_matches_the_committed_copy(api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    served = response.json()
    assert served["openapi"].startswith("3.")
    committed = json.loads(COMMITTED.read_text())
    assert served == committed, f"the API changed: regenerate with `{REGENERATE}` and review the diff"


def test_browsable_ui_is_served(api):
    response = api.get("/docs")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_docs_ui_assets_are_served_locally(api):
    page = api.get("/docs").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    asset = api.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert b"".join(asset.streaming_content if asset.streaming else [asset.content])[:10]
