"""Transformers batching benchmark: aggregate tok/s of `llmserver-runtime serve --backend
transformers` with `--max-batch-size 1` (one request at a time) against the default batched
scheduler, at 1, 4 and 8 concurrent streams, in one run.

    ~/.cache/llmserver/venv/bin/python bench/transformers_batching.py [--rounds 2] [--threads 1] [--max-tokens 64]

The model is the small generated one (`llmserver-runtime tiny-model --kind hf-causal --size small`:
~51M parameters, float32), generated once and cached under ~/.cache/llmserver/bench/. Both servers
are real subprocesses on loopback, started with `OMP_NUM_THREADS` set to `--threads` (docs/tuning.md:
never more torch threads than the cores the runtime has to itself; 1 on a shared 2-core machine).
Work is identical for both: the same prompts (stream i gets prompt i), the same max_tokens, greedy
(temperature 0), the model's end tokens banned by logit_bias so every stream runs to max_tokens.
Requests are streaming completions; tokens are counted from each stream's final usage chunk.
Levels are interleaved (serial then batched, order swapped every round) so both see the same load.
The last line is `batched_c8/serial_c8=R1 batched_c8/batched_c1=R2 serial_c8/serial_c1=R3`.
On a shared machine compare ratios from one run, never absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import aiohttp

import bench_process

REPO = pathlib.Path(__file__).resolve().parents[1]
CACHE = pathlib.Path.home() / ".cache" / "llmserver" / "bench" / "hf-causal-small"
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
LEVELS = (1, 4, 8)
MODEL = "bench"
REQUEST_TIMEOUT = 900.0
READY_TIMEOUT = 300.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO / d) for d in ("backends", "runtime-image", "crds", "operator")]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def small_model(threads: int) -> pathlib.Path:
    """The small hf-causal model, generated on first use (seed 0, so every run gets the same one)."""
    if not (CACHE / "model.safetensors").exists():
        subprocess.run(
            [sys.executable, "-m", "llmserver_runtime", "tiny-model", "--kind", "hf-causal", "--size", "small",
             "--out", str(CACHE)],
            capture_output=True, text=True, timeout=600, env=_env(threads), check=True,
        )  # fmt: skip
    return CACHE


def end_token_ids(model: pathlib.Path) -> list[int]:
    """The ids the backend stops on (generation config's and the tokenizer's end tokens)."""
    ids: set[int] = set()
    for name in ("config.json", "generation_config.json"):
        path = model / name
        value = json.loads(path.read_text()).get("eos_token_id") if path.exists() else None
        ids.update([value] if isinstance(value, int) else value or [])
    eos = json.loads((model / "tokenizer_config.json").read_text()).get("eos_token")
    for token in json.loads((model / "tokenizer.json").read_text()).get("added_tokens", []):
        if token.get("content") == eos:
            ids.add(int(token["id"]))
    return sorted(ids)


@contextlib.contextmanager
def server(model: pathlib.Path, batch_size: int, threads: int, log: pathlib.Path) -> Iterator[str]:
    """`llmserver-runtime serve --backend transformers` on loopback, ready, killed on exit."""
    port = _free_port()
    argv = [sys.executable, "-m", "llmserver_runtime", "serve", "--backend", "transformers", "--model", str(model),
            "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if batch_size:
        argv += ["--max-batch-size", str(batch_size)]
    with bench_process.server(argv, port, log, "/ready", _env(threads), READY_TIMEOUT) as url:
        yield url


class Client:
    """Streaming greedy completions against one server; returns the tokens its usage reports."""

    def __init__(self, url: str, session: aiohttp.ClientSession, max_tokens: int, banned: list[int]) -> None:
        self.url, self.session = url, session
        self.body = {"model": MODEL, "max_tokens": max_tokens, "temperature": 0.0, "stream": True,
                     "stream_options": {"include_usage": True}, "logit_bias": {str(i): -100 for i in banned}}

    async def complete(self, prompt: str) -> int:
        usage = None
        async with self.session.post(self.url + "/v1/completions", json={**self.body, "prompt": prompt}) as response:
            response.raise_for_status()
            async for raw in response.content:
                line = raw.decode().strip()
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[len("data:") :])
                usage = chunk.get("usage") or usage
        if usage is None:
            raise RuntimeError("the stream ended without a usage chunk")
        return int(usage["completion_tokens"])


async def measure(clients: dict[str, Client], rounds: int) -> dict[tuple[str, int], float]:
    """Aggregate tok/s per (server, streams): `streams` requests at once, stream i on prompt i."""
    tokens: dict[tuple[str, int], int] = {}
    seconds: dict[tuple[str, int], float] = {}
    names = list(clients)
    for name in names:  # warm-up: first-request costs stay out of the figures
        await clients[name].complete(PROMPTS[0])
    for round_index in range(rounds):
        for level in LEVELS:
            for name in names[round_index % 2 :] + names[: round_index % 2]:
                prompts = [PROMPTS[i % len(PROMPTS)] for i in range(level)]
                started = time.perf_counter()
                counts = await asyncio.gather(*(clients[name].complete(prompt) for prompt in prompts))
                key = (name, level)
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started
                tokens[key] = tokens.get(key, 0) + sum(counts)
    return {key: tokens[key] / seconds[key] for key in tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the 1/4/8-stream levels")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of both servers")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per stream")
    args = parser.parse_args()
    model = small_model(args.threads)
    banned = end_token_ids(model)
    with tempfile.TemporaryDirectory(prefix="bench-transformers-") as tmp:
        work = pathlib.Path(tmp)
        with (
            server(model, 1, args.threads, work / "serial.log") as serial,
            server(model, 0, args.threads, work / "batched.log") as batched,
        ):

            async def run() -> dict[tuple[str, int], float]:
                timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
                async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=16)) as session:
                    clients = {name: Client(url, session, args.max_tokens, banned)
                               for name, url in (("serial", serial), ("batched", batched))}
                    return await measure(clients, args.rounds)

            rates = asyncio.run(run())
    print(f"small hf-causal (~51M params, float32), OMP_NUM_THREADS={args.threads}, greedy, "
          f"max_tokens {args.max_tokens}, end tokens {banned} banned, {args.rounds} round(s)")
    print("aggregate tok/s at " + "/".join(map(str, LEVELS)) + " concurrent streams:")
    for name, label in (("serial", "maxBatchSize 1"), ("batched", "default batched")):
        print(f"  {label:16} " + " ".join(f"{rates[(name, level)]:8.1f}" for level in LEVELS))
    r1 = rates[("batched", 8)] / rates[("serial", 8)]
    r2 = rates[("batched", 8)] / rates[("batched", 1)]
    r3 = rates[("serial", 8)] / rates[("serial", 1)]
    print(f"batched_c8/serial_c8={r1:.2f} batched_c8/batched_c1={r2:.2f} serial_c8/serial_c1={r3:.2f}")


if __name__ == "__main__":
    main()
