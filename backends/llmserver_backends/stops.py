"""OpenAI stop strings over a stream of text increments, shared by the server and the backends.

The runtime server applies them to every backend's stream, so a client never sees any part of a
stop string whichever engine runs; the mlx backends also apply them inside the worker thread, so
generation ends at the stop (the engine is free sooner and usage counts no tokens beyond it).
Text that might be the start of a stop string is held back until it is known not to be.
Pure: no engine, no I/O, which is why the runtime may import it without any backend's extras.
"""

from __future__ import annotations


class StopMatcher:
    """Feed text increments; get back what is safe to emit and whether a stop string ended it."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(stop for stop in stops if stop)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text to emit now, True when a stop string was found; nothing after it is emitted)."""
        if not self.stops:
            return text, False
        buffer = self._held + text
        hits = [at for at in (buffer.find(stop) for stop in self.stops) if at != -1]
        if hits:
            self._held = ""
            return buffer[: min(hits)], True
        # Hold back the longest tail of the buffer that is a proper prefix of some stop string.
        keep = max(
            (size for stop in self.stops for size in range(1, len(stop)) if buffer.endswith(stop[:size])),
            default=0,
        )
        split = len(buffer) - keep
        self._held = buffer[split:]
        return buffer[:split], False

    def flush(self) -> str:
        """What is still held back, once the stream ended without a stop string."""
        held, self._held = self._held, ""
        return held
