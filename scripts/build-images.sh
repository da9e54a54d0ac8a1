#!/usr/bin/env bash
# Builds the project's images from runtime-image/Dockerfile on this machine.
#
#   bash scripts/build-images.sh [TARGET...]      # default targets: operator cpu
#   LLMSERVER_BUILD_CUDA=1 bash scripts/build-images.sh   # operator cpu cuda
#
# The cuda image (vLLM, CUDA torch, llama.cpp compiled with nvcc) is built only when asked for:
# LLMSERVER_BUILD_CUDA=1, or `cuda` named as a target. It takes long (llama.cpp's CUDA kernels
# compile for every architecture in CUDA_ARCHITECTURES) and its dependency layer alone is ~10 GB, so a
# podman build first checks that its storage has LLMSERVER_CUDA_MIN_FREE_GB free (see docs/images.md).
#
# Engine: `docker build` when a Docker daemon answers; otherwise `podman build --isolation chroot`
# (containers cannot run here, but chroot builds work as root). With podman the base is a local
# Debian bookworm image made with debootstrap (minbase + python3 + python3-venv), imported with
# `podman import` and reused while its recipe is unchanged; it is passed through the Dockerfile's
# PYTHON_IMAGE argument. With docker the Dockerfile's pinned python slim base is used.
#
# With podman, every RUN sees this machine's pip configuration (merged `pip config list`, written
# to /etc/pip.conf), the local paths it names (find-links, file:// indexes, CA bundle,
# constraints) read-only, and the host pip cache at /root/.cache/pip, so the build reaches the same
# PyPI mirror and local wheels and does not compile llama-cpp-python a second time. Only the
# builders' /opt/venv reaches the final images: neither the cache nor the configuration does (the
# builder stage is built with those mounts, the final stage after it without them).
# A CPU torch wheel found in a find-links folder is used for the cpu target; otherwise the
# Dockerfile's default (the PyTorch CPU index) applies.
#
# Env:
#   LLMSERVER_IMAGE_TAG        tag of the images (default: dev)
#   LLMSERVER_IMAGE_ENGINE     auto | docker | podman (default: auto)
#   LLMSERVER_IMAGE_BASE       podman only: debootstrap | official (default: debootstrap)
#   LLMSERVER_IMAGE_PIP_CACHE  host pip cache to reuse (default: ~/.cache/pip); "none" builds
#                              without one (use it for images you publish: a wheel cached from a
#                              host build may be compiled for the host's CPU)
#   LLMSERVER_DEBIAN_MIRROR    debootstrap mirror (default: http://deb.debian.org/debian)
#   LLMSERVER_DEBIAN_SECURITY_MIRROR  security updates (default: the mirror + "-security")
#   LLMSERVER_BUILD_CUDA       1: add the cuda target to the default targets (default: 0)
#   LLMSERVER_CUDA_ARCHITECTURES  CMAKE_CUDA_ARCHITECTURES of llama.cpp in the cuda image (default:
#                              the Dockerfile's CUDA_ARCHITECTURES, e.g. "80-real;86-real;89-real;90")
#   LLMSERVER_CUDA_BUILD_JOBS  parallel nvcc/compiler jobs for llama.cpp (default: every core)
#   LLMSERVER_CUDA_MIN_FREE_GB podman only: free disk the cuda build needs first (default: 45)
#   LLMSERVER_IMAGE_REGISTRY   prefix of the image names, e.g. ghcr.io/OWNER (default: none)
#   LLMSERVER_IMAGE_PLATFORMS  docker only: e.g. linux/amd64,linux/arm64, built with `docker buildx`
#                              (default: none, the host's platform with plain `docker build`)
#   LLMSERVER_IMAGE_PUSH       docker only: 1 pushes each image as it is built (`buildx --push`);
#                              needed for several platforms, which the daemon cannot load (default: 0)
# Prints one line per image: `image TARGET NAME SECONDS`. Exits 3 when no engine can build here,
# 4 when debootstrap is missing, 5 when the disk is too small for the cuda image, 1 when a build fails.
set -euo pipefail
shopt -s inherit_errexit  # a failing step inside $(...) (the base recipe) stops the script too
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
dockerfile=runtime-image/Dockerfile
tag="${LLMSERVER_IMAGE_TAG:-dev}"
mirror="${LLMSERVER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mirror="${mirror%/}"
security_mirror="${LLMSERVER_DEBIAN_SECURITY_MIRROR:-$mirror-security}"
security_mirror="${security_mirror%/}"
pip_cache="${LLMSERVER_IMAGE_PIP_CACHE:-$HOME/.cache/pip}"
registry="${LLMSERVER_IMAGE_REGISTRY:-}"
registry="${registry%/}"
platforms="${LLMSERVER_IMAGE_PLATFORMS:-}"
push="${LLMSERVER_IMAGE_PUSH:-0}"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(operator cpu)
  if [ "${LLMSERVER_BUILD_CUDA:-0}" = 1 ]; then targets+=(cuda); fi
fi

log() { printf 'build-images: %s\n' "$*" >&2; }
die() { local code="$1"; shift; log "$*"; exit "$code"; }

image_name() {  # target -> image name (the names tests/e2e and the chart use)
  case "$1" in
    operator) echo "llmserver-operator:$tag" ;;
    cpu) echo "llmserver-runtime:$tag" ;;
    cuda) echo "llmserver-runtime-cuda:$tag" ;;
    *) die 2 "unknown target '$1' (operator, cpu, cuda)" ;;
  esac
}
for target in "${targets[@]}"; do image_name "$target" >/dev/null; done

engine="${LLMSERVER_IMAGE_ENGINE:-auto}"
if [ "$engine" = auto ]; then
  if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null 2>&1; then
    engine=podman
  else
    die 3 "no engine: no Docker daemon answers and podman is not installed (apt-get install podman debootstrap)"
  fi
fi
[ "$engine" = docker ] || [ "$engine" = podman ] || die 2 "LLMSERVER_IMAGE_ENGINE must be auto, docker or podman"
[ "$push" = 0 ] || [ "$push" = 1 ] || die 2 "LLMSERVER_IMAGE_PUSH must be 0 or 1"
if [ "$push" = 1 ] || [ -n "$platforms" ]; then
  [ "$engine" = docker ] || die 2 "LLMSERVER_IMAGE_PUSH and LLMSERVER_IMAGE_PLATFORMS need docker (buildx), not $engine"
  case "$platforms" in
    *,*) [ "$push" = 1 ] || die 2 "several LLMSERVER_IMAGE_PLATFORMS need LLMSERVER_IMAGE_PUSH=1 (the daemon cannot load a multi-platform image)" ;;
  esac
fi
command -v "$engine" >/dev/null 2>&1 || die 3 "$engine is not installed"
if [ "$engine" = podman ] && [ "$(id -u)" -ne 0 ]; then
  die 3 "podman builds with --isolation chroot and a debootstrap base need root"
fi

podman_leftovers() {  # podman's working containers and scratch folders
  podman ps -aq --external 2>/dev/null | sort || true
  find /var/tmp -maxdepth 1 \( -name 'buildah[0-9]*' -o -name 'storage[0-9]*' \) 2>/dev/null | sort || true
}
work="$(mktemp -d /var/tmp/llmserver-images.XXXXXX)"
before=""
[ "$engine" = podman ] && before="$(podman_leftovers)"
interrupted=0
cleanup() {
  # debootstrap mounts /proc and /sys inside the tree; never leave a mount behind.
  if [ -d "$work/rootfs" ]; then
    grep -o " $work/rootfs[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  fi
  rm -rf "$work"
  # An interrupted podman 4 build leaves its working containers (mounted) and scratch folders.
  if [ "$interrupted" = 1 ] && [ "$engine" = podman ]; then
    comm -13 <(echo "$before") <(podman_leftovers) | while read -r item; do
      case "$item" in
        /var/tmp/*) rm -rf "$item" ;;
        ?*) podman rm -f "$item" >/dev/null 2>&1 || true ;;
      esac
    done
  fi
}
trap cleanup EXIT
trap 'interrupted=1; log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# The debootstrap base (podman): bookworm minbase + python3 + python3-venv, security updates in,
# docs and apt lists out. Its tag carries the hash of this recipe, so a changed recipe rebuilds.
make_base() {  # rootfs mirror security-mirror
  local rootfs="$1" mirror="$2" security="$3"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$mirror" >&2
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
  # Like the official slim images: no docs, man pages or locales from later apt installs.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/llmserver-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  # Like the official images: apt keeps no downloaded packages or caches in a layer.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  chroot "$rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    'apt-get update -q && apt-get -y -q upgrade && apt-get clean' >&2
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs/etc/resolv.conf"
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  : >"$rootfs/etc/hostname"
}

ensure_base() {  # prints the base image name
  command -v debootstrap >/dev/null 2>&1 || die 4 "debootstrap is not installed (apt-get install debootstrap)"
  local recipe hash name started
  recipe="$(declare -f make_base; echo "mirror=$mirror security=$security_mirror")"
  hash="$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"
  name="localhost/llmserver-base:bookworm-$hash"
  if podman image exists "$name"; then
    log "base $name exists (same recipe): reused"
  else
    started=$SECONDS
    log "making base $name with debootstrap (bookworm minbase + python3 + python3-venv)"
    make_base "$work/rootfs" "$mirror" "$security_mirror"
    tar --numeric-owner --xattrs -C "$work/rootfs" -c . | podman import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["python3"]' \
      --change "LABEL org.llmserver.base.recipe=$hash" \
      --message "debootstrap bookworm minbase + python3 + python3-venv (scripts/build-images.sh)" \
      - "$name" >/dev/null
    rm -rf "$work/rootfs"
    log "base $name made in $((SECONDS - started)) s"
  fi
  echo "$name"
}

# ---------------------------------------------------------------------------------------------
# The host's pip configuration for podman builds: the merged settings as one pip.conf, plus the
# local paths they name (mounted read-only at the same place).
pip_settings() {  # writes $work/pip.conf; prints one local path per line
  local python
  python="$(command -v python3 || true)"
  [ -n "$python" ] || { : >"$work/pip.conf"; return 0; }
  "$python" -m pip config list 2>/dev/null | "$python" -c '
import os, re, sys
settings = {}
for line in sys.stdin:
    match = re.fullmatch(r"(:env:|[\w-]+)\.([\w-]+)=(.*)", line.strip())
    if not match:
        continue
    scope, key, value = match.groups()
    value = value.strip("\x27\"")
    if scope != ":env:" and key in settings and settings[key][0] == ":env:":
        continue  # environment beats files, as in pip itself
    settings[key] = (scope, value)
with open(sys.argv[1], "w") as conf:
    conf.write("[global]\n")
    for key, (_, value) in sorted(settings.items()):
        conf.write(f"{key} = {value}\n")
paths = set()
for key, (_, value) in settings.items():
    for item in value.split():
        item = item.removeprefix("file://").rstrip("/")
        if not item.startswith("/") or not os.path.exists(item):
            continue
        if key in ("index-url", "extra-index-url"):
            item = os.path.dirname(item)  # a local index links to files beside it (../files/...)
        paths.add(item)
print("\n".join(sorted(paths)))
' "$work/pip.conf"
}

# A snapshot of the build context: others may edit the tree during a build, and the two podman
# phases below must see the same files. Only what the Dockerfile's COPY lines name is copied.
snapshot_context() {  # prints the snapshot folder
  local context="$work/context" source
  mkdir -p "$context/runtime-image"
  cp "$dockerfile" "$context/runtime-image/Dockerfile"
  cp .dockerignore "$context/.dockerignore" 2>/dev/null || true
  for source in $(awk '$1 == "COPY" && $2 !~ /^--/ { for (i = 2; i < NF; i++) print $i }' "$dockerfile"); do
    tar -C "$root" --exclude=__pycache__ --exclude='*.pyc' -cf - "$source" | tar -C "$context" -xf -
  done
  echo "$context"
}

dockerfile_arg() {  # name -> default value in the Dockerfile
  sed -n "s/^ARG $1=//p" "$dockerfile" | head -n1
}

build_args=()   # every build of every stage
mount_args=()   # podman: builder stages only (see the loop below)
if [ "$engine" = podman ]; then
  base_choice="${LLMSERVER_IMAGE_BASE:-debootstrap}"
  case "$base_choice" in
    debootstrap)
      base_image="$(ensure_base)"  # its own line: set -e stops the script when the base fails
      build_args+=(--build-arg "PYTHON_IMAGE=$base_image" --pull=never) ;;
    official) ;;
    *) die 2 "LLMSERVER_IMAGE_BASE must be debootstrap or official" ;;
  esac
  mapfile -t pip_paths < <(pip_settings)
  build_args+=(--isolation chroot --format docker --layers)
  mount_args+=(-v "$work/pip.conf:/etc/pip.conf:ro")
  for path in "${pip_paths[@]}"; do
    [ -n "$path" ] && mount_args+=(-v "$path:$path:ro")
  done
  if [ "$pip_cache" != none ]; then
    mkdir -p "$pip_cache"
    mount_args+=(-v "$pip_cache:/root/.cache/pip")
  fi
  # A CPU torch wheel in a find-links folder (this machine has one; the PyTorch index is out of reach).
  torch_version="$(dockerfile_arg TORCH_VERSION)"
  for path in "${pip_paths[@]}"; do
    wheel="$(find "$path" -maxdepth 1 -name "torch-${torch_version}+cpu-*.whl" 2>/dev/null | head -n1)"
    if [ -n "$wheel" ]; then
      build_args+=(--build-arg "TORCH_VERSION=${torch_version}+cpu" --build-arg "TORCH_SOURCE=--find-links $path")
      log "CPU torch from $wheel"
      break
    fi
  done
  build=(podman build)
elif [ "$push" = 1 ] || [ -n "$platforms" ]; then
  build=(docker buildx build)
  if [ -n "$platforms" ]; then build_args+=(--platform "$platforms"); fi
  if [ "$push" = 1 ]; then build_args+=(--push); fi
else
  build=(docker build)
fi
# The cuda image: llama.cpp's CUDA architectures and compile jobs, and (podman) room for its layers:
# the ~10 GB dependency layer, its commit copy and the final stage's copy of the venv.
for target in "${targets[@]}"; do
  [ "$target" = cuda ] || continue
  if [ -n "${LLMSERVER_CUDA_ARCHITECTURES:-}" ]; then
    build_args+=(--build-arg "CUDA_ARCHITECTURES=$LLMSERVER_CUDA_ARCHITECTURES")
  fi
  if [ -n "${LLMSERVER_CUDA_BUILD_JOBS:-}" ]; then
    build_args+=(--build-arg "CUDA_BUILD_JOBS=$LLMSERVER_CUDA_BUILD_JOBS")
  fi
  log "cuda: CUDA_ARCHITECTURES=${LLMSERVER_CUDA_ARCHITECTURES:-$(dockerfile_arg CUDA_ARCHITECTURES)}"
  if [ "$engine" = podman ]; then
    storage="$(podman info --format '{{.Store.GraphRoot}}')"
    free_gb=$(( $(df --output=avail -k "$storage" | tail -n1) / 1024 / 1024 ))
    need_gb="${LLMSERVER_CUDA_MIN_FREE_GB:-45}"
    if [ "$free_gb" -lt "$need_gb" ]; then
      die 5 "cuda: $free_gb GB free under $storage, the build needs $need_gb GB (LLMSERVER_CUDA_MIN_FREE_GB)"
    fi
  fi
done

context="$(snapshot_context)"
status=0
for target in "${targets[@]}"; do
  name="$(image_name "$target")"
  if [ -n "$registry" ]; then name="$registry/$name"; fi
  log "building $target as $name with $engine"
  started=$SECONDS
  # podman 4's chroot builds leave an empty file or folder in the layer for every -v target
  # (/etc/pip.conf, /opt/wheels, /root/.cache/pip, ...). So the builder stage is built first with
  # the mounts, and the final stage after it without them: the builder's layers come from the
  # layer cache (volumes are not part of its key), and the final stage's RUNs see no mounts.
  # The second build must take the builder from the cache (checked below): built again without the
  # mounts it would not reach this machine's pip configuration.
  if [ "${#mount_args[@]}" -gt 0 ]; then
    if ! "${build[@]}" "${build_args[@]}" "${mount_args[@]}" --iidfile "$work/builder-$target.iid" \
         -f "$context/runtime-image/Dockerfile" --target "builder-$target" "$context" >&2; then
      log "builder-$target failed after $((SECONDS - started)) s"
      status=1
      continue
    fi
  fi
  if "${build[@]}" "${build_args[@]}" -f "$context/runtime-image/Dockerfile" --target "$target" -t "$name" \
       "$context" 2>&1 | tee "$work/$target.log" >&2; then  # pipefail: the build's status
    builder_id="$(sed 's/^sha256://' "$work/builder-$target.iid" 2>/dev/null || true)"
    if [ -n "$builder_id" ] && ! grep -q "Using cache $builder_id" "$work/$target.log"; then
      log "$target: the builder stage was not taken from the layer cache (builder-$target is $builder_id)"
      status=1
      continue
    fi
    log "$target built as $name in $((SECONDS - started)) s"
    echo "image $target $name $((SECONDS - started))"
  else
    log "$target failed after $((SECONDS - started)) s"
    status=1
  fi
done
exit "$status"
