"""The images' own commands, run with chroot into their mounted root filesystems as uid 10001 with
only /tmp writable (containers cannot run here; this is the closest thing): our packages and the
engines import from the image's venv, the cpu image's entrypoint serves tiny models with llama.cpp
and transformers, the operator image's gateway routes the official openai SDK to it, and the
operator image's command reconciles an LLMServer against the Kubernetes API emulator."""

from __future__ import annotations

import pathlib
import shutil
import time
import urllib.error
import urllib.request

import openai
import pytest
from testkit import emulator, fake_cluster, models, ports

pytestmark = [pytest.mark.timeout(3600), pytest.mark.usefixtures("chroot_ok")]

IMPORTS = {
    "operator": "import llmserver_operator.__main__, llmserver_operator.handlers, llmserver_gateway.cli, "
                "llmserver_runtime.download, kopf, kubernetes, aiohttp, importlib.util; "
                "assert importlib.util.find_spec('torch') is None",
    "cpu": "import llmserver_runtime.cli, llmserver_backends.llama_cpp, llmserver_backends.transformers, "
           "llama_cpp, transformers, torch; assert torch.version.cuda is None and not torch.cuda.is_available(); "
           "assert llama_cpp.llama_supports_gpu_offload() is False",
    # No GPU here: torch is a CUDA build that finds no device; llama.cpp's CUDA backend loads (against a
    # stand-in driver, see conftest.make_stand_in_driver) and finds no device either.
    "cuda": "import llmserver_runtime.cli, llmserver_backends.vllm, llmserver_backends.transformers, "
            "llmserver_backends.llama_cpp, vllm, transformers, bitsandbytes, llama_cpp, torch; "
            "assert torch.version.cuda and not torch.cuda.is_available(), torch.version.cuda; "
            "assert llama_cpp.llama_supports_gpu_offload() is False",
}
WHOAMI = ("import os, pwd, sys; print(os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name, sys.prefix, "
          "os.getcwd())")


def _wait_ready(url: str, process, log: pathlib.Path, timeout: float = 180) -> None:
    """Polls `url` until it answers 200 (bounded), failing with the log if the process dies."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"exited {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"{url} not ready:\n{log.read_text(errors='replace')[-4000:]}"
        time.sleep(0.3)


def _copy_model(source: str, tmp: pathlib.Path) -> str:
    """Copies a tiny model into the bound /tmp, readable by uid 10001; returns its path in the image."""
    source_path = pathlib.Path(source)
    target = tmp / "models" / source_path.name
    target.parent.mkdir(mode=0o755)
    if source_path.is_dir():
        shutil.copytree(source_path, target)
    else:
        shutil.copy(source_path, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return f"/tmp/models/{source_path.name}"


def test_python_runs_as_the_image_user_from_the_venv(image) -> None:
    result = image.run(["python", "-c", WHOAMI])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["10001", "10001", "llmserver", "/opt/venv", "/tmp"]


def test_our_packages_and_engines_import(image, stand_in_driver) -> None:
    if image.target != "cuda":
        result = image.run(["python", "-c", IMPORTS[image.target]], timeout=300)
        assert result.returncode == 0, result.stderr[-4000:]
        return
    with image.writable_tmp() as tmp:
        driver = stand_in_driver(image, tmp)
        library_path = f"{driver}:{image.env()['LD_LIBRARY_PATH']}"
        result = image.run(["python", "-c", IMPORTS["cuda"]], timeout=600, LD_LIBRARY_PATH=library_path)
    assert result.returncode == 0, result.stderr[-4000:]


def test_default_command_of_the_cpu_image(images) -> None:
    if "cpu" not in images:
        pytest.skip("cpu image not built (LLMSERVER_IMAGE_TEST_TARGETS)")
    cpu = images["cpu"]
    result = cpu.run(cpu.config["Entrypoint"] + cpu.config["Cmd"])
    assert result.returncode == 0, result.stderr[-4000:]
    assert "--backend" in result.stdout and "--served-model-name" in result.stdout


def test_cpu_image_serves_through_the_operator_image_gateway(images, tmp_path: pathlib.Path) -> None:
    if not {"cpu", "operator"} <= set(images):
        pytest.skip("needs the cpu and operator images (LLMSERVER_IMAGE_TEST_TARGETS)")
    cpu, operator = images["cpu"], images["operator"]
    runtime_port, gateway_port = ports.free_port(), ports.free_port()
    with cpu.writable_tmp() as cpu_tmp, operator.writable_tmp() as gateway_tmp:
        model = _copy_model(models.tiny_model_path("gguf"), cpu_tmp)
        serve = cpu.config["Entrypoint"] + ["serve", "--backend", "llama-cpp", "--model", model, "--served-model-name",
                                            "tiny", "--host", "127.0.0.1", "--port", str(runtime_port)]
        config = gateway_tmp / "gateway.yaml"
        config.write_text(f"models:\n  - name: tiny\n    endpoints:\n      - url: http://127.0.0.1:{runtime_port}\n")
        config.chmod(0o644)
        gateway = ["llmserver-gateway", "--config", "/tmp/gateway.yaml", "--host", "127.0.0.1",
                   "--port", str(gateway_port)]
        with cpu.started(serve, tmp_path / "runtime.log") as runtime, \
                operator.started(gateway, tmp_path / "gateway.log") as gw:
            _wait_ready(f"http://127.0.0.1:{runtime_port}/ready", runtime, tmp_path / "runtime.log")
            _wait_ready(f"http://127.0.0.1:{gateway_port}/health", gw, tmp_path / "gateway.log")
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway_port}/v1", api_key="unused", max_retries=0)
            deadline = time.monotonic() + 60
            while True:  # the gateway reads its config file right after it starts listening
                try:
                    reply = client.chat.completions.create(model="tiny", max_tokens=8, temperature=0,
                                                           messages=[{"role": "user", "content": "hello"}])
                    break
                except openai.NotFoundError:
                    assert time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()[-4000:]
                    time.sleep(0.3)
            assert reply.model == "tiny" and reply.choices[0].message.content
            assert reply.usage.completion_tokens >= 1 and reply.usage.prompt_tokens >= 1
            # greedy: sampled at temperature 1, the tiny random model's first token is an end token
            # about once in 75 requests, and an empty stream proves nothing either way
            stream = client.chat.completions.create(model="tiny", max_tokens=8, stream=True, temperature=0,
                                                    messages=[{"role": "user", "content": "hi"}])
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_cpu_image_serves_transformers(images, tmp_path: pathlib.Path) -> None:
    if "cpu" not in images:
        pytest.skip("cpu image not built (LLMSERVER_IMAGE_TEST_TARGETS)")
    cpu = images["cpu"]
    port = ports.free_port()
    with cpu.writable_tmp() as tmp:
        model = _copy_model(models.tiny_model_path("hf-causal"), tmp)
        serve = cpu.config["Entrypoint"] + ["serve", "--backend", "transformers", "--model", model,
                                            "--served-model-name", "tiny-hf", "--host", "127.0.0.1", "--port", str(port)]
        with cpu.started(serve, tmp_path / "runtime.log", HF_HUB_OFFLINE="1") as runtime:
            _wait_ready(f"http://127.0.0.1:{port}/ready", runtime, tmp_path / "runtime.log")
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
            reply = client.chat.completions.create(model="tiny-hf", max_tokens=6, temperature=0,
                                                   messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content and reply.usage.completion_tokens >= 1


def test_operator_image_reconciles_a_server(images, tmp_path: pathlib.Path) -> None:
    if "operator" not in images:
        pytest.skip("operator image not built (LLMSERVER_IMAGE_TEST_TARGETS)")
    operator = images["operator"]
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube, operator.writable_tmp() as tmp:
        (tmp / "kubeconfig").write_text(pathlib.Path(kube.kubeconfig).read_text())
        (tmp / "kubeconfig").chmod(0o644)
        log = tmp_path / "operator.log"
        with operator.started(operator.config["Cmd"], log, KUBECONFIG="/tmp/kubeconfig",
                              LLMSERVER_OPERATOR_APPLE_ENABLED="false") as process:
            kube.create({"apiVersion": fake_cluster.LLMS, "kind": "LLMServer",
                         "metadata": {"name": "proxied", "namespace": "ml"},
                         "spec": {"model": "gpt", "mode": "Proxy", "proxy": {"url": "https://api.example/v1"}}})

            def phase() -> str | None:
                assert process.poll() is None, log.read_text(errors="replace")[-4000:]
                server = kube.get(fake_cluster.LLMS, "LLMServer", "proxied", "ml") or {}
                return (server.get("status") or {}).get("phase")

            try:
                kube.wait_for(lambda: phase() == "Ready", timeout=120, message="the LLMServer Ready")
            except TimeoutError as exc:  # show what the operator said
                raise AssertionError(f"{exc}\n{log.read_text(errors='replace')[-4000:]}") from None
            process.terminate()
            assert process.wait(60) == 0, log.read_text(errors="replace")[-4000:]
