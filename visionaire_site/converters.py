"""Path converters that match loosely so views can answer bad ids with the
contract's JSON errors instead of Django's HTML 404."""


class NodeConverter:
    """Matches any single path segment; `streams.selectors.node_get` parses it
    and answers 400 for a non-number or out-of-range value, 404 for an unknown node."""

    regex = r"[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value) -> str:
        return str(value)


class SegmentConverter(NodeConverter):
    """Any single path segment (stream ids, analytic ids), validated in the view."""
