"""`llmserver up --demo`: a tiny random-weight GGUF generated offline by the runtime's generator,
served as model `tiny` with the llama-cpp backend. Needs no network and no GPU."""

from __future__ import annotations

import pathlib
import subprocess

import llmserver_api
from llmserver_cli.hosting import argv
from llmserver_cli.local import manifests

DEMO_NAME = "tiny"


class DemoFailed(Exception):
    """The tiny model could not be generated (the message carries the generator's last output)."""


def generate(python: str, cache_dir: pathlib.Path, env: dict[str, str], timeout: float = 300.0) -> pathlib.Path:
    """Runs `llmserver-runtime tiny-model --kind gguf` into the cache; returns the file to serve."""
    out = cache_dir / "demo" / "tiny-gguf"
    out.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            argv.tiny_model(python, "gguf", out),
            capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise DemoFailed(f"tiny-model generation took longer than {timeout:.0f}s") from error
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise DemoFailed(f"tiny-model generation failed (exit {done.returncode}): {tail}")
    path = pathlib.Path(lines[-1])
    if not path.exists():
        raise DemoFailed(f"tiny-model printed {path}, which does not exist")
    return path.absolute()


def manifest(model_file: pathlib.Path) -> manifests.Manifest:
    """The demo's LLMServer: the generated file as a local `source.pvc` (folder + file name)."""
    server = llmserver_api.LLMServer.model_validate(
        {
            "apiVersion": llmserver_api.API_VERSION,
            "kind": "LLMServer",
            "metadata": {"name": DEMO_NAME},
            "spec": {
                "model": DEMO_NAME,
                "mode": "SelfHosted",
                "backend": "llama-cpp",
                "source": {"pvc": {"claimName": str(model_file.parent), "path": model_file.name}},
            },
        }
    )
    return manifests.Manifest(server=server, origin=model_file)
