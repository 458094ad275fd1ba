"""Smart search over stored events: by text (trigram + full text) and by face
embedding (HNSW), each hit with a similarity in [0, 1], highest first.

Text search. An event's `search_text` holds its names, secondary text, labels
and stream name. The query is cut into words (letters and digits, lowercased,
at most MAX_QUERY_WORDS); an event's similarity is

    0.60 * mean over query words of word_similarity(word, search_text)
  + 0.25 * word_similarity(whole query, search_text)
  + 0.15 * fraction of query words that prefix a word of search_text (full text)

pg_trgm's `word_similarity(a, b)` is the trigram similarity of `a` and the best
matching stretch of `b`, so a typo ("jon" for "john") or a partial word still
scores, and one word ("Doe") scores 1 against "John Doe". The whole-query term
rewards words found together and in order; the full-text term (the `simple`
configuration, prefix queries `word:*`) rewards partial words typed as
prefixes. Every term is in [0, 1] and an exact match of every word scores 1.
Candidates are found through the two GIN indexes (trigram on `search_text`,
`event_search_trgm`; full text on `to_tsvector('simple', search_text)`,
`event_search_fts`): events where a query word has a word similarity of at
least `min_similarity` (pg_trgm's `<%` operator) or prefixes a word. A word
that matches more than SEARCH_TEXT_CANDIDATES events (a stream name, the label
every face event carries) is scored but brings no candidates; when every word
is that common, the newest SEARCH_TEXT_CANDIDATES events matching all of them
are ranked. So a query costs at most a few tens of thousands of scored rows
whatever the table's size. Ties are broken by the full-text rank
(`ts_rank_cd`), then by the newest event.

Plates. A plate event's search text holds the plate's search key
(events.services.search_text_compose; analytics.plates.matching: spacing, case
and the OCR confusions I/1, O/0, B/8, S/5, Z/2, G/6 left out). A query that may
be a plate (`plate_query_key`) is also searched as its key, so `LS15EBC`,
`ls15 ebc` and `LSI5EBC` find the same events, a missing last character still
scoring as a prefix. A query that names the owner of registered vehicles or
their status (analytics.plates.registered: the owner's name by word similarity,
the status as it is) finds the events of their plates, at the similarity of
that match (at most MAX_REGISTERED_KEYS plates; the newest
SEARCH_TEXT_CANDIDATES such events, through the full-text index). An event
found several ways counts once, at its best similarity.

Image search. Embeddings are ranked by pgvector's cosine distance through the
HNSW index `event_embedding_hnsw`; `hnsw.ef_search` (SEARCH_HNSW_EF_SEARCH,
raised to `limit` when that is larger) is set for the query only (SET LOCAL).
With stream, analytic or time filters: when they leave at most
SEARCH_EXACT_SCAN_MAX events, those are compared exactly (their B-tree picks
them); otherwise the index is scanned iteratively (`hnsw.iterative_scan =
relaxed_order`, at most SEARCH_HNSW_MAX_SCAN_TUPLES tuples) so filtered
searches still fill `limit`.
The distance is mapped to a similarity by the capability that embedded the
query (analytics.plugins.ImageSearch; the face engine's mapping for faces).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from analytics.plates.formats import normalise
from analytics.plates.matching import search_key
from analytics.plates.registered import directory_get
from analytics.plugins import NothingToSearch
from analytics.registry import image_searches

from .models import Event
from .selectors import EPOCH, ms_to_datetime

logger = logging.getLogger(__name__)

TABLE = Event._meta.db_table
DEFAULT_LIMIT = 50
DEFAULT_TEXT_MIN_SIMILARITY = 0.3
# Measured for the default face embedder (docs/face-accuracy.md, 1M cross-identity pairs of
# LFW): a stranger's face reaches 0.877 with probability 0.1 % (0.85: 0.75 %; median 0.726),
# the same person's with 92.5 % (median 0.922). Faces of one camera score higher: of 46 pairs
# of strangers photographed together, 13 % reached 0.846 and the highest 0.882.
DEFAULT_IMAGE_MIN_SIMILARITY = 0.877
MAX_QUERY_WORDS = 8
# Most registered plates an owner or status query brings the events of.
MAX_REGISTERED_KEYS = 100
FILTERED_EF_FACTOR = 4
# The exact expression of the full-text GIN index (events/migrations/0002).
TSVECTOR = "to_tsvector('simple'::regconfig, COALESCE(e.search_text, ''))"
_WORD_RE = re.compile(r"[^\W_]+")
_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True)
class SearchFilters:
    stream_ids: Sequence[str] | None = None
    analytic_ids: Sequence[str] | None = None
    from_ms: int | None = None  # inclusive
    to_ms: int | None = None  # inclusive (the whole millisecond)

    @property
    def narrows(self) -> bool:
        values = (self.stream_ids, self.analytic_ids, self.from_ms, self.to_ms)
        return any(value is not None for value in values)

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE fragment (starting with AND, or empty) on the alias `e`."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.stream_ids is not None:
            clauses.append("e.stream_id = ANY(%s)")
            params.append(list(self.stream_ids))
        if self.analytic_ids is not None:
            clauses.append("e.analytic_id = ANY(%s)")
            params.append(list(self.analytic_ids))
        if self.from_ms is not None:
            clauses.append("e.timestamp >= %s")
            params.append(ms_to_datetime(self.from_ms))
        if self.to_ms is not None:
            clauses.append("e.timestamp < %s")
            params.append(ms_to_datetime(self.to_ms + 1))
        return "".join(f" AND {clause}" for clause in clauses), params


@dataclass(frozen=True)
class SearchHit:
    event: Event
    similarity: float
    # Image search: P(something else, e.g. a stranger's face, reaches `similarity`
    # against one event), from the embedder's measured scores; None when unmeasured.
    false_match_probability: float | None = None


def query_words(query: str) -> list[str]:
    """The words a text query is matched by: letters and digits, lowercased, unique."""
    words: list[str] = []
    for word in _WORD_RE.findall(query.lower()):
        if word not in words:
            words.append(word)
    return words[:MAX_QUERY_WORDS]


def _hits(scored: list[tuple[Any, float]]) -> list[SearchHit]:
    """Rows for (event_id, similarity) pairs, in the given order."""
    rows = Event.objects.defer("embedding", "search_text").in_bulk([event_id for event_id, _ in scored])
    return [
        SearchHit(rows[event_id], round(min(1.0, max(0.0, float(score))), 4))
        for event_id, score in scored
        if event_id in rows  # removed meanwhile (retention)
    ]


def _word_condition(word: str) -> tuple[str, list[str]]:
    """Rows a query word matches: a similar word (trigram, `<%`) or a word it prefixes
    (full text); each side answered by its GIN index."""
    return (
        f"(%s <%% e.search_text OR {TSVECTOR} @@ to_tsquery('simple', %s))",
        [word, f"{word}:*"],
    )


def _matches_at_most(cursor, condition: str, params: list, where: str, filter_params: list, cap: int) -> bool:
    cursor.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} e WHERE {condition}{where} LIMIT %s) matching",
        [*params, *filter_params, cap + 1],
    )
    return cursor.fetchone()[0] <= cap


def _text_scores(
    words: list[str], *, filters: SearchFilters, limit: int, min_similarity: float
) -> list[tuple[Any, float]]:
    """(event_id, similarity) of the events whose text resembles the query `words`,
    most similar first (see the module docstring).

    Scoring costs a few microseconds per candidate, so the candidates are kept to
    at most TEXT_CANDIDATES per query word: words matching more events than that
    (a stream name, the label every face event has) still count in the score but
    do not bring candidates in. When every word is that common, the candidates are
    the newest TEXT_CANDIDATES events matching all of them.
    """
    cap = settings.SEARCH_TEXT_CANDIDATES
    where, filter_params = filters.sql()
    conditions = [_word_condition(word) for word in words]
    count = len(words)
    phrase = " ".join(words)
    word_terms = " + ".join("word_similarity(%s, c.search_text)" for _ in words)
    prefix_terms = " + ".join("(v.tsv @@ to_tsquery('simple', %s))::int" for _ in words)
    any_prefix = " | ".join(f"{word}:*" for word in words)
    with transaction.atomic(), connection.cursor() as cursor:
        # `<%` matches at this word similarity or more (index-assisted); low
        # thresholds cost more candidates, so it never goes under 0.1.
        cursor.execute(
            "SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)",
            [str(max(0.1, min_similarity))],
        )
        selective = [
            (condition, params)
            for condition, params in conditions
            if _matches_at_most(cursor, condition, params, where, filter_params, cap)
        ]
        if selective:
            candidate_where = " OR ".join(condition for condition, _ in selective)
            candidate_params = [param for _, params in selective for param in params]
            newest = ""
        else:
            candidate_where = " AND ".join(condition for condition, _ in conditions)
            candidate_params = [param for _, params in conditions for param in params]
            newest = f"ORDER BY e.timestamp DESC LIMIT {int(cap)}"
        cursor.execute(
            f"""
            WITH candidates AS (
                SELECT e.event_id, e.timestamp, e.search_text FROM {TABLE} e
                WHERE ({candidate_where}){where} {newest}
            )
            SELECT event_id, similarity FROM (
                SELECT c.event_id, c.timestamp,
                    0.60 * ({word_terms}) / {count}
                    + 0.25 * word_similarity(%s, c.search_text)
                    + 0.15 * ({prefix_terms}) / {count} AS similarity,
                    ts_rank_cd(v.tsv, to_tsquery('simple', %s)) AS rank
                FROM candidates c
                -- OFFSET 0 keeps the tsvector computed once per row, not once per use.
                CROSS JOIN LATERAL (
                    SELECT to_tsvector('simple'::regconfig, COALESCE(c.search_text, '')) AS tsv OFFSET 0
                ) v
            ) scored
            WHERE similarity >= %s
            ORDER BY similarity DESC, rank DESC, timestamp DESC
            LIMIT %s
            """,
            [
                *candidate_params,
                *filter_params,
                *words,
                phrase,
                *(f"{word}:*" for word in words),
                any_prefix,
                min_similarity,
                limit,
            ],
        )
        return cursor.fetchall()


def plate_query_key(query: str) -> str | None:
    """The plate search key of a query that may be a plate number (one to three
    groups of letters and digits, 2 to 15 of them, at least one digit), lowercased
    as query words are; None for other queries."""
    if len(query.split()) > 3:
        return None
    plate = normalise(query)
    if not 2 <= len(plate) <= 15 or not any(char.isdigit() for char in plate):
        return None
    return search_key(plate).lower()


def _plate_key_scores(keys: list[tuple[str, float]], *, filters: SearchFilters) -> list[tuple[Any, float]]:
    """(event_id, similarity) of the newest events (at most SEARCH_TEXT_CANDIDATES)
    that carry one of these plate search keys, each at its best key's similarity;
    found through the full-text index (the keys are words of letters and digits)."""
    similarity = {key.lower(): score for key, score in keys}
    where, filter_params = filters.sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT e.event_id, e.search_text FROM {TABLE} e "
            f"WHERE {TSVECTOR} @@ to_tsquery('simple', %s){where} ORDER BY e.timestamp DESC LIMIT %s",
            [" | ".join(similarity), *filter_params, settings.SEARCH_TEXT_CANDIDATES],
        )
        rows = cursor.fetchall()
    scored = []
    for event_id, text in rows:
        found = [similarity[word] for word in query_words_all(text) if word in similarity]
        if found:
            scored.append((event_id, max(found)))
    return scored


def query_words_all(text: str) -> set[str]:
    return set(_WORD_RE.findall(text.lower()))


def events_text_search(
    *,
    query: str,
    filters: SearchFilters = SearchFilters(),
    limit: int = DEFAULT_LIMIT,
    min_similarity: float = DEFAULT_TEXT_MIN_SIMILARITY,
) -> list[SearchHit]:
    """Events whose text resembles `query`, most similar first (see the module
    docstring); plate events also by plate number and by the owner or status of
    registered vehicles (see "Plates" there)."""
    words = query_words(query)
    if not words:
        return []
    options = {"filters": filters, "limit": limit, "min_similarity": min_similarity}
    found = [_text_scores(words, **options)]
    key = plate_query_key(query)
    if key is not None and [key] != words:
        found.append(_text_scores([key], **options))
    directory = directory_get()
    if directory is not None:
        keys = directory.plate_keys(query, limit=MAX_REGISTERED_KEYS, min_similarity=min_similarity)
        if keys:
            found.append(_plate_key_scores(keys, filters=filters))
    if len(found) == 1:
        return _hits(found[0])
    best: dict[Any, float] = {}
    for scored in found:
        for event_id, score in scored:
            best[event_id] = max(score, best.get(event_id, 0.0))
    hits = _hits(list(best.items()))
    hits.sort(key=lambda hit: (-hit.similarity, -hit.event.timestamp.timestamp()))
    return hits[:limit]


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{value:.7g}" for value in np.asarray(vector, dtype=np.float32).ravel()) + "]"


def events_nearest(
    *,
    embedding: np.ndarray,
    filters: SearchFilters = SearchFilters(),
    limit: int = DEFAULT_LIMIT,
    ef_search: int | None = None,
) -> list[tuple[Any, float]]:
    """(event_id, cosine distance) of the `limit` events nearest `embedding`,
    nearest first.

    Through the HNSW index (approximate: see SEARCH_HNSW_EF_SEARCH), except when
    the filters leave at most SEARCH_EXACT_SCAN_MAX events: those are compared
    one by one (exact, and as fast: a graph walk must otherwise go deep to find
    a few neighbours among a small share of the rows)."""
    ef_search = min(1000, max(ef_search or settings.SEARCH_HNSW_EF_SEARCH, limit))
    where, filter_params = filters.sql()
    literal = _vector_literal(embedding)
    with transaction.atomic(), connection.cursor() as cursor:
        exact = False
        if filters.narrows:
            cap = settings.SEARCH_EXACT_SCAN_MAX
            cursor.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} e WHERE TRUE{where} LIMIT %s) matching",
                [*filter_params, cap + 1],
            )
            exact = cursor.fetchone()[0] <= cap
        if exact:
            # The HNSW index only answers ordered index scans: with those off, the
            # filter's B-tree (bitmap scan) picks the rows and they are sorted exactly.
            cursor.execute("SET LOCAL enable_indexscan = off")
        else:
            if filters.narrows:
                # The rows passing the filters are fewer among the graph's nearest: a longer
                # candidate list finds more of them (recall under a 10% filter: 0.82 at
                # ef_search 100, 0.89 at 400; bench/README.md).
                ef_search = min(1000, ef_search * FILTERED_EF_FACTOR)
            cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
            if filters.narrows:
                cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
                cursor.execute(
                    "SELECT set_config('hnsw.max_scan_tuples', %s, true)",
                    [str(settings.SEARCH_HNSW_MAX_SCAN_TUPLES)],
                )
        cursor.execute(
            f"SELECT e.event_id, e.embedding <=> %s::vector AS distance FROM {TABLE} e "
            f"WHERE e.embedding IS NOT NULL{where} ORDER BY e.embedding <=> %s::vector LIMIT %s",
            [literal, *filter_params, literal, limit],
        )
        rows = cursor.fetchall()
    # relaxed_order may return neighbours slightly out of order.
    return sorted(rows, key=lambda row: row[1])


def events_embedding_search(
    *,
    embeddings: np.ndarray,
    filters: SearchFilters = SearchFilters(),
    limit: int = DEFAULT_LIMIT,
    min_similarity: float = DEFAULT_IMAGE_MIN_SIMILARITY,
    similarity: Callable[[float], float],
) -> list[SearchHit]:
    """Events nearest any of `embeddings` (one per query face), each event at its
    best similarity (`similarity` maps a cosine distance), most similar first."""
    best: dict[Any, float] = {}
    for embedding in np.atleast_2d(embeddings):
        for event_id, distance in events_nearest(embedding=embedding, filters=filters, limit=limit):
            score = similarity(distance)
            if score >= min_similarity and score > best.get(event_id, -1.0):
                best[event_id] = score
    hits = _hits(list(best.items()))
    hits.sort(key=lambda hit: (-hit.similarity, -hit.event.timestamp.timestamp()))
    return hits[:limit]


def events_image_search(
    *,
    image_bgr: np.ndarray,
    filters: SearchFilters = SearchFilters(),
    limit: int = DEFAULT_LIMIT,
    min_similarity: float = DEFAULT_IMAGE_MIN_SIMILARITY,
) -> list[SearchHit]:
    """Events showing what the query image shows, as the analytics that search by
    image see it (analytics.registry.image_searches: today the face analytics,
    up to SEARCH_MAX_QUERY_FACES faces). NothingToSearch (its message says why)
    when no capability finds anything in the image."""
    queries, refusals = [], []
    for capability in image_searches():
        try:
            queries.append(capability.query_embeddings(image_bgr))
        except NothingToSearch as refusal:
            refusals.append(refusal)
    if not queries:
        raise refusals[0] if refusals else NothingToSearch("no analytic here can search by image")
    hits = [
        dataclasses.replace(
            hit,
            false_match_probability=(
                None if query.false_accept is None else round(float(query.false_accept(hit.similarity)), 6)
            ),
        )
        for query in queries
        for hit in events_embedding_search(
            embeddings=query.vectors,
            filters=filters,
            limit=limit,
            min_similarity=min_similarity,
            similarity=query.similarity,
        )
    ]
    best: dict[Any, SearchHit] = {}
    for hit in hits:  # an event found by several capabilities counts once, at its best
        if hit.event.event_id not in best or hit.similarity > best[hit.event.event_id].similarity:
            best[hit.event.event_id] = hit
    ranked = sorted(best.values(), key=lambda hit: (-hit.similarity, -hit.event.timestamp.timestamp()))
    return ranked[:limit]


def _crop_base64(event: Event) -> str:
    if not event.image:
        return ""
    try:
        with event.image.storage.open(event.image.name, "rb") as handle:
            return base64.b64encode(handle.read()).decode("ascii")
    except OSError:  # removed by retention since the search
        return ""


def search_result_body(hit: SearchHit, *, by_image: bool = False) -> dict[str, Any]:
    """One result of POST /smart-search, as the contract shapes it; an image
    search's results add `false_match_probability` (ours)."""
    event = hit.event
    body = {
        "stream_id": event.stream_id,
        "analytic_id": event.analytic_id,
        "node_num": event.node_num,
        "timestamp_ms": (event.timestamp - EPOCH) // _MILLISECOND,
        "similarity": hit.similarity,
        "image_jpeg": _crop_base64(event),
        "primary_text": event.primary_text,
        "secondary_text": event.secondary_text,
    }
    if by_image:
        body["false_match_probability"] = hit.false_match_probability
    return body
