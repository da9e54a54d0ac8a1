"""Runtime benchmark on the tiny GGUF: raw llama_cpp in-process vs `python -m llama_cpp.server`
vs our `llmserver-runtime serve --backend llama-cpp`, all in one run.

    ~/.cache/llmserver/venv/bin/python bench/runtime.py [--rounds 3] [--threads 1]

Work is identical everywhere: the same GGUF, greedy decoding (temperature 0, repeat penalty 1),
the same prompt and max_tokens, the same llama.cpp thread count. Measured per system:
  tokens/s  non-streaming completions (each system's own reported completion tokens / wall time),
            sequential (one client) and concurrent (several clients; both servers run one request
            at a time on one llama context, so this shows queueing overhead, not batching)
  TTFT      streaming completions: time to the first chunk carrying text (raw: to the first
            token out of `Llama.generate`), sequential and concurrent
raw is the engine's own token loop (`Llama.generate` + detokenize) in this process: the ceiling
for any server. Rounds are interleaved (raw, llama_cpp.server, ours) and medians reported.
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
SEQUENTIAL = 6
CLIENTS = 4
PER_CLIENT = 2
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
    """Measurements against one OpenAI-compatible server."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def seq_tps(self) -> float:
        started, tokens = time.perf_counter(), 0
        for _ in range(SEQUENTIAL):
            tokens += await _complete(self.session, self.url)
        return tokens / (time.perf_counter() - started)

    async def conc_tps(self) -> float:
        async def client() -> int:
            return sum([await _complete(self.session, self.url) for _ in range(PER_CLIENT)])

        started = time.perf_counter()
        tokens = sum(await asyncio.gather(*(client() for _ in range(CLIENTS))))
        return tokens / (time.perf_counter() - started)

    async def seq_ttft(self) -> float:
        return statistics.median([await _ttft(self.session, self.url) for _ in range(SEQUENTIAL)])

    async def conc_ttft(self) -> float:
        return statistics.median(await asyncio.gather(*(_ttft(self.session, self.url) for _ in range(CLIENTS))))


class Raw:
    """The engine's own loop in this process: Llama.generate + detokenize, greedy."""

    def __init__(self, llm: object) -> None:
        import llama_cpp

        self.llm = llm
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)  # type: ignore[attr-defined]
        self.is_eog = llama_cpp.llama_vocab_is_eog

    def _run(self, max_tokens: int) -> tuple[int, float]:
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
        return produced, first

    async def seq_tps(self) -> float:
        started = time.perf_counter()
        tokens = sum(self._run(MAX_TOKENS)[0] for _ in range(SEQUENTIAL))
        return tokens / (time.perf_counter() - started)

    async def seq_ttft(self) -> float:
        return statistics.median(self._run(TTFT_TOKENS)[1] for _ in range(SEQUENTIAL))


PHASES = ("seq_tps", "conc_tps", "seq_ttft", "conc_ttft")


async def measure(llm: object, urls: dict[str, str], rounds: int) -> dict[str, dict[str, list[float]]]:
    """Every phase runs on every system back to back (order rotated per round), so each
    comparison is made within seconds, under the same background load."""
    timeout = aiohttp.ClientTimeout(total=PHASE_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        systems: dict[str, Raw | Server] = {
            "raw": Raw(llm),
            **{name: Server(url, session) for name, url in urls.items()},
        }
        for system in systems.values():  # warm-up: the same prefix-cache state everywhere
            await system.seq_ttft()
        results: dict[str, dict[str, list[float]]] = {name: {phase: [] for phase in PHASES} for name in systems}
        names = list(systems)
        for round_ in range(rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for phase in PHASES:
                for name in order:
                    method = getattr(systems[name], phase, None)
                    if method is not None:
                        results[name][phase].append(await method())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads for every system")
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args()

    import llama_cpp

    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        work = pathlib.Path(tmp)
        model = tiny_gguf(work / "model")
        threads, n_ctx = str(args.threads), str(args.n_ctx)
        theirs_port, ours_port = _free_port(), _free_port()
        theirs_argv = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            model,
            "--model_alias",
            MODEL,
            "--host",
            "127.0.0.1",
            "--port",
            str(theirs_port),
            "--n_ctx",
            n_ctx,
            "--n_threads",
            threads,
            "--n_threads_batch",
            threads,
            "--verbose",
            "false",
            "--interrupt_requests",
            "false",  # its default cuts a running stream when another request comes
        ]
        ours_argv = [
            sys.executable,
            "-m",
            "llmserver_runtime",
            "serve",
            "--backend",
            "llama-cpp",
            "--model",
            model,
            "--served-model-name",
            MODEL,
            "--host",
            "127.0.0.1",
            "--port",
            str(ours_port),
            "--n-ctx",
            n_ctx,
            "--n-threads",
            threads,
            "--log-level",
            "warning",
            "--",
            f"n_threads_batch={threads}",
        ]
        llm = llama_cpp.Llama(
            model_path=model, n_ctx=args.n_ctx, n_threads=args.threads, n_threads_batch=args.threads, verbose=False
        )
        with (
            server(theirs_argv, theirs_port, work / "theirs.log", "/v1/models") as theirs,
            server(ours_argv, ours_port, work / "ours.log", "/ready") as ours,
        ):
            results = asyncio.run(measure(llm, {"llama_cpp.server": theirs, "ours": ours}, args.rounds))
        llm.close()

    print(
        f"tiny GGUF, prompt {PROMPT!r}, greedy, max_tokens {MAX_TOKENS}, {args.threads} llama.cpp thread(s), "
        f"{args.rounds} rounds (medians); concurrent = {CLIENTS} clients"
    )
    print(f"{'system':18} {'seq tok/s':>10} {'conc tok/s':>11} {'seq TTFT ms':>12} {'conc TTFT ms':>13}")
    summary: dict[str, dict[str, float]] = {}
    for name, phases in results.items():
        row = {phase: statistics.median(values) if values else float("nan") for phase, values in phases.items()}
        summary[name] = row
        print(
            f"{name:18} {row['seq_tps']:10.0f} {row['conc_tps']:11.0f} "
            f"{row['seq_ttft'] * 1000:12.2f} {row['conc_ttft'] * 1000:13.2f}"
        )
    r1 = summary["ours"]["seq_tps"] / summary["raw"]["seq_tps"]
    r2 = summary["ours"]["conc_tps"] / summary["llama_cpp.server"]["conc_tps"]
    print(f"ours/raw={r1:.2f} ours/llama_cpp_server={r2:.2f}")


if __name__ == "__main__":
    main()
