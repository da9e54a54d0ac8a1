"""Stop strings: never emit any part of one, across arbitrary splits of the text."""

from __future__ import annotations

import pytest
from llmserver_runtime.server import stops


def _run(stop: tuple[str, ...], pieces: list[str]) -> tuple[str, bool]:
    matcher = stops.StopMatcher(stop)
    out = ""
    for piece in pieces:
        text, stopped = matcher.feed(piece)
        out += text
        if stopped:
            return out, True
    return out + matcher.flush(), False


@pytest.mark.parametrize("split", [1, 2, 3, 5, 100])
def test_stop_string_split_across_pieces_is_cut(split: int) -> None:
    text = "hello world END tail"
    pieces = [text[i : i + split] for i in range(0, len(text), split)]
    assert _run(("END",), pieces) == ("hello world ", True)


def test_partial_match_that_does_not_complete_is_released() -> None:
    assert _run(("ENDX",), ["a EN", "D b"]) == ("a END b", False)


def test_held_back_text_is_not_emitted_early() -> None:
    matcher = stops.StopMatcher(("###",))
    assert matcher.feed("abc#") == ("abc", False)
    assert matcher.feed("#") == ("", False)
    assert matcher.feed("x") == ("##x", False)


def test_earliest_of_several_stops_wins() -> None:
    assert _run(("world", "lo"), ["hello world"]) == ("hel", True)


def test_no_stops_passes_everything_through() -> None:
    matcher = stops.StopMatcher(())
    assert matcher.feed("abc") == ("abc", False)
    assert matcher.flush() == ""
