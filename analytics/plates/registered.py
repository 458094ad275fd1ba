"""Which vehicles are registered: the plate analytic and text search look plates
up in watch lists they do not own.

The registered-vehicles app (vehicles) keeps the lists and registers its
directory when it starts (`directory_set`, from vehicles/apps.py); analytics
never imports it. Without a registered directory no plate is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


class VehicleListMissing(Exception):
    """The list a pipeline matches against does not exist (yet)."""


@dataclass(frozen=True)
class VehicleMatch:
    """The registered vehicle a plate reading matched (analytics.plates.matching):
    `kind` says how, `exact` whether the reading is the registered plate as is."""

    vehicle_id: int
    plate_number: str
    name: str
    status: str
    unique_id: str
    kind: Literal["exact", "confusable", "missing"]

    @property
    def exact(self) -> bool:
        return self.kind == "exact"


class VehicleDirectory(Protocol):
    def match(self, list_name: str, plate: str) -> VehicleMatch | None:
        """The registered vehicle of `list_name` that `plate` (as read) matches, or
        None; VehicleListMissing when the list does not exist."""
        ...

    def plate_keys(self, text: str, *, limit: int, min_similarity: float) -> list[tuple[str, float]]:
        """(search key, similarity in [0, 1], at least `min_similarity`) of at most
        `limit` registered plates, of any list, whose owner's name or status
        resembles `text`, most similar first."""
        ...


_directory: VehicleDirectory | None = None


def directory_set(directory: VehicleDirectory | None) -> None:
    """Register the directory every plate pipeline and text search of this process uses."""
    global _directory
    _directory = directory


def directory_get() -> VehicleDirectory | None:
    return _directory
