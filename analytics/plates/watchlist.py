"""Registered vehicles: the plate analytic checks each plate it reads against
watch lists it does not own.

The registered-vehicles app keeps the lists (vehicles with their plate, owner,
status) and registers its implementation when it starts (`set_watchlist`, from
its AppConfig.ready()); analytics never imports it. Without one, `watchlist()`
is the null watch list: no plate is registered.

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


def watchlist() -> PlateWatchlist:
    """The registered implementation, or the null one."""
    return _watchlist if _watchlist is not None else NULL_WATCHLIST
