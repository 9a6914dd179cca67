"""A Server-Sent Events decoder written from the WHATWG specification, for the tests.

Independent of our encoder on purpose: it is the client's view of the wire. It accepts the
stream in arbitrary byte pieces (as a network delivers it) and yields events as they complete.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str
    comments: tuple[str, ...] = ()

    def json(self) -> Any:
        # The standard library, as the OpenAI SDK decodes: exact for every JSON number.
        return json.loads(self.data)


class SSEDecoder:
    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._pending = ""
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self.comments: list[str] = []

    def feed(self, piece: bytes) -> Iterator[SSEEvent]:
        self._pending += self._text.decode(piece)
        while True:
            cut = _line_end(self._pending)
            if cut is None:
                return
            line, rest = cut
            self._pending = rest
            event = self._line(line)
            if event is not None:
                yield event

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._has_data:
                self._event = ""
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data, self._has_data = "", [], False
            return event
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._has_data = True
        return None


def _line_end(text: str) -> tuple[str, str] | None:
    for index, char in enumerate(text):
        if char == "\n":
            return text[:index], text[index + 1 :]
        if char == "\r":
            if index + 1 == len(text):
                return None  # maybe \r\n split across pieces: wait for more
            skip = 2 if text[index + 1] == "\n" else 1
            return text[:index], text[index + skip :]
    return None


def decode(pieces: Iterable[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return [event for piece in pieces for event in decoder.feed(piece)]
