"""Stop strings (llmserver_backends.stops, used by the runtime server and the mlx backends): never
emit any part of one, across arbitrary splits of the text."""

from __future__ import annotations

import pytest
from llmserver_backends import stops

pytestmark = pytest.mark.timeout(30)


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


@pytest.mark.parametrize(
    "pieces, stop, expected",
    [
        (["Hello wor", "ld. Bye"], ("world",), ("Hello ", True)),  # stop split across pieces
        (["abc", "def"], ("zz",), ("abcdef", False)),  # no stop: everything comes out
        (["ab", "c", "d"], ("cd", "bc"), ("a", True)),  # the earliest stop wins, whatever its order
        (["hello world"], ("world", "lo"), ("hel", True)),
        (["a<", "b>c"], ("<x>",), ("a<b>c", False)),  # a false partial match is released
        (["a EN", "D b"], ("ENDX",), ("a END b", False)),
        (["END"], ("END",), ("", True)),  # stop at the very start
        (["ab", "c"], ("", "c"), ("ab", True)),  # an empty stop string is ignored, not a match at 0
    ],
)
def test_stop_matcher(pieces: list[str], stop: tuple[str, ...], expected: tuple[str, bool]) -> None:
    assert _run(stop, pieces) == expected


def test_held_back_text_is_not_emitted_early() -> None:
    matcher = stops.StopMatcher(("###",))
    assert matcher.feed("abc#") == ("abc", False)
    assert matcher.feed("#") == ("", False)
    assert matcher.feed("x") == ("##x", False)


def test_only_a_possible_prefix_is_held_back() -> None:
    matcher = stops.StopMatcher(("STOP",))
    assert matcher.feed("go ST") == ("go ", False)  # "ST" may start STOP
    assert matcher.feed("ay") == ("STay", False)


def test_the_longest_possible_prefix_of_any_stop_is_held_back() -> None:
    matcher = stops.StopMatcher(("xy", "abcd"))
    assert matcher.feed("zabcx") == ("zabc", False)  # "x" may start "xy"; "abcx" starts nothing
    assert matcher.feed("ab") == ("x", False)  # "ab" may start "abcd"
    assert matcher.flush() == "ab"
    assert matcher.flush() == ""
    # Two prefixes of one stop end the text ("aX" and "aXaX"): the longer is kept.
    assert stops.StopMatcher(("aXaXb",)).feed("zaXaX") == ("z", False)


def test_no_stops_passes_everything_through() -> None:
    matcher = stops.StopMatcher(())
    assert matcher.feed("abc") == ("abc", False)
    assert matcher.flush() == ""
