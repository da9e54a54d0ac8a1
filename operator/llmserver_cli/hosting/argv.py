"""Pure builders of the argv of every child process local mode and the Mac agent start
(docs/contracts.md, "The runtime command line"). Every child is `python -m llmserver_runtime ...`
(or the gateway) with this interpreter: the CLI starts the runtime, it does not import it."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import llmserver_api
from llmserver_operator.builders import adapters as adapter_builders
from llmserver_operator.builders import download as download_builders
from llmserver_operator.builders import engine_args


def serve(
    python: str, server: llmserver_api.LLMServer, model_path: pathlib.Path, host: str, port: int,
    adapters: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """`python -m llmserver_runtime serve ...` for one self-hosted server: the operator's own
    per-backend builder (builders.engine_args), so a manifest runs with the same engine flags
    locally as in a cluster. `adapters` (name, local path) are all loaded at start: a host
    restarts a server whose spec changed, adapters included."""
    args = engine_args.serve_args(server.spec, str(model_path), port, host, adapters=adapters,
                                  engine_extra=adapter_builders.engine_flags(server.spec))  # fmt: skip
    return [python, "-m", "llmserver_runtime", *args]


def download(python: str, server: llmserver_api.LLMServer, cache_dir: pathlib.Path) -> list[str]:
    """`python -m llmserver_runtime download ...` for a huggingFace, s3 or url source, with the
    operator's own source flags (tokens and keys from env: HF_TOKEN, AWS_*)."""
    source = server.spec.source
    if source is None or source.pvc is not None:
        raise ValueError("only a source.huggingFace, s3 or url is downloaded")
    return download_source(python, download_builders.source_args(source), cache_dir)


def download_source(python: str, source_args: list[str], cache_dir: pathlib.Path) -> list[str]:
    """The downloader's command line for the given source flags (--repo/--s3/--url ...)."""
    return [python, "-m", "llmserver_runtime", "download", *source_args, "--cache-dir", str(cache_dir)]


def download_repo(python: str, repo: str, file: str | None, revision: str, cache_dir: pathlib.Path) -> list[str]:
    """The downloader's command line for one repo (and optionally one file of it)."""
    argv = [python, "-m", "llmserver_runtime", "download", "--repo", repo, "--revision", revision]
    if file:
        argv += ["--file", file]
    return argv + ["--cache-dir", str(cache_dir)]


def gateway(python: str, config: pathlib.Path, host: str, port: int) -> list[str]:
    """The gateway in static-config mode: it reloads `config` whenever local mode rewrites it."""
    return [python, "-m", "llmserver_gateway", "--config", str(config), "--host", host, "--port", str(port)]


def tiny_model(python: str, kind: str, out: pathlib.Path) -> list[str]:
    """The offline tiny-model generator; its last stdout line is the path to serve."""
    return [python, "-m", "llmserver_runtime", "tiny-model", "--kind", kind, "--out", str(out)]
