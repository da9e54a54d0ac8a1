"""The cuda image's recipe in runtime-image/Dockerfile, checked without building (building it takes
long and ~50 GB of disk; tests/integration/images checks a built one): vLLM pinned, llama.cpp compiled
with CUDA for a stated set of GPU architectures that a build argument changes, nvcc and compilers only
in the stage that compiles llama.cpp, and the loader path that lets llama.cpp find the CUDA libraries
of the NVIDIA wheels in the final image."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import sys

# The Dockerfile parser of test_dockerfile.py (tests are imported in importlib mode: no sibling imports).
_spec = importlib.util.spec_from_file_location("dockerfile_structure", pathlib.Path(__file__).with_name("test_dockerfile.py"))
_structure = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(_structure)
ARGS, STAGES, Stage = _structure.ARGS, _structure.STAGES, _structure.Stage

COMPILE = "builder-llama-cpp-cuda"
TOOLKIT_WORDS = ("nvcc", "cuda-toolkit", "CUDACXX", "/opt/cuda", "GGML_CUDA")


def _args(stage: Stage) -> dict[str, str]:
    return {name: value.strip('"') for name, _, value in (arg.partition("=") for arg in stage.all("ARG"))}


def test_llama_cpp_is_compiled_with_cuda_for_the_architectures_build_argument() -> None:
    stage = STAGES[COMPILE]
    architectures = _args(stage)["CUDA_ARCHITECTURES"].split(";")
    # CMake's syntax: 80, 80-real (GPU code only), 80-virtual (PTX only), 100a / 120f (arch-specific).
    for arch in architectures:
        match = re.fullmatch(r"(\d+)[af]?(-real|-virtual)?", arch)
        assert match, f"not a CMAKE_CUDA_ARCHITECTURES entry: {arch}"
        assert int(match.group(1)) >= 75, f"CUDA 13 builds nothing below 75: {arch}"
    assert any(not arch.endswith("-real") for arch in architectures), "no PTX: newer GPUs could not run it"
    build = " ".join(stage.all("RUN"))
    assert "-DGGML_CUDA=ON" in build
    assert "-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}" in build
    assert "-DGGML_NATIVE=OFF" in build, "the build machine's CPU must not decide the image's code"
    # pip's wheel cache is keyed by the sdist alone: a cached CPU build must not stand in (and this
    # build must not be cached for the cpu image).
    wheel = next(run for run in stage.all("RUN") if "pip wheel" in run)
    assert "--no-cache-dir" in wheel and "--no-binary llama-cpp-python" in wheel
    assert "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" in wheel


def test_the_toolkit_matches_the_cuda_of_the_final_image() -> None:
    toolkit = _args(STAGES[COMPILE])["CUDA_TOOLKIT_VERSION"]
    major = toolkit.split(".")[0]
    final_env = " ".join(STAGES["cuda"].all("ENV"))
    library_path = re.search(r"LD_LIBRARY_PATH=(\S+)", final_env)
    assert library_path, "the cuda image must put the NVIDIA wheels' libraries on the loader path"
    python = re.search(r"python:(\d+\.\d+)", ARGS["PYTHON_IMAGE"]).group(1)
    for folder in library_path.group(1).split(":"):
        assert folder.startswith(f"/opt/venv/lib/python{python}/site-packages/nvidia/"), folder
    assert f"/nvidia/cu{major}/lib" in library_path.group(1), f"toolkit {toolkit} vs loader path {library_path.group(1)}"


def test_nvcc_and_compilers_stay_in_the_compile_stage() -> None:
    for name, stage in STAGES.items():
        if name == COMPILE:
            continue
        text = " ".join(arg for _, arg in stage.instructions if not arg.startswith("pip uninstall"))
        found = [word for word in TOOLKIT_WORDS if word in text]
        assert not found, f"{name} mentions {found}: the CUDA toolkit belongs to {COMPILE} only"
    cuda_builder = STAGES["builder-cuda"]
    from_compile = [arg for arg in cuda_builder.all("COPY") if arg.startswith(f"--from={COMPILE} ")]
    assert from_compile == [f"--from={COMPILE} /wheels /wheels"], "only the built wheel may leave the compile stage"
    assert not any("apt-get" in run for run in cuda_builder.all("RUN")), "builder-cuda needs no system packages"


def test_vllm_is_pinned_and_llama_cpp_cannot_move_its_dependencies() -> None:
    builder = STAGES["builder-cuda"]
    version = _args(builder)["VLLM_VERSION"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    runs = builder.all("RUN")
    assert any('"vllm==${VLLM_VERSION}"' in run for run in runs)
    llama = next(run for run in runs if "/wheels/llama_cpp_python-" in run)
    assert "pip list --format=freeze" in llama and "--constraint" in llama, "torch/vLLM versions must stay as vLLM pinned them"


def test_final_cuda_stage_carries_the_runtime_pieces() -> None:
    runs = " ".join(STAGES["cuda"].all("RUN"))
    assert "libgomp1" in runs, "llama.cpp's CPU backend needs the OpenMP runtime"
    env = " ".join(STAGES["cuda"].all("ENV"))
    assert "NVIDIA_VISIBLE_DEVICES=all" in env and "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in env


def test_the_cuda_compile_does_not_depend_on_the_project_files() -> None:
    """The compile takes long: a change to pyproject.toml or our code must not start it again."""
    stage = STAGES[COMPILE]
    chain = [stage.name]
    while STAGES[chain[-1]].base in STAGES:
        chain.append(STAGES[chain[-1]].base)
    copies = [arg for name in chain for arg in STAGES[name].all("COPY")]
    assert not copies, f"{COMPILE} (through {chain}) copies {copies}: every project change would recompile llama.cpp"


def test_vllm_s_nvcc_and_ninja_do_not_stay() -> None:
    """vLLM's dependencies install nvcc and ninja (run-time kernel compiles need a host compiler too,
    which the image lacks): the builder removes them before its venv is copied."""
    runs = STAGES["builder-cuda"].all("RUN")
    removal = [i for i, run in enumerate(runs) if "pip uninstall -y nvidia-cuda-nvcc ninja" in run]
    installs = [i for i, run in enumerate(runs) if "pip install" in run and "--no-deps" not in run]
    assert removal and removal[0] > max(installs), "nvcc/ninja must be removed after every dependency install"
