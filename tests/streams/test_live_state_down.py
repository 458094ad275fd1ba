"""With Redis unreachable, routes that show live figures say so (503) instead
of guessing a state or failing with a 500."""

import redis

from streams import selectors

UNREACHABLE = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)


def test_stream_detail_says_live_state_is_unavailable(api, make_stream, monkeypatch):
    stream = make_stream()
    monkeypatch.setattr(selectors, "get_redis", lambda: UNREACHABLE)
    response = api.get(f"/streams/0/{stream.stream_id}")
    assert response.status_code == 503
    assert response.json() == {
        "code": 503,
        "message": "redis unavailable",
    }


def test_stream_lists_do_not_need_redis(api, make_stream, monkeypatch):
    make_stream()
    monkeypatch.setattr(selectors, "get_redis", lambda: UNREACHABLE)
    assert api.get("/streams").status_code == 200
