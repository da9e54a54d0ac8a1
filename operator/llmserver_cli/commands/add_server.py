"""`llmserver add-server`: create or update an LLMServer from command-line flags, in the cluster or
(with --local) in the local set `llmserver up` serves.

The flags are turned into the wire object and validated by the API's own pydantic model (the
same rules the CRD's CEL enforces); an error names the *flags* involved, not the spec fields.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from typing import Any

import click
import pydantic
import rich.console
import yaml

import llmserver_api
from llmserver_api import rules
from llmserver_cli import cluster
from llmserver_cli.commands import add_local, source_arg

# spec field (wire path) -> the flag that sets it; longest paths are matched first
FIELD_FLAGS: dict[str, str] = {
    "metadata.name": "--name",
    "spec.model": "--model",
    "spec.mode": "--mode",
    "spec.backend": "--backend",
    "spec.replicas": "--replicas",
    "spec.capabilities": "--capability",
    "spec.source.huggingFace.repo": "--model-path",
    "spec.source.huggingFace.file": "--file",
    "spec.source.huggingFace.revision": "--revision",
    "spec.source.huggingFace.tokenSecretRef": "--token-secret",
    "spec.source.pvc.claimName": "--model-path",
    "spec.source.pvc.path": "--model-path",
    "spec.source.pvc": "--model-path",
    "spec.source.huggingFace": "--model-path",
    "spec.source.s3.endpoint": "--endpoint",
    "spec.source.s3.region": "--region",
    "spec.source.s3.credentialsSecretRef": "--s3-secret",
    "spec.source.s3": "--model-path",
    "spec.source.url": "--model-path",
    "spec.adapters.source.s3.endpoint": "--endpoint",
    "spec.adapters.source.s3.region": "--region",
    "spec.adapters.source.s3.credentialsSecretRef": "--s3-secret",
    "spec.adapters": "--adapter",
    "spec.source": "--model-path",
    "spec.llamaCpp.nGpuLayers": "--gpu-layers",
    "spec.llamaCpp": "--gpu-layers",
    "spec.transformers.loadIn4bit": "--load-in-4bit",
    "spec.transformers.loadIn8bit": "--load-in-8bit",
    "spec.transformers": "--load-in-4bit/--load-in-8bit",
    "spec.vllm.tensorParallelSize": "--tensor-parallel",
    "spec.vllm": "--tensor-parallel",
    "spec.resources.gpus": "--gpus",
    "spec.proxy.url": "--proxy-url",
    "spec.proxy.upstreamModel": "--upstream-model",
    "spec.proxy.apiKeySecretRef": "--api-key-secret",
    "spec.proxy": "--proxy-url",
    "spec.trustRemoteCode": "--trust-remote-code",
}

# The API's cross-field rules, said in flags (rules without an entry are translated field by field).
RULE_MESSAGES: dict[str, str] = {
    "proxy-requires-proxy-block": "--mode proxy needs --proxy-url",
    "proxy-forbids-source": "--model-path cannot be used with --mode proxy (the provider hosts the model)",
    "selfhosted-requires-source": f"--mode self-hosted needs --model-path ({source_arg.FORMS})",
    "selfhosted-forbids-proxy": "--proxy-url / --api-key-secret / --upstream-model need --mode proxy, not self-hosted",
    "proxy-requests-no-gpus": "--gpus cannot be used with --mode proxy (no pods run)",
    "mlx-requests-no-gpus": "--gpus cannot be used with --backend mlx or mlx-vlm (they run on Macs)",
    "tensor-parallel-within-gpus": "--tensor-parallel cannot exceed --gpus",
    "llamaCpp-needs-backend-llama-cpp": "--gpu-layers needs --backend llama-cpp (or auto)",
    "vllm-needs-backend-vllm": "--tensor-parallel needs --backend vllm (or auto)",
    "transformers-needs-backend-transformers": "--load-in-4bit / --load-in-8bit need --backend transformers (or auto)",
    "quantization-exclusive": "--load-in-4bit and --load-in-8bit are mutually exclusive",
    "adapters-selfhosted-only": "--adapter cannot be used with --mode proxy (the provider hosts the model)",
    "adapter-names-unique": "--adapter names an adapter twice: each NAME must be unique",
}
_ALL_RULES = rules.SPEC_RULES + rules.SOURCE_RULES + rules.TRANSFORMERS_RULES + rules.ROOT_RULES
_MODES = {"self-hosted": "SelfHosted", "proxy": "Proxy"}


@dataclasses.dataclass
class Flags:
    """The add-server flags, as given (None: not given)."""

    name: str
    model: str
    mode: str | None = None
    model_path: str | None = None
    file: str | None = None
    revision: str | None = None
    token_secret: str | None = None
    backend: str | None = None
    gpu_layers: int | None = None
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    tensor_parallel: int | None = None
    gpus: int | None = None
    replicas: int | None = None
    capabilities: tuple[str, ...] = ()
    proxy_url: str | None = None
    upstream_model: str | None = None
    api_key_secret: str | None = None
    trust_remote_code: bool = False
    adapters: tuple[str, ...] = ()
    endpoint: str | None = None
    region: str | None = None
    s3_secret: str | None = None
    local: bool = False  # local paths are sources (the local set), not only cluster sources


class FlagError(click.UsageError):
    """Flags that contradict each other or break the API's rules (exit status 2)."""


def _secret_ref(value: str, flag: str) -> dict[str, str]:
    name, _, key = value.partition(":")
    if not name:
        raise FlagError(f"{flag} takes SECRET[:KEY], got {value!r}")
    return {"name": name, "key": key or "api-key"}


def _s3_options(flags: Flags) -> source_arg.S3Options:
    return source_arg.S3Options(endpoint=flags.endpoint, region=flags.region, secret=flags.s3_secret)


def _read_source(flags: Flags, value: str) -> dict[str, Any]:
    try:
        if flags.local and source_arg.is_local(value):
            return source_arg.local(value, "--model-path")
        return source_arg.parse(value, "--model-path", _s3_options(flags))
    except source_arg.SourceError as error:
        raise FlagError(str(error)) from None


def _source(flags: Flags) -> dict[str, Any] | None:
    hub_flags = flags.file or flags.revision or flags.token_secret
    if flags.model_path is None:
        if hub_flags:
            raise FlagError("--file / --revision / --token-secret need --model-path")
        return None
    source = _read_source(flags, flags.model_path)
    hugging_face = source.get("huggingFace")
    if hugging_face is None:
        if hub_flags:
            kind = next(iter(source))
            raise FlagError(f"--file / --revision / --token-secret apply to Hugging Face sources, not a {kind} --model-path")
        return source
    if flags.file:
        if "file" in hugging_face:
            raise FlagError("--model-path OWNER/NAME/FILE already names the file: drop --file")
        hugging_face["file"] = flags.file
    if flags.revision:
        hugging_face["revision"] = flags.revision
    if flags.token_secret:
        hugging_face["tokenSecretRef"] = _secret_ref(flags.token_secret, "--token-secret")
    return source


def _adapters(flags: Flags) -> list[dict[str, Any]]:
    try:
        return [source_arg.adapter(value, "--adapter", _s3_options(flags), flags.local) for value in flags.adapters]
    except source_arg.SourceError as error:
        raise FlagError(str(error)) from None


def _check_s3_flags(spec: dict[str, Any], flags: Flags) -> None:
    sources = [spec.get("source") or {}, *(adapter["source"] for adapter in spec.get("adapters", []))]
    if (flags.endpoint or flags.region or flags.s3_secret) and not any("s3" in source for source in sources):
        raise FlagError("--endpoint / --region / --s3-secret apply to s3:// sources (--model-path or --adapter)")


def _spec(flags: Flags) -> dict[str, Any]:
    mode = flags.mode or ("proxy" if flags.proxy_url else "self-hosted")
    spec: dict[str, Any] = {"model": flags.model, "mode": _MODES[mode], "backend": flags.backend or "auto"}
    source = _source(flags)
    if source is not None:
        spec["source"] = source
    if flags.adapters:
        spec["adapters"] = _adapters(flags)
    _check_s3_flags(spec, flags)
    if flags.capabilities:
        spec["capabilities"] = list(flags.capabilities)
    if flags.replicas is not None:
        spec["replicas"] = flags.replicas
    if flags.gpus is not None:
        spec["resources"] = {"gpus": flags.gpus}
    if flags.gpu_layers is not None:
        spec["llamaCpp"] = {"nGpuLayers": flags.gpu_layers}
    if flags.load_in_4bit or flags.load_in_8bit:
        spec["transformers"] = {"loadIn4bit": flags.load_in_4bit, "loadIn8bit": flags.load_in_8bit}
    if flags.tensor_parallel is not None:
        spec["vllm"] = {"tensorParallelSize": flags.tensor_parallel}
    if flags.trust_remote_code:
        spec["trustRemoteCode"] = True
    if flags.proxy_url or flags.upstream_model or flags.api_key_secret:
        proxy: dict[str, Any] = {}
        for key, value in (("url", flags.proxy_url), ("upstreamModel", flags.upstream_model)):
            if value:
                proxy[key] = value
        if flags.api_key_secret:
            proxy["apiKeySecretRef"] = _secret_ref(flags.api_key_secret, "--api-key-secret")
        spec["proxy"] = proxy
    return spec


def build(flags: Flags, namespace: str | None = None) -> llmserver_api.LLMServer:
    """The LLMServer the flags describe; raises FlagError naming the offending flags."""
    metadata: dict[str, Any] = {"name": flags.name}
    if namespace:
        metadata["namespace"] = namespace
    wire = {"apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer", "metadata": metadata, "spec": _spec(flags)}
    try:
        return llmserver_api.LLMServer.model_validate(wire)
    except pydantic.ValidationError as error:
        raise FlagError("; ".join(translate(error))) from None


def _flag_for(path: str) -> str | None:
    for field in sorted(FIELD_FLAGS, key=len, reverse=True):
        if path == field or path.startswith(field + "."):
            return FIELD_FLAGS[field]
    return None


def translate(error: pydantic.ValidationError) -> list[str]:
    """The validation errors with spec fields replaced by the flags that set them."""
    messages: list[str] = []
    for item in error.errors():
        text = str(item["msg"]).removeprefix("Value error, ")
        broken = [rule for rule in _ALL_RULES if rule.message in text]
        if broken:
            messages.extend(RULE_MESSAGES.get(rule.name) or _rewrite(rule.message) for rule in broken)
            continue
        path = ".".join(str(part) for part in item["loc"] if not isinstance(part, int))
        flag = _flag_for(path)
        messages.append(f"{flag or path}: {_rewrite(text)}")
    return list(dict.fromkeys(messages))


def _rewrite(text: str) -> str:
    """Replaces `spec.x.y` / `metadata.name` mentions in an API message with flag names."""
    return re.sub(r"\b(?:spec|metadata)(?:\.[A-Za-z0-9]+)+", lambda m: _flag_for(m.group(0)) or m.group(0), text)


def print_object(obj: dict[str, Any], output: str) -> None:
    """The object as YAML or JSON on stdout (--dry-run)."""
    if output == "json":
        click.echo(json.dumps(obj, indent=2))
    else:
        click.echo(yaml.safe_dump(obj, sort_keys=False), nl=False)


@click.command("add-server")
@click.argument("server_name", metavar="[NAME]", required=False)
@click.option("--name", help="metadata.name of the LLMServer (a DNS label: names its Service); or give NAME "
              "[with --local default: from the --model-path file name].")
@click.option("--model", help="Model name clients send in requests (spec.model) [required; with --local default: NAME].")
@click.option("--mode", type=click.Choice(sorted(_MODES)), help="self-hosted (run an engine) or proxy [default: proxy if --proxy-url, else self-hosted].")
@click.option("--model-path", metavar="SOURCE", help=f"{source_arg.FORMS}; with --local also a local file or folder.")
@click.option("--file", help="Only this file of the repo (e.g. one GGUF quantisation).")
@click.option("--revision", help="Branch, tag or commit of the repo [default: main].")
@click.option("--token-secret", metavar="SECRET[:KEY]", help="Secret with a Hugging Face token (key defaults to api-key).")
@click.option("--adapter", "adapters", multiple=True, metavar="NAME=SOURCE",
              help="A LoRA adapter served as MODEL:NAME (repeatable); SOURCE as for --model-path.")
@click.option("--endpoint", help="s3:// sources: endpoint URL of an S3-compatible store [default: AWS].")
@click.option("--region", help="s3:// sources: region of the bucket.")
@click.option("--s3-secret", metavar="SECRET", help="s3:// sources: Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.")
@click.option("--backend", type=click.Choice([b.value for b in llmserver_api.Backend]), help="Inference engine [default: auto].")
@click.option("--gpu-layers", type=int, help="llama-cpp: layers offloaded to GPU (-1: all).")
@click.option("--load-in-4bit", is_flag=True, help="transformers: 4-bit bitsandbytes quantisation.")
@click.option("--load-in-8bit", is_flag=True, help="transformers: 8-bit bitsandbytes quantisation.")
@click.option("--tensor-parallel", type=int, help="vLLM: GPUs one replica shards over.")
@click.option("--gpus", type=int, help="GPUs per replica.")
@click.option("--replicas", type=int, help="Runtime replicas [default: 1].")
@click.option("--capability", "capabilities", multiple=True, type=click.Choice([c.value for c in llmserver_api.Capability]),
              help="What the model can do (repeatable) [default: detected].")
@click.option("--proxy-url", help="Proxy mode: the provider's OpenAI-compatible base URL (…/v1).")
@click.option("--upstream-model", help="Proxy mode: the model name at the provider [default: --model].")
@click.option("--api-key-secret", metavar="SECRET[:KEY]", help="Proxy mode: Secret with the provider key (key defaults to api-key).")
@click.option("--trust-remote-code", is_flag=True, help="Let the model repository run its own code (transformers, vLLM).")
@click.option("--local", is_flag=True, help="Add it to the local set `llmserver up` serves instead of the cluster.")
@click.option("--state-dir", type=click.Path(path_type=pathlib.Path),
              help="--local: the state dir holding the local set [env LLMSERVER_STATE_DIR].")
@click.option("--dry-run", is_flag=True, help="Print the LLMServer instead of applying it.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True, help="Format for --dry-run and the result.")
@cluster.options
def command(
    target: cluster.Target,
    server_name: str | None,
    state_dir: pathlib.Path | None,
    dry_run: bool,
    output: str,
    **values: Any,
) -> None:
    """Create or update an LLMServer in the current kubeconfig context, or with --local in the
    local set that `llmserver up` serves (a running `up` starts it without a restart).

    \b
    Examples:
      llmserver add-server --name qwen --model qwen2.5-0.5b --backend llama-cpp \\
          --model-path Qwen/Qwen2.5-0.5B-Instruct-GGUF --file qwen2.5-0.5b-instruct-q4_k_m.gguf --gpu-layers -1
      llmserver add-server --name gpt --model gpt-4o-mini --mode proxy \\
          --proxy-url https://api.openai.com/v1 --api-key-secret openai:api-key
      llmserver add-server --local llama --model-path ~/.cache/models/llama-2-7b.Q4_K_M.gguf --backend llama-cpp
      llmserver add-server --name base --model base --model-path Org/Base --adapter sql=Org/sql-lora
    """
    if server_name and values["name"] and server_name != values["name"]:
        raise FlagError(f"NAME {server_name!r} and --name {values['name']!r} differ: give one")
    values["name"] = values["name"] or server_name
    if not values["name"] and values["local"] and values["model_path"]:
        values["name"] = add_local.derived_name(values["model_path"])
    if not values["name"]:
        raise FlagError("give the server's name: NAME or --name")
    if values["local"]:
        values["model"] = values["model"] or values["name"]
        server = build(Flags(**values))
        if dry_run:
            print_object(server.to_wire(), output)
        else:
            add_local.add(server, state_dir)
        return
    if state_dir is not None:
        raise FlagError("--state-dir applies with --local only")
    if not values["model"]:
        raise FlagError("--model is required (the model name clients send)")
    flags = Flags(**values)
    if dry_run:
        print_object(build(flags, target.namespace or "default").to_wire(), output)
        return
    api = cluster.Cluster(target)
    wire = build(flags, api.namespace).to_wire()
    existing = api.get(flags.name)
    console = rich.console.Console(stderr=True, soft_wrap=True)
    if existing is None:
        api.create(wire)
        console.print(f"[green]created[/] LLMServer {api.namespace}/{flags.name}", highlight=False)
        return
    patch = cluster.merge_patch(existing.get("spec", {}), wire["spec"])
    if not patch:
        console.print(f"LLMServer {api.namespace}/{flags.name} unchanged", highlight=False)
        return
    api.patch(flags.name, {"spec": patch})
    console.print(f"[green]updated[/] LLMServer {api.namespace}/{flags.name}", highlight=False)
