"""Registered vehicles: the plate analytic checks each plate it reads against
watch lists it does not own.

The registered-vehicles app keeps the lists (vehicles with their plate, owner,
status) and registers its directory when it starts (`registered.directory_set`,
from its AppConfig.ready()); analytics never imports it. `watchlist()` answers
through that directory; without one it is the null watch list: no plate is
registered. `set_watchlist` puts another implementation in its place (tests).

An implementation matches with OCR tolerance (`analytics.plates.matching`: one
confusable or missing character) and says whether the match was exact. It is
called from a stream's thread, once per vehicle pass and list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class WatchlistMatch:
    """The registered vehicle a read plate matched."""

    vehicle_id: str
    name: str  # the owner
    status: str  # free text, e.g. "blacklist" / "whitelist"
    exact: bool  # the read plate equals the registered one (not a tolerated OCR difference)
    plate_number: str = ""  # the registered plate, as registered


class PlateWatchlist(Protocol):
    def match(self, list_name: str, plate: str) -> WatchlistMatch | None:
        """The vehicle of `list_name` whose plate the read `plate` (normalised: upper
        case letters and digits) matches best, or None (also for a list that does not exist)."""
        ...


class NullWatchlist:
    """No list has any vehicle."""

    def match(self, list_name: str, plate: str) -> WatchlistMatch | None:
        return None


NULL_WATCHLIST = NullWatchlist()
_watchlist: PlateWatchlist | None = None


def set_watchlist(impl: PlateWatchlist | None) -> None:
    """Register the watch lists every plate pipeline of this process checks (None: none)."""
    global _watchlist
    _watchlist = impl


class DirectoryWatchlist:
    """The watch lists of the registered-vehicles directory (analytics.plates.registered),
    the one the vehicles app registers: a list that does not exist registers nothing."""

    def __init__(self, directory) -> None:
        self.directory = directory

    def match(self, list_name: str, plate: str) -> WatchlistMatch | None:
        from .registered import VehicleListMissing

        try:
            found = self.directory.match(list_name, plate)
        except VehicleListMissing:
            return None
        if found is None:
            return None
        return WatchlistMatch(
            vehicle_id=str(found.vehicle_id),
            name=found.name,
            status=found.status,
            exact=found.exact,
            plate_number=found.plate_number,
        )


def watchlist() -> PlateWatchlist:
    """The implementation set here (tests), else the registered vehicles' directory,
    else the null watch list."""
    if _watchlist is not None:
        return _watchlist
    from .registered import directory_get

    directory = directory_get()
    return DirectoryWatchlist(directory) if directory is not None else NULL_WATCHLIST
