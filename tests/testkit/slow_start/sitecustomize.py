"""Makes chosen runtime processes start slowly, for tests that need a model to stay loading.

Put this folder on a child's PYTHONPATH and set LLMSERVER_TEST_SLOW_START="NAME:SECONDS": every
`python -m llmserver_runtime serve` whose command line names NAME sleeps SECONDS before it imports
anything, so "still loading" lasts a known time however fast the machine is. Other processes
(the gateway, `llmserver up` itself, other models' runtimes) are untouched."""

import os
import sys
import time


def _slow_start() -> None:
    name, _, seconds = os.environ.get("LLMSERVER_TEST_SLOW_START", "").partition(":")
    argv = getattr(sys, "orig_argv", [])
    if name and "llmserver_runtime" in argv and "serve" in argv and name in argv:
        time.sleep(float(seconds or 5))


_slow_start()
