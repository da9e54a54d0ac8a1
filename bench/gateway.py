"""Gateway benchmark: direct vs our gateway vs a bare aiohttp proxy vs the LiteLLM proxy, in front
of one fake upstream.

    ~/.cache/llmserver/venv/bin/python bench/gateway.py [--rounds 3] [--litellm-venv .bench-env]

Loopback only; every process is started here and killed at the end; every load loop is bounded in
count and time. LiteLLM runs from its own virtualenv (created with `pip install 'litellm[proxy]==LITELLM_VERSION'`
on first use, never in the project's venv). Scenarios, each measured on what a shared 2-core
machine can show without saturating itself:
  paced8    the upstream streams 20 tokens 10 ms apart (like a model), 8 concurrent streams (the
            CPU is not the bottleneck): throughput and added time to first byte, gateway vs direct.
            Added TTFB is per request: the upstream stamps when it got the request and when it
            wrote the first chunk (gateway_apps.STAMP_KEY), so a request's own path time is its
            TTFB minus the upstream's time (pacing jitter out); the added time of a gateway
            request is its path time minus the median direct path time of the same round. The
            bare proxy's is printed beside it: what any Python proxy adds on this machine now.
  cpu       the upstream streams 20 chunks at once, 16 concurrent: CPU milliseconds per streamed
            request of the gateway process against a bare aiohttp pass-through proxy written here
            (one client session, bytes copied through: the Python floor for any proxy)
  capacity  the upstream answers at once, plain and 20-chunk streams, 64 concurrent: requests per
            second of one gateway process against LiteLLM's (what one process carries)
The last line is `paced8_gateway/direct=R1 p50_added_ms=X p99_added_ms=Y cpu_gateway/bare=R2
capacity_gateway/litellm=R3` (X, Y: p50 and p99 of the per-request added TTFB at 8 paced streams,
above; R3 the lower of the plain and streaming ratios, nan when LiteLLM could not be installed or
started). The load generator,
upstream and proxies share the CPU: compare ratios from one run, never absolute numbers across
runs; CPU per request is the figure that carries to other machines.
All sides use uvloop when it is installed (the gateway does by default).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import pathlib
import signal
import socket
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import aiohttp
from aiohttp import web

from gateway_apps import STAMP_KEY, bare_proxy_app, upstream_app

REPO = pathlib.Path(__file__).resolve().parents[1]
KEY = "sk-bench-master"
# LiteLLM is installed by name from PyPI, so it is pinned: litellm 1.82.7 and 1.82.8 on PyPI were
# compromised releases (2026-03, a supply-chain attack that stole credentials at install/import).
# 1.82.6 is the last release before them; move the pin only to a release published after the
# maintainers' all-clear, never to "latest".
LITELLM_VERSION = "1.82.6"
CONCURRENCY = 64
PACED_STREAMS = 8
CPU_STREAMS = 16


# ------------------------------------------------------------------------------------ processes
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """A started process; killed by pid (and its process group) at the end."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: pathlib.Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                          start_new_session=True)

    def wait_http(self, url: str, timeout: float, headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready at {url} after {timeout}s")

    def cpu_seconds(self) -> float:
        """User+system CPU of the process and its children so far (Linux /proc)."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in _group_pids(self.popen.pid):
            try:
                fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
        return total

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(10)


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
    return pids


def installed_litellm(venv: pathlib.Path) -> str | None:
    """The litellm version in the bench's venv (None: not installed or unreadable)."""
    probe = [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
    try:
        return subprocess.run(probe, capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None


def ensure_litellm(venv: pathlib.Path) -> pathlib.Path | None:
    """The litellm executable of the bench's own venv at LITELLM_VERSION, installed on first use
    (and reinstalled when the venv holds another version, e.g. one installed before the pin)."""
    exe = venv / "bin" / "litellm"
    if exe.exists() and installed_litellm(venv) == LITELLM_VERSION:
        return exe
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} (never into the project's venv)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
                       check=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(f"could not install litellm: {exc}", flush=True)
        return None
    return exe if exe.exists() else None


# ------------------------------------------------------------------------------------ load
_STAMP = re.compile(rb'"' + STAMP_KEY.encode() + rb'":\s*\[([-+.\deE]+),\s*([-+.\deE]+)\]')


@dataclasses.dataclass
class Result:
    ttfb: list[float]
    latency: list[float]
    errors: int
    elapsed: float
    path: list[float] = dataclasses.field(default_factory=list)  # TTFB less the upstream's own time

    @property
    def rps(self) -> float:
        return len(self.latency) / self.elapsed if self.elapsed else 0.0


async def load(url: str, model: str, stream: bool, total: int, seconds: float, key: str | None,
               concurrency: int = CONCURRENCY) -> Result:
    """`total` requests (or fewer when `seconds` run out) from `concurrency` workers."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = json.dumps({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}).encode()
    ttfb, latency, path = [], [], []
    errors = 0
    started = time.monotonic()  # the clock the upstream stamps with (see gateway_apps.STAMP_KEY)
    deadline = started + seconds
    issued = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal issued, errors
            while issued < total and time.monotonic() < deadline:
                issued += 1
                t0 = time.monotonic()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        first = await resp.content.readany()
                        t1 = time.monotonic()
                        head = first
                        while (more := await resp.content.readany()) and len(head) < 4096 and b"\n\n" not in head:
                            head += more  # the first event whole, for its stamp
                        while more:
                            more = await resp.content.readany()
                        if resp.status != 200 or not first:
                            errors += 1
                            continue
                except (TimeoutError, aiohttp.ClientError):
                    errors += 1
                    continue
                ttfb.append(t1 - t0)
                latency.append(time.monotonic() - t0)
                if (stamp := _STAMP.search(head)) is not None:
                    path.append((t1 - t0) - (float(stamp[2]) - float(stamp[1])))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(ttfb, latency, errors, time.monotonic() - started, path)


def added_ttfb(runs: list[tuple[Result, float]], direct_runs: list[tuple[Result, float]]) -> list[float]:
    """Per request of `runs`: its path time (TTFB less the upstream's own time) less the median
    direct path time of the same round. Percentiles of this, not differences of two percentiles
    (those compare different requests and go negative when direct's tail is the noisier)."""
    out: list[float] = []
    for (result, _), (direct, _) in zip(runs, direct_runs, strict=True):
        if result.path and direct.path:
            floor = statistics.median(direct.path)
            out.extend(p - floor for p in result.path)
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------------------------ main
def start_targets(
    tmp: pathlib.Path, litellm_exe: pathlib.Path | None, started: list[Proc]
) -> dict[str, tuple[Proc, str, str | None]]:
    """Upstream, gateway and LiteLLM processes: name -> (process, chat URL, key). All land in `started`."""
    env = dict(os.environ)
    up_port, gw_port, ll_port = free_port(), free_port(), free_port()
    upstream = Proc("upstream", [sys.executable, str(pathlib.Path(__file__).resolve()), "upstream",
                                 "--port", str(up_port)], env, tmp / "upstream.log")
    started.append(upstream)
    upstream.wait_http(f"http://127.0.0.1:{up_port}/health", 60)
    base = f"http://127.0.0.1:{up_port}"
    (tmp / "gateway.yaml").write_text(json.dumps({
        "models": [{"name": m, "endpoints": [{"url": base}]} for m in ("paced", "instant")],
        "apiKeys": [{"key": KEY}]}))
    gateway = Proc("gateway", [sys.executable, "-m", "llmserver_gateway", "--config",
                               str(tmp / "gateway.yaml"), "--host", "127.0.0.1", "--port", str(gw_port),
                               "--log-level", "warning"], env, tmp / "gateway.log")
    started.append(gateway)
    gateway.wait_http(f"http://127.0.0.1:{gw_port}/ready", 60)
    bare_port = free_port()
    bare = Proc("bare", [sys.executable, str(pathlib.Path(__file__).resolve()), "bare", "--port", str(bare_port),
                         "--upstream", base], env, tmp / "bare.log")
    started.append(bare)
    bare.wait_http(f"http://127.0.0.1:{bare_port}/ready", 60)
    targets = {"direct": (upstream, f"{base}/v1/chat/completions", None),
               "gateway": (gateway, f"http://127.0.0.1:{gw_port}/v1/chat/completions", KEY),
               "bare": (bare, f"http://127.0.0.1:{bare_port}/v1/chat/completions", None)}
    if litellm_exe is not None:
        (tmp / "litellm.yaml").write_text(json.dumps({
            "model_list": [{"model_name": m, "litellm_params": {"model": f"openai/{m}", "api_base": f"{base}/v1",
                                                                "api_key": "unused"}} for m in ("paced", "instant")],
            "litellm_settings": {"telemetry": False, "drop_params": True},
            "general_settings": {"master_key": KEY}}))
        ll_env = {**env, "LITELLM_MASTER_KEY": KEY, "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                  "LITELLM_TELEMETRY": "False", "NO_DOCS": "True"}
        ll_env.pop("PYTHONPATH", None)
        litellm = Proc("litellm", [str(litellm_exe), "--config", str(tmp / "litellm.yaml"), "--host", "127.0.0.1",
                                   "--port", str(ll_port), "--num_workers", "1"], ll_env, tmp / "litellm.log")
        started.append(litellm)
        try:
            litellm.wait_http(f"http://127.0.0.1:{ll_port}/health/liveliness", 180)
            targets["litellm"] = (litellm, f"http://127.0.0.1:{ll_port}/v1/chat/completions", KEY)
        except (RuntimeError, TimeoutError) as exc:
            print(f"LiteLLM did not start, capacity ratio unavailable: {exc}", flush=True)
    return targets


async def _run(targets: dict[str, tuple[Proc, str, str | None]], name: str, scenario: str) -> tuple[Result, float]:
    """One bounded load of `scenario` on one target, with the target process's CPU seconds spent."""
    proc, url, key = targets[name]
    cpu = proc.cpu_seconds()
    if scenario == "paced8":
        result = await load(url, "paced", True, PACED_STREAMS * 25, 30.0, key, PACED_STREAMS)
    elif scenario == "cpu":
        result = await load(url, "instant", True, 4_000, 4.0, key, CPU_STREAMS)
    elif name == "litellm":  # slow: fewer requests, more time
        result = await load(url, "instant", scenario == "stream", 3_000, 20.0, key)
    else:
        result = await load(url, "instant", scenario == "stream", 20_000, 4.0, key)
    return result, proc.cpu_seconds() - cpu


async def measure(targets: dict[str, tuple[Proc, str, str | None]], rounds: int) -> dict[str, dict[str, list]]:
    """Rounds of every scenario, targets interleaved within a round so machine noise hits all alike."""
    out: dict[str, dict[str, list]] = {name: {} for name in targets}
    for _, url, key in targets.values():  # warm-up: connections, caches, lazy imports
        await load(url, "instant", False, 64, 20, key)
        await load(url, "instant", True, 64, 20, key)
    plan = {"paced8": ("direct", "gateway", "bare"), "cpu": ("gateway", "bare"),
            "plain": ("gateway", "litellm"), "stream": ("gateway", "litellm")}
    for scenario, names in plan.items():
        for round_index in range(rounds):
            for name in names:
                if name not in targets or (name == "litellm" and round_index > 0):  # LiteLLM: one round
                    continue
                out[name].setdefault(scenario, []).append(await _run(targets, name, scenario))
    return out


def report(out: dict[str, dict[str, list]]) -> str:
    print(f"{'target':8} {'scenario':8} {'req/s':>9} {'ttfb p50 ms':>12} {'ttfb p99 ms':>12} "
          f"{'lat p50 ms':>11} {'lat p99 ms':>11} {'errors':>7} {'cpu ms/req':>11}")
    summary: dict[tuple[str, str], dict[str, float]] = {}
    for name, scenarios in out.items():
        for scenario, runs in scenarios.items():
            row = {
                "rps": statistics.median(r.rps for r, _ in runs),
                "ttfb50": statistics.median(pct(r.ttfb, 0.50) for r, _ in runs) * 1000,
                "ttfb99": statistics.median(pct(r.ttfb, 0.99) for r, _ in runs) * 1000,
                "lat50": statistics.median(pct(r.latency, 0.50) for r, _ in runs) * 1000,
                "lat99": statistics.median(pct(r.latency, 0.99) for r, _ in runs) * 1000,
                "errors": sum(r.errors for r, _ in runs),
                "cpu": statistics.median(c / max(1, len(r.latency)) for r, c in runs) * 1000,
            }
            summary[(name, scenario)] = row
            print(f"{name:8} {scenario:8} {row['rps']:9.1f} {row['ttfb50']:12.2f} {row['ttfb99']:12.2f} "
                  f"{row['lat50']:11.2f} {row['lat99']:11.2f} {row['errors']:7d} {row['cpu']:11.3f}")
    gw, direct = summary[("gateway", "paced8")], summary[("direct", "paced8")]
    r1 = gw["rps"] / direct["rps"]
    added = {name: added_ttfb(out[name]["paced8"], out["direct"]["paced8"]) for name in ("gateway", "bare", "direct")}
    print("paced8 added TTFB per request, p50/p99 ms: " + ", ".join(
        f"{name} {pct(values, 0.50) * 1000:.2f}/{pct(values, 0.99) * 1000:.2f}" for name, values in added.items())
        + " (direct: its own spread around its median)")
    x, y = pct(added["gateway"], 0.50) * 1000, pct(added["gateway"], 0.99) * 1000
    cpu_gw, cpu_bare = summary[("gateway", "cpu")]["cpu"], summary[("bare", "cpu")]["cpu"]
    print(f"cpu per streamed request: gateway {cpu_gw:.3f} ms, bare aiohttp proxy {cpu_bare:.3f} ms")
    r2 = cpu_gw / cpu_bare if cpu_bare > 0 else float("nan")
    if ("litellm", "plain") in summary and ("litellm", "stream") in summary:
        ratios = [summary[("gateway", s)]["rps"] / max(summary[("litellm", s)]["rps"], 1e-9)
                  for s in ("plain", "stream")]
        print(f"capacity gateway/litellm: plain {ratios[0]:.1f}x, stream {ratios[1]:.1f}x")
        r3 = f"{min(ratios):.1f}"
    else:
        r3 = "nan"
    return (f"paced8_gateway/direct={r1:.3f} p50_added_ms={x:.2f} p99_added_ms={y:.2f} "
            f"cpu_gateway/bare={r2:.2f} capacity_gateway/litellm={r3}")


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop for the fake upstream and the load generator, when installed: both are shared by every
    target, and on a small machine their CPU competes with the proxy being measured."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main() -> None:
    parser = argparse.ArgumentParser(description="gateway benchmark (see module docstring)")
    sub = parser.add_subparsers(dest="cmd")
    up = sub.add_parser("upstream", help="(internal) run the fake upstream")
    up.add_argument("--port", type=int, required=True)
    bare = sub.add_parser("bare", help="(internal) run the bare aiohttp pass-through proxy")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--upstream", required=True)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario for direct and gateway")
    parser.add_argument("--litellm-venv", type=pathlib.Path, default=REPO / ".bench-env")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM (no capacity ratio)")
    args = parser.parse_args()
    if args.cmd == "upstream":
        web.run_app(upstream_app(), host="127.0.0.1", port=args.port, print=None, access_log=None,
                    loop=_event_loop())
        return
    if args.cmd == "bare":
        web.run_app(bare_proxy_app(args.upstream), host="127.0.0.1", port=args.port, print=None, access_log=None,
                    loop=_event_loop())
        return
    exe = None if args.no_litellm else ensure_litellm(args.litellm_venv.resolve())
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        started: list[Proc] = []
        try:
            targets = start_targets(pathlib.Path(tmp), exe, started)
            with asyncio.Runner(loop_factory=_event_loop) as runner:
                out = runner.run(measure(targets, max(1, args.rounds)))
            line = report(out)
        finally:
            for proc in started:
                proc.stop()
    print(line, flush=True)


if __name__ == "__main__":
    main()
