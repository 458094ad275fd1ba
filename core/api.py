"""Helpers shared by the apps' views: the base view and input checks that
every route applies the same way."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework.views import APIView

from .errors import BadRequest

_NODE_NUM_RE = re.compile(r"-?[0-9]{1,20}")


class ApiView(APIView):
    """Base for the contract's JSON routes: no session auth or CSRF (the optional
    bearer token is checked by middleware), JSON in and out, errors in the
    contract's shape (see core.errors)."""

    authentication_classes: list = []
    permission_classes: list = []


def body_object(request) -> dict[str, Any]:
    """The request body as a JSON object; `{}` for an empty body (a JSON `null` is
    not an empty body: 400)."""
    data = request.data
    if data is None:
        raise BadRequest("request body must be a JSON object, not null")
    if isinstance(data, dict) and not data:  # no body (DRF gives an empty dict or QueryDict)
        return {}
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return dict(data)


def parse_node_num(raw: str) -> int:
    """A node number from the path: 400 when it is not an integer in range."""
    # Decimal ASCII digits only: int() would also take " 1", "+1", "1_0" and other scripts' digits.
    if not isinstance(raw, str) or not _NODE_NUM_RE.fullmatch(raw):
        raise BadRequest(f"invalid node number '{str(raw)[:40]}': it must be an integer")
    number = int(raw)
    if number < 0 or number > settings.MAX_NODE_NUM:
        raise BadRequest(f"invalid node number {raw[:40]}: it must be between 0 and {settings.MAX_NODE_NUM}")
    return number
