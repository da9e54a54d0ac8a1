"""`llmserver-runtime tiny-model`: writes a tiny random model and prints the path to serve.

Each kind's writer is imported only when chosen, so `--kind gguf` runs in an environment without
torch or transformers (the llama-cpp demo install).
"""

from __future__ import annotations

import importlib
import pathlib

import click

# kind -> module with `write(out_dir: Path, seed: int) -> Path` (the path `serve --model` takes).
WRITERS: dict[str, str] = {
    "gguf": "llmserver_runtime.tiny_models.gguf_model",
    "hf-causal": "llmserver_runtime.tiny_models.hf_causal",
    "hf-rerank": "llmserver_runtime.tiny_models.hf_rerank",
    "hf-vlm": "llmserver_runtime.tiny_models.vlm",
    "hf-lora": "llmserver_runtime.tiny_models.hf_lora",
    "gguf-lora": "llmserver_runtime.tiny_models.gguf_lora",
}
# Kinds whose writer also takes `size` ("tiny" or "small", see `llama.SIZES`).
SIZED_KINDS = ("gguf", "hf-causal")
SIZES = ("tiny", "small")
# Kinds that adapt another tiny model (LoRA adapters): the writer is `write(out_dir, seed, base)`.
BASED_KINDS = ("hf-lora", "gguf-lora")


def generate(
    kind: str, out_dir: pathlib.Path, seed: int = 0, size: str = "tiny", base: pathlib.Path | None = None
) -> pathlib.Path:
    """Writes a tiny model of `kind` into `out_dir`; returns what `serve --model` should load."""
    if kind not in WRITERS:
        raise ValueError(f"unknown tiny model kind {kind!r}; choose one of {', '.join(WRITERS)}")
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
    if size != "tiny" and kind not in SIZED_KINDS:
        raise ValueError(f"--size {size} exists only for {', '.join(SIZED_KINDS)}")
    if (base is not None) != (kind in BASED_KINDS):
        raise ValueError(f"--base is required for {', '.join(BASED_KINDS)} and taken by no other kind")
    writer = importlib.import_module(WRITERS[kind])
    if base is not None:
        return pathlib.Path(writer.write(out_dir, seed, base))
    if kind in SIZED_KINDS:
        return pathlib.Path(writer.write(out_dir, seed, size))
    return pathlib.Path(writer.write(out_dir, seed))


@click.command(name="tiny-model")
@click.option("--kind", type=click.Choice(list(WRITERS)), required=True, help="Which model to write.")
@click.option(
    "--out",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    required=True,
    help="Directory to write into (created if missing).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the random weights.")
@click.option(
    "--size",
    type=click.Choice(SIZES),
    default="tiny",
    show_default=True,
    help="small: ~51M parameters (gguf, hf-causal only), for throughput benches where compute must dominate.",
)
@click.option(
    "--base",
    type=click.Path(exists=True, path_type=pathlib.Path),
    default=None,
    help="The model an adapter kind (hf-lora: its folder, gguf-lora: its GGUF file) is made for.",
)
def command(kind: str, out_dir: pathlib.Path, seed: int, size: str, base: pathlib.Path | None) -> None:
    """Write a tiny random-weight model; the last line printed is the path for `serve --model`."""
    try:
        path = generate(kind, out_dir, seed, size, base)
    except ImportError as exc:
        raise click.ClickException(
            f"--kind {kind} needs the package {exc.name!r}; install the matching llmserver-operator extra"
        ) from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {size} {kind} model (seed {seed})")
    click.echo(str(path.resolve()))
