"""POST /smart-search with type text: trigram + full-text similarity over the
events' names, secondary text, labels and stream name; filters and limits."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from events.search import events_text_search, query_words
from events.services import event_create

from .conftest import ANALYTIC, stream_make

pytestmark = pytest.mark.django_db

LOBBY = "5136c6c0916cd30c"
GATE = "0123456789abcdef"
T0 = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)
T0_MS = 1736928000000


@pytest.fixture
def people(media_root, jpeg):
    """Events as the face analytics store them: search_text = names, labels, stream name."""
    lobby = stream_make(LOBBY, name="Camera Lobby")
    gate = stream_make(GATE, name="Camera Gate")
    rows = [
        (lobby, "John Doe", "Employee", 0),
        (gate, "Jane Doe", "Visitor", 1),
        (lobby, "Jon Snow", "Guard", 2),
        (gate, "Johnny Walker", "Contractor", 3),
        (lobby, "", "", 4),  # an unrecognised face: only its label and the stream name
        (gate, "John Doe", "Employee", 5),
    ]
    events = {}
    for stream, name, secondary, minute in rows:
        event = event_create(
            stream=stream,
            analytic_id=ANALYTIC if minute != 3 else "NFV4-FR",
            timestamp=T0 + timedelta(minutes=minute),
            primary_text=name,
            secondary_text=secondary,
            pipeline_data={},
            image_jpeg=jpeg,
            search_text=" ".join(part for part in (name, secondary, "face", stream.name) if part),
        )
        events[(name or "unknown", stream.stream_id)] = event
    return events


def search(api, query: str, **options):
    response = api.post("/smart-search", {"type": "text", "query": query, **options})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["code"], body["message"]) == (200, "success")
    return body["results"]


def names(results) -> list[str]:
    return [result["primary_text"] for result in results]


def test_result_shape_is_the_contract(api, people, jpeg):
    results = search(api, "John Doe", limit=1, stream_ids=[LOBBY])
    assert results == [
        {
            "stream_id": LOBBY,
            "analytic_id": ANALYTIC,
            "node_num": 0,
            "timestamp_ms": T0_MS,
            "similarity": 1.0,
            "image_jpeg": base64.b64encode(jpeg).decode(),
            "primary_text": "John Doe",
            "secondary_text": "Employee",
        }
    ]


def test_a_typo_finds_john_doe_first(api, people):
    results = search(api, "jon doe")
    assert names(results)[:2] == ["John Doe", "John Doe"]
    assert results[0]["similarity"] > results[2]["similarity"]
    assert set(names(results)) >= {"Jane Doe", "Jon Snow"}  # each shares a word
    assert all(0 <= r["similarity"] <= 1 for r in results)
    assert [r["similarity"] for r in results] == sorted((r["similarity"] for r in results), reverse=True)


def test_one_word_finds_everyone_of_that_name(api, people):
    results = search(api, "Doe")
    assert names(results)[:3] == ["John Doe", "John Doe", "Jane Doe"] or sorted(names(results)[:3]) == [
        "Jane Doe",
        "John Doe",
        "John Doe",
    ]
    assert [r["similarity"] for r in results[:3]] == [1.0, 1.0, 1.0]
    assert "Jon Snow" not in names(results)


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("jhon doe", "John Doe"),  # letters swapped
        ("JOHN", "John Doe"),  # case
        ("doe, john", "John Doe"),  # order and punctuation
        ("Johny Walkr", "Johnny Walker"),  # letters missing
        ("walk", "Johnny Walker"),  # a partial word
        ("contract", "Johnny Walker"),  # a prefix of the secondary text
        ("snow", "Jon Snow"),
    ],
)
def test_typos_and_partial_words(api, people, query, first):
    results = search(api, query)
    assert results and results[0]["primary_text"] == first, results


def test_stream_name_and_labels_are_searched(api, people):
    gate = search(api, "camera gate", limit=1000)
    assert {r["stream_id"] for r in gate[:3]} == {GATE}
    assert gate[0]["similarity"] == 1.0
    unknown = search(api, "face lobby", limit=1000)
    assert {r["stream_id"] for r in unknown[:3]} == {LOBBY}


def test_nothing_similar_finds_nothing(api, people):
    assert search(api, "xylophone") == []
    assert search(api, "!!! ???") == []  # no word at all


def test_limit_and_min_similarity(api, people):
    everyone = search(api, "jon doe", min_similarity=0)
    assert len(everyone) >= 4
    assert len(search(api, "jon doe", limit=2, min_similarity=0)) == 2
    strict = search(api, "jon doe", min_similarity=0.6)
    assert strict and all(r["similarity"] >= 0.6 for r in strict)
    assert len(strict) < len(everyone)
    assert search(api, "John Doe", min_similarity=1) == search(api, "john doe", min_similarity=1)
    assert names(search(api, "John Doe", min_similarity=1)) == ["John Doe", "John Doe"]


def test_filters_hold(api, people):
    assert {r["stream_id"] for r in search(api, "doe", stream_ids=[GATE])} == {GATE}
    assert search(api, "doe", stream_ids=[]) == []
    assert names(search(api, "john", analytic_ids=["NFV4-FR"])) == ["Johnny Walker"]
    assert search(api, "john", analytic_ids=["NOPE"]) == []
    # Inclusive bounds: minute 1 (Jane Doe) to minute 5 (the gate's John Doe).
    window = search(api, "doe", from_ms=T0_MS + 60_000, to_ms=T0_MS + 300_000)
    assert sorted(names(window)) == ["Jane Doe", "John Doe"]
    assert {r["timestamp_ms"] for r in window} == {T0_MS + 60_000, T0_MS + 300_000}
    assert search(api, "doe", from_ms=T0_MS + 60_001, to_ms=T0_MS + 299_999) == []


def test_newest_first_among_equal_scores(api, people):
    results = search(api, "John Doe", min_similarity=1)
    assert [r["timestamp_ms"] for r in results] == [T0_MS + 300_000, T0_MS]


def test_query_words():
    assert query_words("  Jon-DOE, jon  o'neil ") == ["jon", "doe", "o", "neil"]
    assert query_words("a b c d e f g h i j") == list("abcdefgh")
    assert query_words("__ !!") == []


def test_candidates_come_through_the_gin_indexes(people):
    """The plan of a text search on a big table uses both GIN indexes (bitmap scans)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        captured = []

        def explain(execute, sql, params, many, context):
            if "word_similarity(" in sql and "ORDER BY" in sql:
                execute("EXPLAIN " + sql, params, many, context)
                captured.append("\n".join(row[0] for row in context["cursor"].fetchall()))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(explain):
            events_text_search(query="jon doe")
    plan = captured[0]
    assert "event_search_trgm" in plan and "event_search_fts" in plan, plan


def test_common_words_score_but_do_not_bring_candidates(api, people, settings):
    """With at most 2 candidates per word: "camera" (6 events) and "face" (6) are
    common; "walker" (1) brings Johnny Walker in, and the common words still count."""
    settings.SEARCH_TEXT_CANDIDATES = 2
    results = search(api, "walker camera gate", min_similarity=0)
    assert names(results) == ["Johnny Walker"]
    assert results[0]["similarity"] > 0.9  # every word found; not side by side


def test_a_query_of_common_words_ranks_the_newest_matching_events(api, people, settings):
    settings.SEARCH_TEXT_CANDIDATES = 2
    results = search(api, "face camera", min_similarity=0)
    # Only the two newest events that match every word are candidates.
    assert [r["timestamp_ms"] for r in results] == [T0_MS + 300_000, T0_MS + 240_000]
    assert search(api, "camera gate", min_similarity=0, limit=1)[0]["stream_id"] == GATE
