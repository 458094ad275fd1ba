"""The JSON parser of every API route: DRF's, plus the input rules that hold for
any body (README "API", input rules).

- Nesting deeper than `API_MAX_JSON_DEPTH` arrays/objects answers 400: deeper
  bodies cost recursion in every later step (validation, jsonb encoding), and
  at a few thousand levels Python's json module itself gives up.
- A NUL character (or an unpaired surrogate, which is not Unicode text) in any
  key or string answers 400 naming the field, e.g. `analytic_ids[0]` or
  `metadata.source`: PostgreSQL cannot store either.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from .errors import BadRequest

# NUL, or a lone UTF-16 surrogate (json.loads accepts "\ud800"; UTF-8 cannot encode it).
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def unstorable_text_problem(text: str) -> str | None:
    """Why PostgreSQL would refuse `text`, if it would."""
    if text.isascii():
        # No surrogate in ASCII; `in` is C-speed where the regex took 8 ms on a
        # 0.8 MB base64 image, and isascii() reads a flag, not the string.
        return "must not contain NUL characters" if "\x00" in text else None
    match = _UNSTORABLE_RE.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return "must not contain NUL characters"
    return "must not contain unpaired surrogates (it is not valid Unicode)"


def _child_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def json_input_check(data: Any, *, max_depth: int) -> None:
    """400 when `data` (parsed JSON) is nested deeper than `max_depth` containers
    or holds a string no database column can store; the message names the field.

    Iterative, so checking a deep document cannot itself run out of stack.
    """
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            problem = unstorable_text_problem(value)
            if problem:
                raise BadRequest(f"{path or 'the body'}: {problem}")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > max_depth:
            raise BadRequest(
                f"the JSON body is nested too deeply (more than {max_depth} levels of arrays and objects)"
            )
        # Children are pushed last first, so the first offending one in the document is reported.
        if isinstance(value, dict):
            for key in value:
                problem = unstorable_text_problem(key)
                if problem:
                    raise BadRequest(f"{path or 'the body'}: field names {problem}")
            for key, item in reversed(value.items()):
                stack.append((item, depth + 1, _child_path(path, key)))
        else:
            for index in range(len(value) - 1, -1, -1):
                stack.append((value[index], depth + 1, _child_path(path, index)))


class JsonParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            # json's C decoder recurses once per level and stops near the interpreter's limit.
            raise BadRequest(
                f"the JSON body is nested too deeply (more than {settings.API_MAX_JSON_DEPTH} "
                "levels of arrays and objects)"
            ) from None
        json_input_check(data, max_depth=settings.API_MAX_JSON_DEPTH)
        return data
