"""Property: whatever the events and however the network cuts the bytes, a spec-following
client decodes exactly the events we encoded, in order — heartbeats ignored, [DONE] last."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent_service.http.sse import DATA_ONLY, NAMED_EVENTS, PING, Framing
from agent_service.protocols.base import Frame
from tests.sse_decoder import SSEDecoder

# JSON values as payload members, text included with newlines, CR, NUL and astral characters.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
payloads = st.dictionaries(st.text(), json_values, max_size=5)
event_names = st.none() | st.sampled_from(
    ["response.output_text.delta", "response.completed", "error", "response.created"]
)
frames = st.lists(st.builds(Frame, payload=payloads, event=event_names), max_size=12)


def encoded(framing: Framing, stream: list[Frame], pings: list[bool]) -> bytes:
    parts = []
    pings = pings + [False] * (len(stream) - len(pings))
    for frame, ping in zip(stream, pings, strict=False):
        if ping:
            parts.append(PING)
        parts.append(framing.encode([frame]))
    parts.append(framing.closing())
    return b"".join(parts)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


@given(
    stream=frames,
    pings=st.lists(st.booleans(), max_size=12),
    cuts=st.lists(st.integers(min_value=0), max_size=40),
    framing=st.sampled_from([DATA_ONLY, NAMED_EVENTS]),
)
def test_frames_round_trip_through_a_spec_decoder(
    stream: list[Frame], pings: list[bool], cuts: list[int], framing: Framing
) -> None:
    data = encoded(framing, stream, pings)
    decoder = SSEDecoder()
    events = [event for piece in split(data, cuts) for event in decoder.feed(piece)]

    expected: list[tuple[str, Any]] = [
        ((frame.event or "message") if framing.named_events else "message", frame.payload)
        for frame in stream
    ]
    if framing.done_sentinel:
        assert events[-1].data == "[DONE]"
        events = events[:-1]
    assert [(event.event, event.json()) for event in events] == expected
    assert decoder.comments.count("ping") == sum(pings[: len(stream)])


@given(text=st.text())
def test_one_event_is_one_data_line(text: str) -> None:
    # JSON escapes newlines, so a payload never splits into several `data:` lines.
    data = DATA_ONLY.encode([Frame({"delta": text})])
    assert data.startswith(b"data: ")
    assert data.endswith(b"\n\n")
    assert data.count(b"\n") == 2
    assert b"\r" not in data
