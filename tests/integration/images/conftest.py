"""Builds the images once per session (scripts/build-images.sh) and opens them without running a
container (containers cannot run on this machine: `podman run` fails on setrlimit).

An image's root filesystem is mounted read-only (`podman image mount`, as root) or, with Docker,
exported into a folder. Commands from the image then run with chroot into that filesystem as the
image's user, with the image's environment and working directory, and only /tmp writable (a host
folder bound there), as in a pod with a read-only root filesystem.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

TARGET_NAMES = {"operator": "llmserver-operator", "cpu": "llmserver-runtime", "cuda": "llmserver-runtime-cuda"}


def engine_or_reason() -> tuple[str | None, str | None]:
    """(engine, None) for the engine scripts/build-images.sh will use, or (None, why none can)."""
    if shutil.which("docker"):
        try:
            info = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
            if info.returncode == 0:
                return "docker", None
        except subprocess.TimeoutExpired:
            pass
    if not shutil.which("podman"):
        return None, ("no container engine: no Docker daemon answers and podman is not installed "
                      "(scripts/setup-tools.sh installs podman and debootstrap)")
    if os.geteuid() != 0:
        return None, "podman builds here need root (chroot isolation on a debootstrap base)"
    if not shutil.which("debootstrap"):
        return None, "debootstrap is not installed (scripts/setup-tools.sh installs podman and debootstrap)"
    return "podman", None


@dataclasses.dataclass
class Image:
    """A built image opened for reading: its config and every path in it (walked once)."""

    target: str
    name: str
    engine: str
    inspect: dict
    root: pathlib.Path
    files: dict[str, os.stat_result]  # "/path" -> lstat, mount points of the host excluded

    @property
    def config(self) -> dict:
        return self.inspect.get("Config") or {}

    def env(self) -> dict[str, str]:
        """The image's environment (Config.Env)."""
        return dict(item.partition("=")[::2] for item in self.config.get("Env") or [])

    def path(self, inside: str) -> pathlib.Path:
        """A path of the image on this machine."""
        return self.root / inside.lstrip("/")

    def run(self, command: Sequence[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        """Runs `command` in the image and waits (see chroot_argv)."""
        return run(self, command, timeout, **env)

    def started(self, command: Sequence[str], log: pathlib.Path, **env: str) -> contextlib.AbstractContextManager[
            subprocess.Popen[bytes]]:
        """`command` running in the image in the background while the block runs."""
        return started(self, command, log, **env)

    def writable_tmp(self) -> contextlib.AbstractContextManager[pathlib.Path]:
        """A host folder bound at the image's /tmp while the block runs (see writable_tmp)."""
        return writable_tmp(self)

    def site_packages(self) -> str:
        """The virtualenv's site-packages, as a path inside the image."""
        found = sorted(p for p in self.files if p.startswith("/opt/venv/lib/python3.")
                       and p.endswith("/site-packages") and p.count("/") == 5)
        assert len(found) == 1, f"{self.name}: expected one venv site-packages, found {found}"
        return found[0]


def _walk(root: pathlib.Path) -> dict[str, os.stat_result]:
    files: dict[str, os.stat_result] = {}
    for current, dirs, names in os.walk(root):
        for name in dirs + names:
            path = pathlib.Path(current, name)
            files["/" + str(path.relative_to(root))] = path.lstat()
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(current, d))]
    return files


def inspect(engine: str, name: str) -> dict:
    """`podman|docker image inspect` of one image."""
    out = subprocess.run([engine, "image", "inspect", name], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)[0]


@contextlib.contextmanager
def opened(engine: str, target: str, name: str, scratch: pathlib.Path) -> Iterator[Image]:
    """The image's root filesystem for the duration of the block; unmounted/removed afterwards."""
    details = inspect(engine, name)
    if engine == "podman":
        root = pathlib.Path(subprocess.run(["podman", "image", "mount", name], capture_output=True, text=True,
                                           timeout=120, check=True).stdout.strip())
        try:
            yield Image(target, name, engine, details, root, _walk(root))
        finally:
            subprocess.run(["podman", "image", "unmount", name], capture_output=True, timeout=120, check=False)
        return
    container = subprocess.run(["docker", "create", name], capture_output=True, text=True, timeout=120,
                               check=True).stdout.strip()
    root = scratch / f"rootfs-{target}"
    try:
        root.mkdir()
        with subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE) as export, \
                tarfile.open(fileobj=export.stdout, mode="r|") as archive:
            archive.extractall(root, filter="fully_trusted")
        yield Image(target, name, engine, details, root, _walk(root))
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=120, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _bind(source: pathlib.Path, target: pathlib.Path) -> None:
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True, capture_output=True, timeout=30)


def _unbind(target: pathlib.Path) -> None:
    if subprocess.run(["umount", str(target)], capture_output=True, timeout=30, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30, check=False)
    assert not os.path.ismount(target), f"{target} is still mounted"


@contextlib.contextmanager
def writable_tmp(image: Image) -> Iterator[pathlib.Path]:
    """A host folder bound at the image's /tmp (and host /dev at /dev) while the block runs.

    The folder is world-writable like a pod's emptyDir, so uid 10001 can write there; everything
    else of the image stays read-only (podman) or is a throwaway copy (Docker export)."""
    host = pathlib.Path(tempfile.mkdtemp(prefix=f"llmserver-{image.target}-tmp-", dir="/var/tmp"))
    host.chmod(0o1777)
    bound: list[pathlib.Path] = []
    try:
        for source, inside in ((host, "/tmp"), (pathlib.Path("/dev"), "/dev")):
            target = image.path(inside)
            assert target.is_dir() and not target.is_symlink(), f"{image.name} has no {inside} folder"
            _bind(source, target)
            bound.append(target)
        yield host
    finally:
        for target in reversed(bound):
            _unbind(target)
        shutil.rmtree(host, ignore_errors=True)


def chroot_argv(image: Image, command: Sequence[str]) -> list[str]:
    """argv that runs `command` inside the image as its user, from its working directory."""
    user = image.config.get("User") or "0:0"
    workdir = image.config.get("WorkingDir") or "/"
    return ["chroot", f"--userspec={user}", str(image.root), "/usr/bin/env", "-C", workdir, *command]


def run(image: Image, command: Sequence[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs `command` in the image (see chroot_argv) with the image's environment plus `env`."""
    return subprocess.run(chroot_argv(image, command), env={**image.env(), **env}, capture_output=True, text=True,
                          timeout=timeout, check=False)


@contextlib.contextmanager
def started(image: Image, command: Sequence[str], log: pathlib.Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`command` running in the image in the background; terminated (then killed) on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(chroot_argv(image, command), env={**image.env(), **env}, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)


# ---------------------------------------------------------------------------------------------
# Session fixtures: one build, every image opened once.
REPO = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "build-images.sh"
TAG = "itest"
BUILD_TIMEOUT = 3300  # a cold cpu image compiles llama.cpp when the host pip cache lacks its wheel


def wanted_targets() -> list[str]:
    """Targets to build and check: LLMSERVER_IMAGE_TEST_TARGETS (default: operator cpu, and cuda when
    LLMSERVER_BUILD_CUDA=1: the cuda image takes long and ~50 GB of disk, so CI does not build it)."""
    default = "operator cpu cuda" if os.environ.get("LLMSERVER_BUILD_CUDA") == "1" else "operator cpu"
    return os.environ.get("LLMSERVER_IMAGE_TEST_TARGETS", default).split()


@dataclasses.dataclass
class Built:
    """What scripts/build-images.sh reported."""

    engine: str
    names: dict[str, str]  # target -> image name
    seconds: dict[str, int]  # target -> build time
    log: pathlib.Path


def _report(config: pytest.Config, line: str) -> None:
    """Shows `line` in the terminal even while output is captured (build times and sizes matter in CI)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.write_line(line)


@pytest.fixture(scope="session")
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Runs scripts/build-images.sh for the wanted targets (the layer cache makes reruns quick)."""
    engine, reason = engine_or_reason()
    if engine is None:
        if os.environ.get("LLMSERVER_REQUIRE_IMAGES") == "1":
            pytest.fail(f"LLMSERVER_REQUIRE_IMAGES=1, but the images cannot be built: {reason}")
        pytest.skip(f"images not built: {reason}")
    log = tmp_path_factory.mktemp("images") / "build.log"
    env = {**os.environ, "LLMSERVER_IMAGE_TAG": TAG, "LLMSERVER_IMAGE_ENGINE": engine}
    started = time.monotonic()
    with log.open("w") as err, subprocess.Popen(["bash", str(SCRIPT), *wanted_targets()], env=env, text=True,
                                                 stdout=subprocess.PIPE, stderr=err, start_new_session=True) as build:
        try:
            stdout, _ = build.communicate(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            # The whole group, podman included, and SIGINT first: a killed podman build leaves its
            # working containers and /var/tmp/storage* behind.
            os.killpg(build.pid, signal.SIGINT)
            try:
                build.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(build.pid, signal.SIGKILL)
                build.communicate()
            pytest.fail(f"scripts/build-images.sh took over {BUILD_TIMEOUT} s:\n{log.read_text(errors='replace')[-6000:]}")
    tail = log.read_text(errors="replace")[-6000:]
    assert build.returncode == 0, f"scripts/build-images.sh failed (exit {build.returncode}):\n{tail}"
    names, seconds = {}, {}
    for line in stdout.splitlines():
        word, target, name, took = line.split()
        assert word == "image", line
        names[target], seconds[target] = name, int(took)
    assert sorted(names) == sorted(wanted_targets()), stdout
    _report(request.config, f"\nimages built with {engine} in {time.monotonic() - started:.0f} s: "
            + ", ".join(f"{t} {names[t]} {seconds[t]} s" for t in names))
    return Built(engine, names, seconds, log)


@pytest.fixture(scope="session")
def images(request: pytest.FixtureRequest, built: Built,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Image]]:
    """Every built image, opened (mounted or exported) for the whole session."""
    scratch = tmp_path_factory.mktemp("rootfs")
    with contextlib.ExitStack() as stack:
        opened_images = {t: stack.enter_context(opened(built.engine, t, n, scratch)) for t, n in built.names.items()
                         if t != "cuda"}  # the cuda_image fixture opens that one, built here or not
        _report(request.config, "image sizes: " + ", ".join(
            f"{t} {image.inspect.get('Size', 0) / 1e6:.0f} MB" for t, image in opened_images.items()))
        yield opened_images


def _existing_image(engine: str, names: Sequence[str]) -> str | None:
    """The first of `names` that the engine holds."""
    for name in names:
        if subprocess.run([engine, "image", "inspect", name], capture_output=True, timeout=60, check=False).returncode == 0:
            return name
    return None


@pytest.fixture(scope="session")
def cuda_image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """The cuda image: built by this session when LLMSERVER_BUILD_CUDA=1 (or cuda is among
    LLMSERVER_IMAGE_TEST_TARGETS), else an existing one (LLMSERVER_CUDA_IMAGE, or
    llmserver-runtime-cuda:itest / :dev). Skips when there is none, fails when
    LLMSERVER_REQUIRE_CUDA_IMAGE=1."""
    def unavailable(reason: str) -> None:
        if os.environ.get("LLMSERVER_REQUIRE_CUDA_IMAGE") == "1":
            pytest.fail(f"LLMSERVER_REQUIRE_CUDA_IMAGE=1, but {reason}")
        pytest.skip(reason)

    if "cuda" in wanted_targets():
        built: Built = request.getfixturevalue("built")
        engine, name = built.engine, built.names["cuda"]
    else:
        engine, reason = engine_or_reason()
        if engine is None:
            unavailable(f"no cuda image can be opened: {reason}")
        candidates = [os.environ["LLMSERVER_CUDA_IMAGE"]] if os.environ.get("LLMSERVER_CUDA_IMAGE") else [
            f"{TARGET_NAMES['cuda']}:{TAG}", f"{TARGET_NAMES['cuda']}:dev"]
        name = _existing_image(engine, candidates)
        if name is None:
            unavailable(f"no cuda image ({' or '.join(candidates)}): build it with LLMSERVER_BUILD_CUDA=1 "
                        "(long, ~50 GB of disk; see docs/images.md) or name one with LLMSERVER_CUDA_IMAGE")
    with opened(engine, "cuda", name, tmp_path_factory.mktemp("rootfs-cuda")) as image:
        _report(request.config, f"cuda image {name}: {image.inspect.get('Size', 0) / 1e9:.1f} GB")
        yield image


@pytest.fixture(params=["operator", "cpu", "cuda"])
def image(request: pytest.FixtureRequest) -> Image:
    """Each final image in turn (cuda: see cuda_image)."""
    if request.param == "cuda":
        return request.getfixturevalue("cuda_image")
    images: dict[str, Image] = request.getfixturevalue("images")
    if request.param not in images:
        pytest.skip(f"{request.param} image not built: LLMSERVER_IMAGE_TEST_TARGETS={' '.join(wanted_targets())}")
    return images[request.param]


@pytest.fixture
def chroot_ok() -> None:
    """Commands from an image run with chroot and bind mounts, which need root."""
    if os.geteuid() != 0:
        pytest.skip("running an image's commands with chroot needs root (the files were checked without it)")


@pytest.fixture
def stand_in_driver() -> Callable[[Image, pathlib.Path], str]:
    """make_stand_in_driver, for the tests that load llama.cpp's CUDA backend."""
    return make_stand_in_driver


def make_stand_in_driver(image: Image, host_tmp: pathlib.Path) -> str:
    """A stand-in libcuda.so.1 in the image's bound /tmp (host_tmp), built with the host's C compiler;
    returns its folder inside the image. On a GPU node the NVIDIA container runtime puts the host
    driver's libcuda.so.1 there; without one, llama.cpp's CUDA backend cannot even load. Every driver
    entry point that the image's llama.cpp libraries use answers CUDA_ERROR_NO_DEVICE (100)."""
    compiler, nm = shutil.which("cc") or shutil.which("gcc"), shutil.which("nm")
    if not (compiler and nm):
        pytest.skip("a stand-in CUDA driver needs a C compiler and nm on this machine")
    symbols: set[str] = set()
    for path in image.files:
        if path.startswith(f"{image.site_packages()}/llama_cpp/lib/") and ".so" in path:
            listing = subprocess.run([nm, "-D", "--undefined-only", str(image.path(path))], capture_output=True,
                                     text=True, timeout=60, check=True).stdout
            symbols |= {line.split()[-1].split("@")[0] for line in listing.splitlines()
                        if line.split() and line.split()[-1].startswith("cu") and line.split()[-1][2:3].isupper()}
    folder = host_tmp / "stand-in-driver"
    folder.mkdir(mode=0o755)
    source = folder / "libcuda.c"
    source.write_text("".join(f"int {name}(void) {{ return 100; }}\n" for name in sorted(symbols)))
    subprocess.run([compiler, "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(folder / "libcuda.so.1"),
                    str(source)], check=True, capture_output=True, timeout=120)
    (folder / "libcuda.so.1").chmod(0o755)
    return "/tmp/stand-in-driver"
