"""`llmserver inspect REPO_OR_PATH`: what `backend: auto` would decide for a model, and why.

A local path (a model directory or one GGUF file) is listed and its config files read; anything
else is taken as a Hugging Face repo and asked of the Hub through huggingface-hub (file list and
tags from `model_info`, then only the small config files detection reads; token from HF_TOKEN).
The decision itself is `llmserver_api.detection`, the same code the operator and the runtime run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import click
from llmserver_api import detection

from llmserver_operator import hub

EXIT_UNDECIDED = 3  # click uses 2 for usage errors


def _report(model: detection.ModelFiles, results: dict[detection.Hardware, detection.Detection], origin: str) -> str:
    found = detection.profile(model)
    lines = [
        f"Model:        {model.name} ({origin})",
        f"Saw:          {found.seen}",
        f"Format:       {found.format.value}",
        f"Capabilities: {', '.join(c.value for c in found.capabilities) or '(none found)'}",
    ]
    if found.model_file:
        lines.append(f"Model file:   {found.model_file}")
    if found.reasons:
        lines.append(f"Why:          {'; '.join(found.reasons)}")
    if found.problems:
        lines.append(f"Cannot decide: {'; '.join(found.problems)}")
    lines.append("Backend by hardware:")
    for hardware, result in results.items():
        backend = result.backend.value if result.backend else "cannot decide"
        why = result.reasons[-1] if result.decided else "; ".join(result.problems)
        lines.append(f"  {hardware.value:<6} {backend:<14} {why}")
    warnings = sorted({warning for result in results.values() for warning in result.warnings})
    lines += ["Warnings:"] + [f"  - {warning}" for warning in warnings] if warnings else []
    return "\n".join(lines)


def _as_json(model: detection.ModelFiles, results: dict[detection.Hardware, detection.Detection]) -> str:
    found = next(iter(results.values()))
    return json.dumps({
        "model": model.name,
        "format": found.format.value,
        "capabilities": [c.value for c in found.capabilities],
        "modelFile": found.model_file,
        "seen": found.seen,
        "backends": {
            hardware.value: {
                "backend": result.backend.value if result.backend else None,
                "reason": result.reason,
                "warnings": list(result.warnings),
            }
            for hardware, result in results.items()
        },
    }, indent=2)


@click.command(name="inspect")
@click.argument("repo_or_path")
@click.option("--file", "file", help="The one file to serve (a GGUF quantisation), as in spec.source.huggingFace.file.")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit of a Hub repo.")
@click.option("--hardware", type=click.Choice([h.value for h in detection.Hardware]),
              help="Decide only for this hardware [default: gpu, cpu and apple].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def command(repo_or_path: str, file: str | None, revision: str, hardware: str | None, as_json: bool) -> None:
    """Show what `backend: auto` decides for REPO_OR_PATH: format, capabilities, backend per
    hardware, and why. Exits 3 when it cannot decide (for --hardware, or for every hardware)."""
    path = pathlib.Path(repo_or_path).expanduser()
    if path.exists():
        model, origin = detection.local_model_files(path), "local path"
        if file:
            model = dataclasses.replace(model, selected_file=file)
    elif repo_or_path.startswith((".", "/", "~")) or repo_or_path.count("/") != 1:
        raise click.BadParameter(f"{repo_or_path} is neither an existing path nor a Hub repo id (owner/name)",
                                 param_hint="REPO_OR_PATH")
    else:
        token = os.environ.get("HF_TOKEN") or None
        try:
            model = hub.hub_model_files(repo_or_path, revision, token, file)
        except hub.HubError as error:
            raise click.ClickException(str(error)) from None
        origin = f"Hugging Face Hub, revision {revision}"
    targets = [detection.Hardware(hardware)] if hardware else list(detection.Hardware)
    found = detection.profile(model)
    results = {target: detection.choose_backend(found, target) for target in targets}
    click.echo(_as_json(model, results) if as_json else _report(model, results, origin))
    if not any(result.decided for result in results.values()):
        raise SystemExit(EXIT_UNDECIDED)
