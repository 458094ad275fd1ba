"""What Nodeflux's browser client makes of an MJPEG response, by its rules
(spec/ANALYTICS.md, "MJPEG status parts"), for tests to feed real bytes to.

The client reads the response body chunk by chunk (as its fetch reader hands
them over) and byte by byte:

- at a JPEG start marker (FF D8, both bytes in the same chunk) it takes what it
  read since the last picture as the part's headers and its `Content-Length`
  (the last one there) as the picture's size; with a size of 0 no picture
  starts and the bytes go on into the headers;
- a picture is complete at the byte after its last one (that byte is dropped):
  it is drawn, any message overlay is cleared, the headers start afresh;
- when a chunk ends with no picture pending, the headers read so far that carry
  `X-NF-Message-Data` (the last one there, longer than 2 characters) show it
  as a text overlay; a message containing `Stream is stopped` removes the tile.

It reads a header line as `name:value` split at every colon: the value is the
text between the first and the second colon, surrounding blanks included.
Numbers follow JavaScript's rules (`Number(" 12\\r")` is 12).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

SOI = b"\xff\xd8"
STOPPED = "Stream is stopped"


def _header(headers: str, name: str) -> str | None:
    """The client's header lookup: the last line whose text before its first colon
    is exactly `name`; its text up to the next colon."""
    value = None
    for line in headers.split("\n"):
        pair = line.split(":")
        if pair[0] == name:
            value = pair[1] if len(pair) > 1 else None
    return value


def _js_number(value: str | None) -> float:
    if value is None:
        return -1.0  # no Content-Length: the client's initial -1
    text = value.strip()
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        return math.nan


@dataclass
class Tile:
    """One tile of the client: the pictures it drew, its overlay, whether it is gone."""

    headers: str = ""
    content_length: float = -1.0
    image: bytearray | None = None
    bytes_read: int = 0
    pictures: list[bytes] = field(default_factory=list)
    overlay: str | None = None  # the message shown over the picture
    messages: list[str] = field(default_factory=list)  # every overlay shown, in order
    removed: bool = False

    # -- the client's states ----------------------------------------------------------
    def _reading_headers(self) -> bool:
        return self.content_length <= 0 or self.content_length == -1

    def _reading_image(self) -> bool:
        return self.bytes_read < self.content_length

    def _start_of_image(self) -> None:
        self.content_length = _js_number(_header(self.headers, "Content-Length"))
        if self.content_length > 0:
            self.image = bytearray(int(self.content_length))

    def _picture_done(self) -> None:
        if self.image is not None:
            self.pictures.append(bytes(self.image))
        self.image = None
        self.overlay = None  # drawing a picture clears the message
        self.content_length = 0.0
        self.bytes_read = 0
        self.headers = ""

    def _chunk_end(self) -> None:
        if self.bytes_read < self.content_length:
            return  # a picture is pending
        message = _header(self.headers, "X-NF-Message-Data")
        if message is None or len(message) <= 2:
            return
        self.messages.append(message)
        if STOPPED in message:
            self.removed = True
        else:
            self.overlay = message

    # -- input -------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        """One chunk as the client's reader hands it over. Spans without a marker are
        taken at once; each byte is treated as the client treats it."""
        end = len(chunk)
        index = 0
        while index < end:
            if chunk.startswith(SOI, index):
                self._start_of_image()
            following = chunk.find(SOI, index + 1)
            limit = following if following >= 0 else end
            if self._reading_headers():
                self.headers += chunk[index:limit].decode("latin-1")
                index = limit
            elif self._reading_image():
                take = min(limit - index, int(math.ceil(self.content_length)) - self.bytes_read)
                if self.image is not None:
                    self.image[self.bytes_read : self.bytes_read + take] = chunk[index : index + take]
                self.bytes_read += take
                index += take
            else:
                self._picture_done()  # on the byte after the picture, which it drops
                index += 1
        if end:
            self._chunk_end()

    def feed_all(self, chunks: Iterable[bytes]) -> Tile:
        for chunk in chunks:
            self.feed(chunk)
        return self

    # -- for assertions ----------------------------------------------------------------
    def shown(self) -> str | None:
        """The overlay's text as a person reads it."""
        return self.overlay.strip() if self.overlay is not None else None

    def picture_sizes(self) -> list[tuple[int, int]]:
        """(width, height) of each picture drawn; a picture that does not decode fails."""
        sizes = []
        for picture in self.pictures:
            image = cv2.imdecode(np.frombuffer(picture, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None, "the client drew something that is not a JPEG"
            sizes.append((image.shape[1], image.shape[0]))
        return sizes


def client_view(text: str) -> str:
    """`text` as the client shows an X-NF-Message-Data of that text (up to a colon)."""
    return text.split(":")[0].strip()


# --- chunkings ---------------------------------------------------------------------------


def _cuts_allowed(data: bytes) -> Iterator[int]:
    """Positions where a chunk may end: anywhere but inside a JPEG start marker,
    which the client recognizes only within one chunk (a marker cut in two costs
    that picture in the client whatever the server sends)."""
    inside = {position + 1 for position in _find_all(data, SOI)}
    return (position for position in range(1, len(data)) if position not in inside)


def _find_all(data: bytes, needle: bytes) -> Iterator[int]:
    position = data.find(needle)
    while position >= 0:
        yield position
        position = data.find(needle, position + 1)


def byte_chunks(data: bytes) -> list[bytes]:
    """The worst case: a chunk ends after every byte (but inside a marker)."""
    return _split(data, list(_cuts_allowed(data)))


def random_chunks(data: bytes, seed: int, *, largest: int = 700) -> list[bytes]:
    """Chunks of random sizes from 1 to `largest` bytes (never ending inside a marker)."""
    rng = random.Random(seed)
    allowed = set(_cuts_allowed(data))
    cuts, position = [], 0
    while True:
        position += rng.randint(1, largest)
        if position >= len(data):
            break
        if position in allowed:
            cuts.append(position)
    return _split(data, cuts)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
