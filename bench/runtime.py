"""Runtime benchmark on the tiny GGUF: raw llama_cpp in-process vs `python -m llama_cpp.server`
vs our `llmserver-runtime serve --backend llama-cpp`, all in one run.

    ~/.cache/llmserver/venv/bin/python bench/runtime.py [--samples 24] [--threads 1]

Work is identical everywhere: the same GGUF, greedy decoding (temperature 0, repeat penalty 1),
the same prompt and max_tokens, the same llama.cpp thread count. Measured per system:
  tokens/s  non-streaming completions (each system's own reported completion tokens / wall time),
            sequential (one client) and concurrent (several clients at once; both servers run one
            request at a time on one llama context, so this shows queueing overhead, not batching)
  TTFT      streaming completions: time to the first chunk carrying text (raw: to the first
            token out of `Llama.generate`), sequential and concurrent (median)
raw is the engine's own token loop (`Llama.generate` + detokenize) in this process: the ceiling
for any server. Systems are interleaved request by request (order rotated each sample), so on a
machine whose background load swings from second to second every system sees the same load;
tokens/s is total tokens over total time across all samples.
The last line is `ours/raw=R1 ours/llama_cpp_server=R2`: R1 compares sequential tokens/s (raw has
no concurrent mode), R2 concurrent tokens/s (the server-to-server case).

Loopback only; both servers are started here and killed at the end; every loop is bounded in
count and time. On a shared 2-core machine the client and servers compete for CPU (one llama.cpp
thread is the default: llama.cpp's spinning thread barrier collapses when its threads outnumber
free cores), so compare ratios from one run, never absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator

import aiohttp

REPO = pathlib.Path(__file__).resolve().parents[1]
PROMPT = "Hello"
MAX_TOKENS = 256
TTFT_TOKENS = 8
CLIENTS = 4
MODEL = "tiny"
PHASE_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO / d) for d in ("backends", "runtime-image", "crds", "operator")]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def tiny_gguf(out: pathlib.Path) -> str:
    """Generate the tiny GGUF with the project's own generator; returns its path."""
    result = subprocess.run(
        [sys.executable, "-m", "llmserver_runtime", "tiny-model", "--kind", "gguf", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def server(argv: list[str], port: int, log: pathlib.Path, ready_path: str) -> Iterator[str]:
    """A server process on loopback, ready within 120 s, killed on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[2]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url + ready_path, timeout=1) as response:
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[2]} not ready after 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _body(max_tokens: int, stream: bool) -> dict[str, object]:
    return {
        "model": MODEL,
        "prompt": PROMPT,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "repeat_penalty": 1.0,
        "stream": stream,
    }


async def _complete(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(url + "/v1/completions", json=_body(MAX_TOKENS, False)) as response:
        response.raise_for_status()
        return int((await response.json())["usage"]["completion_tokens"])


async def _ttft(session: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    first: float | None = None
    async with session.post(url + "/v1/completions", json=_body(TTFT_TOKENS, True)) as response:
        response.raise_for_status()
        async for raw in response.content:
            line = raw.strip()
            if first is None and line.startswith(b"data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("text"):
                    first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("the stream carried no text")
    return first


class Server:
    """One OpenAI-compatible server."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def tokens(self) -> tuple[int, float]:
        started = time.perf_counter()
        return await _complete(self.session, self.url), time.perf_counter() - started

    async def ttft(self) -> float:
        return await _ttft(self.session, self.url)


class Raw:
    """The engine's own loop in this process: Llama.generate + detokenize, greedy."""

    def __init__(self, llm: object) -> None:
        import llama_cpp

        self.llm = llm
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)  # type: ignore[attr-defined]
        self.is_eog = llama_cpp.llama_vocab_is_eog

    def _run(self, max_tokens: int) -> tuple[int, float, float]:
        llm = self.llm
        started = time.perf_counter()
        first = 0.0
        tokens = llm.tokenize(PROMPT.encode(), add_bos=True, special=True)  # type: ignore[attr-defined]
        produced = 0
        for token in llm.generate(tokens, top_k=0, min_p=0.0, temp=0.0, repeat_penalty=1.0):  # type: ignore[attr-defined]
            if self.is_eog(self.vocab, token):
                break
            produced += 1
            llm.detokenize([token])  # type: ignore[attr-defined]
            if produced == 1:
                first = time.perf_counter() - started
            if produced >= max_tokens:
                break
        return produced, time.perf_counter() - started, first

    async def tokens(self) -> tuple[int, float]:
        produced, elapsed, _ = self._run(MAX_TOKENS)
        return produced, elapsed

    async def ttft(self) -> float:
        return self._run(TTFT_TOKENS)[2]


@dataclasses.dataclass
class Tally:
    """One system's measurements."""

    seq_tokens: int = 0
    seq_seconds: float = 0.0
    conc_tokens: int = 0
    conc_seconds: float = 0.0
    seq_ttft: list[float] = dataclasses.field(default_factory=list)
    conc_ttft: list[float] = dataclasses.field(default_factory=list)

    def row(self) -> dict[str, float]:
        nan = float("nan")
        return {
            "seq_tps": self.seq_tokens / self.seq_seconds if self.seq_seconds else nan,
            "conc_tps": self.conc_tokens / self.conc_seconds if self.conc_seconds else nan,
            "seq_ttft": statistics.median(self.seq_ttft) if self.seq_ttft else nan,
            "conc_ttft": statistics.median(self.conc_ttft) if self.conc_ttft else nan,
        }


async def measure(llm: object, urls: dict[str, str], samples: int) -> dict[str, Tally]:
    """Interleave single measurements of every system, rotating the order each sample."""
    timeout = aiohttp.ClientTimeout(total=PHASE_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        systems: dict[str, Raw | Server] = {"raw": Raw(llm), **{n: Server(u, session) for n, u in urls.items()}}
        for system in systems.values():  # warm-up: the same prefix-cache state everywhere
            await system.tokens()
            await system.ttft()
        tallies = {name: Tally() for name in systems}
        names = list(systems)
        deadline = time.monotonic() + 10 * PHASE_TIMEOUT
        for sample in range(samples):
            if time.monotonic() > deadline:
                break
            order = names[sample % len(names) :] + names[: sample % len(names)]
            for name in order:
                system, tally = systems[name], tallies[name]
                tokens, seconds = await system.tokens()
                tally.seq_tokens += tokens
                tally.seq_seconds += seconds
                tally.seq_ttft.append(await system.ttft())
                if isinstance(system, Server):
                    started = time.perf_counter()
                    results = await asyncio.gather(*(system.tokens() for _ in range(CLIENTS)))
                    tally.conc_seconds += time.perf_counter() - started
                    tally.conc_tokens += sum(tokens for tokens, _ in results)
                    tally.conc_ttft.extend(await asyncio.gather(*(system.ttft() for _ in range(CLIENTS))))
    return tallies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=24, help="interleaved samples per system")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads for every system")
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args()

    import llama_cpp

    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        work = pathlib.Path(tmp)
        model = tiny_gguf(work / "model")
        threads, n_ctx = str(args.threads), str(args.n_ctx)
        theirs_port, ours_port = _free_port(), _free_port()
        theirs_argv = [sys.executable, "-m", "llama_cpp.server", "--model", model, "--model_alias", MODEL]
        theirs_argv += ["--host", "127.0.0.1", "--port", str(theirs_port), "--n_ctx", n_ctx, "--verbose", "false"]
        theirs_argv += ["--n_threads", threads, "--n_threads_batch", threads]
        theirs_argv += ["--interrupt_requests", "false"]  # its default cuts a running stream for a new request
        ours_argv = [sys.executable, "-m", "llmserver_runtime", "serve", "--backend", "llama-cpp", "--model", model]
        ours_argv += ["--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(ours_port), "--n-ctx", n_ctx]
        ours_argv += ["--n-threads", threads, "--log-level", "warning", "--", f"n_threads_batch={threads}"]
        llm = llama_cpp.Llama(
            model_path=model, n_ctx=args.n_ctx, n_threads=args.threads, n_threads_batch=args.threads, verbose=False
        )
        with (
            server(theirs_argv, theirs_port, work / "theirs.log", "/v1/models") as theirs,
            server(ours_argv, ours_port, work / "ours.log", "/ready") as ours,
        ):
            tallies = asyncio.run(measure(llm, {"llama_cpp.server": theirs, "ours": ours}, args.samples))
        llm.close()

    print(
        f"tiny GGUF, prompt {PROMPT!r}, greedy, max_tokens {MAX_TOKENS}, {args.threads} llama.cpp thread(s), "
        f"{args.samples} interleaved samples; concurrent = {CLIENTS} clients"
    )
    print(f"{'system':18} {'seq tok/s':>10} {'conc tok/s':>11} {'seq TTFT ms':>12} {'conc TTFT ms':>13}")
    summary: dict[str, dict[str, float]] = {}
    for name, tally in tallies.items():
        row = summary[name] = tally.row()
        print(
            f"{name:18} {row['seq_tps']:10.0f} {row['conc_tps']:11.0f} "
            f"{row['seq_ttft'] * 1000:12.2f} {row['conc_ttft'] * 1000:13.2f}"
        )
    r1 = summary["ours"]["seq_tps"] / summary["raw"]["seq_tps"]
    r2 = summary["ours"]["conc_tps"] / summary["llama_cpp.server"]["conc_tps"]
    print(f"ours/raw={r1:.2f} ours/llama_cpp_server={r2:.2f}")


if __name__ == "__main__":
    main()
