"""Every failure answers {"code", "message"} with the same HTTP status."""

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, message: str):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"code": status, "message": message}


def test_unknown_path_is_json_404(api):
    assert_error(api.get("/no/such/route"), 404, "not found")


def test_trailing_slash_is_not_an_alias(api):
    assert_error(api.get("/streams/"), 404, "not found")


def test_wrong_method_is_405(api):
    assert_error(api.delete("/streams"), 405, "method DELETE not allowed")


def test_malformed_json_is_400_naming_the_problem(api):
    response = api.post("/streams/0", "{not json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == 400
    assert body["message"].startswith("malformed JSON body")


def test_json_array_where_an_object_is_expected(api):
    assert_error(api.put("/config/database", "[1, 2]"), 400, "request body must be a JSON object")


def test_oversized_body_is_413_before_it_is_read(api, settings):
    settings.API_MAX_BODY_BYTES = 2048
    payload = json.dumps({"stream_address": "rtsp://cam/1", "stream_name": "x" * 5000})
    response = api.post("/streams/0", payload)
    assert_error(response, 413, f"request body is too large ({len(payload)} bytes, limit 2048)")


@pytest.mark.urls("tests.site.boom_urls")
def test_server_error_has_a_request_id_and_no_traceback():
    client = Client(raise_request_exception=False)
    response = client.get("/boom", HTTP_X_REQUEST_ID="req-123")
    assert_error(response, 500, "internal server error (request id req-123)")
    assert response["X-Request-Id"] == "req-123"
    assert b"secret internal detail" not in response.content


class TestTokens:
    @pytest.fixture(autouse=True)
    def tokens(self, settings):
        settings.API_TOKENS = ["t0ken-a", "t0ken-b"]

    def test_missing_token(self, api):
        assert_error(api.get("/streams"), 401, "missing API token: send 'Authorization: Bearer <token>'")

    def test_wrong_token(self, api):
        assert_error(api.get("/streams", HTTP_AUTHORIZATION="Bearer nope"), 401, "invalid API token")

    def test_any_configured_token_works(self, api):
        assert api.get("/streams", HTTP_AUTHORIZATION="Bearer t0ken-b").status_code == 200

    def test_query_token_only_on_media_routes(self, api):
        assert_error(
            api.get("/streams?token=t0ken-a"), 401, "missing API token: send 'Authorization: Bearer <token>'"
        )
        response = api.get("/stream_jpeg/0/0123456789abcdef?token=t0ken-a")
        assert response.status_code == 404  # past auth: the stream does not exist
        assert response.json() == {"code": 404, "message": "stream not found"}

    def test_root_and_metrics_open_by_default(self, api):
        assert api.get("/").status_code == 200
        assert api.get("/metrics").status_code == 200

    def test_root_and_metrics_can_be_closed(self, api, settings):
        settings.API_OPEN_ROOT = False
        settings.API_OPEN_METRICS = False
        assert api.get("/").status_code == 401
        assert api.get("/metrics").status_code == 401
