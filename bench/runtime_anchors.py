"""What bench/runtime.py's anchor servers need, installed at bench start (never at import).

- `python -m llama_cpp.server` imports `starlette_context` and `sse_starlette`, which installing
  llama-cpp-python alone does not bring: pinned copies go into a bench-only folder put on that
  server's PYTHONPATH (the project's venv is left alone).
- llama.cpp's own `llama-server` is built from the llama.cpp sources that llama-cpp-python's sdist
  vendors (the same engine version as the in-process anchor), only the `llama-server` target, two
  compile jobs at a time, cached under ~/.cache/llmserver/bench/.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
import tarfile

CACHE = pathlib.Path.home() / ".cache" / "llmserver" / "bench"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# Pinned: what llama_cpp.server 0.3.36 imports beyond llama-cpp-python itself.
SERVER_EXTRAS = ("starlette-context==0.4.0", "sse-starlette==3.7.1")
_BUILD_TIMEOUT_S = 3600


def server_pythonpath() -> str | None:
    """A folder holding llama_cpp.server's missing imports (None when the venv already has them)."""
    missing = [m for m in ("starlette_context", "sse_starlette") if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    target = CACHE / "server-extras"
    marker = target / ".installed"
    if marker.exists() and marker.read_text() == " ".join(SERVER_EXTRAS):
        return str(target)
    print(f"installing {' '.join(SERVER_EXTRAS)} into {target} (for llama_cpp.server)", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--target", str(target),
         *SERVER_EXTRAS],
        check=True,
        timeout=600,
    )
    marker.write_text(" ".join(SERVER_EXTRAS))
    return str(target)


def _sdist() -> pathlib.Path:
    """llama-cpp-python's sdist (downloaded, never built: only the vendored llama.cpp is used)."""
    folder = CACHE / "sdist"
    name = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    if not (folder / name).exists():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
             f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(folder)],
            check=True,
            timeout=900,
        )
    return folder / name


def llama_server() -> pathlib.Path:
    """The `llama-server` binary, built on first use (minutes on 2 cores) and cached."""
    root = CACHE / f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}"
    binary = root / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    source = root / "src"
    if not (source / "CMakeLists.txt").exists():
        with tarfile.open(_sdist()) as archive:
            prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
            members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
            for member in members:
                member.name = member.name[len(prefix) :]
            source.mkdir(parents=True, exist_ok=True)
            archive.extractall(source, members=[m for m in members if m.name], filter="data")
    build = root / "build"
    print(f"building llama-server from {source} (2 compile jobs; several minutes)", flush=True)
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"}
    configure = ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF"]
    configure += ["-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON",
                  "-DLLAMA_BUILD_TOOLS=ON", "-DBUILD_SHARED_LIBS=OFF"]
    subprocess.run(configure, check=True, env=env, timeout=600, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["cmake", "--build", str(build), "--target", "llama-server", "--config", "Release"],
        check=True,
        env=env,
        timeout=_BUILD_TIMEOUT_S,
        stdout=subprocess.DEVNULL,
    )
    return binary


if __name__ == "__main__":
    print(server_pythonpath())
    print(llama_server())
