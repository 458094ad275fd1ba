"""docs/contract holds the wire contract and the reference page it came from,
so the suite runs from a plain clone. Where the design folder lies beside the
checkout (as in CI), the copies must match it."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT.parent / "shared"
COPIES = {
    "docs/contract/API.md": "spec/API.md",
    "docs/contract/reference-page.txt": "seed/000_15967b800adf30e3.txt",
}


@pytest.mark.parametrize("copy,original", COPIES.items())
def test_contract_copy_is_current(copy, original):
    text = (ROOT / copy).read_text()
    assert text.strip(), f"{copy} is empty"
    source = DESIGN / original
    if source.exists():
        assert text == source.read_text(), f"{copy} differs from the design's {original}: copy it again"
