"""The cuda image, opened like the others (tests/integration/images/conftest.py; the checks every image
gets run on it too): vLLM, CUDA torch, transformers + bitsandbytes and llama.cpp built with CUDA, the
versions the Dockerfile pins, every library of llama.cpp's CUDA backend resolving inside the image
(but the driver's libcuda.so.1, which the NVIDIA container runtime brings), no CUDA toolkit or driver
stub left behind, and its default command. There is no GPU here: nothing runs on one.

The image is built only with LLMSERVER_BUILD_CUDA=1 (or an existing one is used, see the cuda_image
fixture); without one these tests skip, and LLMSERVER_REQUIRE_CUDA_IMAGE=1 makes that a failure."""

from __future__ import annotations

import pathlib
import re
import stat

import pytest

pytestmark = pytest.mark.timeout(7200)  # a session that builds the cuda image waits here for it

REPO = pathlib.Path(__file__).resolve().parents[3]
DRIVER = "libcuda.so.1"  # the host driver's, mounted by the NVIDIA container runtime


def _dockerfile_arg(name: str) -> str:
    found = re.search(rf'^ARG {name}="?([^"\n]+)"?$', (REPO / "runtime-image" / "Dockerfile").read_text(), re.MULTILINE)
    assert found, f"no ARG {name} in the Dockerfile"
    return found.group(1)


def _distributions(image) -> dict[str, str]:
    found = {}
    for path in image.files:
        if path.endswith(".dist-info/METADATA") and path.startswith(image.site_packages() + "/"):
            headers = image.path(path).read_text(errors="replace").split("\n\n", 1)[0]
            fields = dict(line.split(": ", 1) for line in headers.splitlines() if ": " in line)
            found[re.sub(r"[-_.]+", "-", fields["Name"]).lower()] = fields["Version"]
    return found


def _llama_libraries(image) -> list[str]:
    folder = f"{image.site_packages()}/llama_cpp/lib/"
    return sorted(p for p in image.files if p.startswith(folder) and re.search(r"\.so(\.\d+)*$", p)
                  and not stat.S_ISLNK(image.files[p].st_mode))  # links lead to these files


def test_versions_are_the_pinned_ones_and_torch_is_a_cuda_build(cuda_image) -> None:
    installed = _distributions(cuda_image)
    assert installed["vllm"] == _dockerfile_arg("VLLM_VERSION")
    assert installed["llama-cpp-python"] == _dockerfile_arg("LLAMA_CPP_PYTHON_VERSION")
    assert "+cpu" not in installed["torch"]
    site = cuda_image.site_packages()
    version = cuda_image.path(f"{site}/torch/version.py").read_text()
    cuda = re.search(r"^cuda(?:: Optional\[str\])? = '(\d+)\.(\d+)'$", version, re.MULTILINE)
    assert cuda, f"torch is not a CUDA build:\n{version}"
    major, minor = cuda.groups()
    toolkit = _dockerfile_arg("CUDA_TOOLKIT_VERSION")
    assert toolkit.startswith(f"{major}.{minor}."), f"llama.cpp built with CUDA {toolkit}, torch with {major}.{minor}"
    # bitsandbytes picks its kernels by torch's CUDA version: they must be there for that version.
    kernels = {pathlib.PurePath(p).name for p in cuda_image.files if p.startswith(f"{site}/bitsandbytes/")
               and "libbitsandbytes_cuda" in p}
    assert f"libbitsandbytes_cuda{major}{minor}.so" in kernels, f"bitsandbytes has {sorted(kernels)}"


def test_llama_cpp_cuda_backend_resolves_every_library_but_the_driver(cuda_image) -> None:
    libraries = _llama_libraries(cuda_image)
    names = {pathlib.PurePath(p).name for p in libraries}
    assert "libggml-cuda.so" in names, f"llama.cpp was built without its CUDA backend: {sorted(names)}"
    library_path = cuda_image.env().get("LD_LIBRARY_PATH", "")
    cuda_libs = f"{cuda_image.site_packages()}/nvidia/cu"
    assert library_path.startswith(cuda_libs), f"the image's LD_LIBRARY_PATH is {library_path!r}"
    with cuda_image.writable_tmp():  # ldd writes to /dev/null
        for library in libraries:
            result = cuda_image.run(["ldd", library])
            assert result.returncode == 0, f"{library}: {result.stderr}"
            missing = {line.split()[0] for line in result.stdout.splitlines() if "not found" in line}
            assert missing <= {DRIVER}, f"{library} needs {sorted(missing)}, not in the image:\n{result.stdout}"
            if library.endswith("/libggml-cuda.so"):
                resolved = dict(re.findall(r"^\s*(\S+) => (\S+)", result.stdout, re.MULTILINE))
                for needed in ("libcudart.so", "libcublas.so", "libcublasLt.so"):
                    found = [path for lib, path in resolved.items() if lib.startswith(needed + ".")]
                    assert found and found[0].startswith(cuda_libs), f"{needed}: {found} ({result.stdout})"
                # Linked with the driver: llama.cpp's VMM memory pool (GGML_CUDA_NO_VMM off).
                assert DRIVER in resolved, result.stdout


def test_no_cuda_toolkit_or_driver_stub_in_the_image(cuda_image) -> None:
    toolkit = [p for p in cuda_image.files if pathlib.PurePath(p).name in {"nvcc", "cicc", "cudafe++", "nvcc.profile"}
               or p.startswith(("/opt/cuda", "/wheels", "/usr/local/cuda"))]
    assert not toolkit, f"CUDA toolkit left in the image: {toolkit[:5]}"
    # A libcuda anywhere in the image could shadow the host driver's: it must come from the node only.
    driver = [p for p in cuda_image.files if pathlib.PurePath(p).name.startswith("libcuda.so")]
    assert not driver, f"a CUDA driver library in the image: {driver}"


def test_default_command_of_the_cuda_image(cuda_image, chroot_ok) -> None:
    result = cuda_image.run(cuda_image.config["Entrypoint"] + cuda_image.config["Cmd"], timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "--backend" in result.stdout and "--served-model-name" in result.stdout
