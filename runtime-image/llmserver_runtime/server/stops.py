"""OpenAI stop strings, applied by the server to every backend's text stream.

Text that might be the start of a stop string is held back until it is known not to be, so a
client never sees any part of a stop string, whichever backend runs (engines that stop natively
simply never show one)."""

from __future__ import annotations


class StopMatcher:
    """Feed text increments; get back what is safe to emit and whether a stop string ended it."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._buffer = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text to emit now, True when a stop string was found; nothing after it is emitted)."""
        if not self.stops:
            return text, False
        self._buffer += text
        cut = -1
        for stop in self.stops:
            at = self._buffer.find(stop)
            if at != -1 and (cut == -1 or at < cut):
                cut = at
        if cut != -1:
            out, self._buffer = self._buffer[:cut], ""
            return out, True
        keep = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self._buffer)), keep, -1):
                if self._buffer.endswith(stop[:size]):
                    keep = size
                    break
        split = len(self._buffer) - keep
        out, self._buffer = self._buffer[:split], self._buffer[split:]
        return out, False

    def flush(self) -> str:
        """What is still held back, once the stream ended without a stop string."""
        out, self._buffer = self._buffer, ""
        return out
