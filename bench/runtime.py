"""Runtime benchmark: our `llmserver-runtime serve --backend llama-cpp` against raw llama.cpp
in-process, `python -m llama_cpp.server` and llama.cpp's own `llama-server --parallel 8`, in one run.

    ~/.cache/llmserver/venv/bin/python bench/runtime.py [--samples 16] [--rounds 2] [--threads 1]

The anchors' extra needs are installed at start by bench/runtime_anchors.py (pinned
starlette-context/sse-starlette for llama_cpp.server in a bench-only folder; llama-server built
once from the llama.cpp sources llama-cpp-python's sdist vendors, cached under
~/.cache/llmserver/bench/). Work is identical everywhere: the same GGUF, greedy decoding
(temperature 0, repeat penalty 1), the same prompts and max_tokens, the same llama.cpp thread count,
and the same generated tokens: "raw" (bench/runtime_raw.py: llama_decode, llama.cpp's greedy sampler
chain and detokenize in this process, nothing else) runs every prompt first, and each request of
every system is checked against its text and counted tokens (the `same a/b/n` columns: a of n
requests gave its text and token count, b its token count: the same count at different text is the
same number of decode steps, though not the same tokens).
Phases:
  overhead     tiny GGUF (a decode step is ~50 µs, so Python dominates): raw vs ours, request by
               request; our added time per token in microseconds
  single       small GGUF (~51M parameters, compute dominates): one stream, raw vs ours vs
               llama_cpp.server vs llama-server, interleaved request by request (order rotated)
  concurrency  small GGUF: aggregate tok/s of ours and llama-server at 1, 4 and 8 concurrent
               streams (non-streaming completions; tokens are each server's reported usage)
The last line is `ours/raw=R1 ours/llama_cpp_server=R2 c8/c1=R3 ours_c8/llama_server_c8=R4
overhead_us_per_token=U`: R1, R2 single-stream tok/s ratios on the small model, R3 our aggregate
tok/s at 8 streams over 1 stream, R4 ours over llama-server at 8 streams, U from the tiny model.
R1, R2 and U are medians over pairs of requests on the same prompt run back to back (U: our
seconds per token minus raw's), so a burst of other work skews one pair, not the figure.
Loopback only; servers are started here and killed at the end; every loop is bounded. On a shared
2-core machine everything competes for CPU (one llama.cpp thread is the default: llama.cpp's
spinning thread barrier collapses when its threads outnumber free cores), so compare ratios from
one run, never absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp

import runtime_anchors
from bench_process import server
import runtime_raw

REPO = pathlib.Path(__file__).resolve().parents[1]
# Prompts the small model does not end at once (a random model may emit <|im_end|> first).
PROMPTS = (
    "Hello",
    "The quick brown fox",
    "What is two plus two?",
    "Once upon a time",
    "The capital of France",
    "Numbers: 1 2 3",
    "def main():",
    "The weather is sunny",
)
TINY_MAX_TOKENS = 256
SMALL_MAX_TOKENS = 64
LEVELS = (1, 4, 8)
MODEL = "bench"
REQUEST_TIMEOUT = 600.0
# Repeat penalty 1 everywhere (llama.cpp servers default to 1.1); each server names the field its way.
OURS_PENALTY = "repetition_penalty"
LLAMA_CPP_PENALTY = "repeat_penalty"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(extra_path: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO / d) for d in ("backends", "runtime-image", "crds", "operator")]
    paths += [extra_path] if extra_path else []
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def generate_gguf(out: pathlib.Path, size: str) -> str:
    """Generate a GGUF with the project's own generator; returns its path."""
    result = subprocess.run(
        [sys.executable, "-m", "llmserver_runtime", "tiny-model", "--kind", "gguf", "--size", size, "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=_env(), check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def ours_argv(model: str, port: int, threads: int) -> list[str]:
    argv = [sys.executable, "-m", "llmserver_runtime", "serve", "--backend", "llama-cpp", "--model", model]
    argv += ["--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port), "--n-ctx", "2048"]
    return argv + ["--n-threads", str(threads), "--log-level", "warning", "--", f"n_threads_batch={threads}"]


def llama_cpp_server_argv(model: str, port: int, threads: int) -> list[str]:
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", model, "--model_alias", MODEL, "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--n_ctx", "2048", "--verbose", "false"]
    argv += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    return argv + ["--interrupt_requests", "false"]  # its default cuts a running stream for a new request


def llama_server_argv(binary: pathlib.Path, model: str, port: int, threads: int) -> list[str]:
    # -c is shared by the slots: 8 x 512 tokens, enough for any prompt here plus max_tokens.
    argv = [str(binary), "-m", model, "--alias", MODEL, "--host", "127.0.0.1", "--port", str(port)]
    return argv + ["--parallel", "8", "-c", "4096", "--threads", str(threads), "--threads-batch", str(threads)]


class Server:
    """One OpenAI-compatible server: non-streaming completions, reported completion tokens."""

    def __init__(self, url: str, session: aiohttp.ClientSession, max_tokens: int, penalty_field: str) -> None:
        self.url, self.session, self.max_tokens = url, session, max_tokens
        self.penalty_field = penalty_field  # ours: repetition_penalty (vLLM's name); llama.cpp's: repeat_penalty

    async def complete(self, prompt: str) -> tuple[int, str]:
        """(completion tokens the server reports, the text)."""
        body = {"model": MODEL, "prompt": prompt, "max_tokens": self.max_tokens, "temperature": 0.0,
                self.penalty_field: 1.0, "stream": False}
        async with self.session.post(self.url + "/v1/completions", json=body) as response:
            response.raise_for_status()
            reply = await response.json()
            return int(reply["usage"]["completion_tokens"]), str(reply["choices"][0]["text"])


class Raw:
    """The engine alone in this process (bench/runtime_raw.py): decode, sample, detokenize."""

    def __init__(self, llm: object, max_tokens: int) -> None:
        self.loop = runtime_raw.RawLoop(llm, max_tokens)

    async def complete(self, prompt: str) -> tuple[int, str]:
        return self.loop.generate(prompt)


Output = tuple[int, str]  # (tokens generated, text) of one request


class Tally:
    """Tokens, seconds and agreement with the raw loop's output per system (and stream count)."""

    def __init__(self, reference: dict[str, Output]) -> None:
        self.reference = reference  # prompt -> the raw loop's counted output
        self.tokens: dict[Any, int] = {}
        self.seconds: dict[Any, float] = {}
        self.same: dict[Any, list[bool]] = {}
        self.same_count: dict[Any, list[bool]] = {}
        self.per_token: dict[Any, list[float]] = {}  # seconds per token of each request, in order

    def add(self, key: Any, outputs: list[tuple[str, Output]], seconds: float) -> None:
        self.tokens[key] = self.tokens.get(key, 0) + sum(count for _, (count, _) in outputs)
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds
        self.same.setdefault(key, []).extend(self.reference.get(p) == out for p, out in outputs)
        self.same_count.setdefault(key, []).extend(self.reference.get(p, (-1,))[0] == out[0] for p, out in outputs)
        self.per_token.setdefault(key, []).append(seconds / max(1, sum(count for _, (count, _) in outputs)))

    def rate(self, key: Any) -> float:
        return self.tokens[key] / self.seconds[key] if self.seconds.get(key) else float("nan")

    def paired(self, a: Any, b: Any) -> list[tuple[float, float]]:
        """Seconds per token of a and b on the same sample (same prompt, run back to back)."""
        return list(zip(self.per_token[a], self.per_token[b], strict=True))

    def speed_ratio(self, a: Any, b: Any) -> float:
        """a's tok/s over b's: the median over samples of the paired ratio (a burst of load from
        other work on this shared machine skews one pair, not the figure)."""
        return statistics.median(tb / ta for ta, tb in self.paired(a, b))

    def added_us(self, a: Any, b: Any) -> float:
        """a's time per token minus b's, in µs: the median over paired samples."""
        return statistics.median(ta - tb for ta, tb in self.paired(a, b)) * 1e6

    def agreement(self, key: Any) -> str:
        """Requests with raw's text and token count / with raw's token count / all requests."""
        return f"{sum(self.same[key])}/{sum(self.same_count[key])}/{len(self.same[key])}"


async def sequential(systems: dict[str, Raw | Server], samples: int) -> Tally:
    """Single-stream tok/s per system, one request each in turn, order rotated every sample; the
    raw loop (first) runs every prompt once first, so each request is checked against its output:
    the same text and token count means the same tokens were generated."""
    raw = systems["raw"]
    tally = Tally({prompt: await raw.complete(prompt) for prompt in PROMPTS})
    names = list(systems)
    for name in names:  # warm-up
        await systems[name].complete(PROMPTS[0])
    for sample in range(samples):
        prompt = PROMPTS[sample % len(PROMPTS)]
        for name in names[sample % len(names) :] + names[: sample % len(names)]:
            started = time.perf_counter()
            output = await systems[name].complete(prompt)
            tally.add(name, [(prompt, output)], time.perf_counter() - started)
    return tally


async def concurrent(systems: dict[str, Server], rounds: int, reference: dict[str, Output]) -> Tally:
    """Aggregate tok/s per (system, streams): `streams` requests at once, stream i on prompt i."""
    tally = Tally(reference)
    names = list(systems)
    for round_index in range(rounds):
        for level in LEVELS:
            for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
                prompts = [PROMPTS[i % len(PROMPTS)] for i in range(level)]
                started = time.perf_counter()
                outputs = await asyncio.gather(*(systems[name].complete(prompt) for prompt in prompts))
                tally.add((name, level), list(zip(prompts, outputs, strict=True)), time.perf_counter() - started)
    return tally


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
                                 connector=aiohttp.TCPConnector(limit=16))


def _llm(model: str, threads: int) -> object:
    import llama_cpp

    return llama_cpp.Llama(model_path=model, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)


def overhead_phase(work: pathlib.Path, threads: int, samples: int) -> Tally:
    """Tiny model: raw vs ours single-stream tok/s."""
    model = generate_gguf(work / "tiny", "tiny")
    port = _free_port()
    llm = _llm(model, threads)
    try:
        with server(ours_argv(model, port, threads), port, work / "ours-tiny.log", "/ready", _env()) as ours:

            async def run() -> Tally:
                async with _session() as session:
                    systems = {"raw": Raw(llm, TINY_MAX_TOKENS),
                               "ours": Server(ours, session, TINY_MAX_TOKENS, OURS_PENALTY)}
                    return await sequential(systems, samples * 8)

            return asyncio.run(run())
    finally:
        llm.close()  # type: ignore[attr-defined]


def small_phases(work: pathlib.Path, threads: int, samples: int, rounds: int,
                 binary: pathlib.Path, extras: str | None) -> tuple[Tally, Tally]:
    """Small model: single-stream tok/s of all four, then the concurrency levels of the two servers."""
    model = generate_gguf(work / "small", "small")
    ports = [_free_port() for _ in range(3)]
    llm = _llm(model, threads)
    try:
        with (
            server(ours_argv(model, ports[0], threads), ports[0], work / "ours.log", "/ready", _env()) as ours,
            server(llama_cpp_server_argv(model, ports[1], threads), ports[1], work / "lcs.log", "/v1/models",
                   _env(extras)) as theirs,
            server(llama_server_argv(binary, model, ports[2], threads), ports[2], work / "ls.log", "/health",
                   _env()) as native,
        ):

            async def run() -> tuple[Tally, Tally]:
                async with _session() as session:
                    servers = {
                        "ours": Server(ours, session, SMALL_MAX_TOKENS, OURS_PENALTY),
                        "llama_cpp.server": Server(theirs, session, SMALL_MAX_TOKENS, LLAMA_CPP_PENALTY),
                        "llama-server": Server(native, session, SMALL_MAX_TOKENS, LLAMA_CPP_PENALTY),
                    }
                    single = await sequential({"raw": Raw(llm, SMALL_MAX_TOKENS), **servers}, samples)
                    pair = {n: servers[n] for n in ("ours", "llama-server")}
                    levels = await concurrent(pair, rounds, single.reference)
                    return single, levels

            return asyncio.run(run())
    finally:
        llm.close()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=16, help="single-stream requests per system (x8 on tiny)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the 1/4/8-stream levels")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads for every system")
    args = parser.parse_args()
    extras = runtime_anchors.server_pythonpath()
    binary = runtime_anchors.llama_server()
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        work = pathlib.Path(tmp)
        tiny = overhead_phase(work, args.threads, args.samples)
        single, levels = small_phases(work, args.threads, args.samples, args.rounds, binary, extras)

    print(f"greedy, {args.threads} llama.cpp thread(s); prompts {len(PROMPTS)} fixed strings; "
          "'same a/b/n': of n requests, a had the raw loop's text and token count for that prompt, b its count")
    print(f"tiny GGUF, max_tokens {TINY_MAX_TOKENS}, single stream: raw {tiny.rate('raw'):.0f} tok/s, "
          f"ours {tiny.rate('ours'):.0f} tok/s (same {tiny.agreement('ours')})")
    print(f"small GGUF (~51M params), max_tokens {SMALL_MAX_TOKENS}, single stream tok/s:")
    for name in single.tokens:
        print(f"  {name:18} {single.rate(name):8.1f}  same {single.agreement(name)}")
    print("small GGUF, aggregate tok/s at " + "/".join(map(str, LEVELS)) + " concurrent streams:")
    for name in ("ours", "llama-server"):
        print(f"  {name:18} " + " ".join(f"{levels.rate((name, level)):8.1f}" for level in LEVELS)
              + "  same " + " ".join(levels.agreement((name, level)) for level in LEVELS))
    if tiny.tokens["ours"] != tiny.tokens["raw"]:
        print(f"WARNING: tiny model token counts differ (raw {tiny.tokens['raw']}, ours {tiny.tokens['ours']})")
    r1 = single.speed_ratio("ours", "raw")
    r2 = single.speed_ratio("ours", "llama_cpp.server")
    r3 = levels.rate(("ours", 8)) / levels.rate(("ours", 1))
    r4 = levels.rate(("ours", 8)) / levels.rate(("llama-server", 8))
    overhead = tiny.added_us("ours", "raw")  # same prompts, same generated tokens (checked above)
    print(f"ours/raw={r1:.2f} ours/llama_cpp_server={r2:.2f} c8/c1={r3:.2f} ours_c8/llama_server_c8={r4:.2f} "
          f"overhead_us_per_token={overhead:.0f}")


if __name__ == "__main__":
    main()
