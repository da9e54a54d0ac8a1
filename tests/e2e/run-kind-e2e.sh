#!/usr/bin/env bash
# End to end on a real cluster: build the images, create a kind cluster (kind-config.yaml), load
# the images, helm install the chart, apply a tiny LLMServer (a small public GGUF from the Hugging
# Face Hub), wait until it is Ready, call the gateway with the openai SDK, tear everything down.
#
# Needs: a Docker daemon, kind, kubectl, helm (scripts/setup-tools.sh puts helm in
# ~/.cache/llmserver/bin), python with the `openai` package, and internet access for the model.
# Env: KEEP_CLUSTER=1 keeps the cluster; E2E_REPO / E2E_FILE pick another GGUF; PYTHON picks the
# interpreter that runs the openai client; E2E_TIMEOUT (seconds) bounds the wait for Ready.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export PATH="$HOME/.cache/llmserver/bin:$PATH"
cluster=llmserver-e2e
release=llmserver
system_ns=llmserver-system
tag=e2e
repo="${E2E_REPO:-bartowski/SmolLM2-135M-Instruct-GGUF}"
file="${E2E_FILE:-SmolLM2-135M-Instruct-Q8_0.gguf}"
timeout="${E2E_TIMEOUT:-900}"
python="${PYTHON:-$HOME/.cache/llmserver/venv/bin/python}"
[ -x "$python" ] || python=python3

log() { printf '== %s\n' "$*"; }
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "run-kind-e2e: $tool not found" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "run-kind-e2e: no Docker daemon" >&2; exit 2; }

dump() {
  log "diagnostics"
  kubectl get llms,deploy,job,pod,svc,pvc -A -o wide || true
  kubectl describe llms -A || true
  kubectl -n "$system_ns" logs deploy/"$release"-operator --tail=200 || true
  kubectl -n "$system_ns" logs deploy/"$release"-gateway --tail=200 || true
  kubectl logs -l app.kubernetes.io/managed-by=llmserver-operator --all-containers --tail=100 || true
}
teardown() {
  rc=$?
  [ "$rc" -ne 0 ] && dump
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    log "deleting the cluster"
    kind delete cluster --name "$cluster" || true
  fi
  exit "$rc"
}

log "building images"
LLMSERVER_IMAGE_ENGINE=docker LLMSERVER_IMAGE_TAG="$tag" bash scripts/build-images.sh operator cpu

log "creating the kind cluster"
kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
trap teardown EXIT
kind create cluster --name "$cluster" --config kind-config.yaml --wait 180s
kind load docker-image --name "$cluster" "llmserver-operator:$tag" "llmserver-runtime:$tag"

log "installing the chart"
helm install "$release" charts/llmserver --namespace "$system_ns" --create-namespace --wait --timeout 5m \
  --set image.registry= --set image.tag="$tag" --set image.pullPolicy=Never \
  --set gateway.replicas=1 --set gateway.service.type=NodePort --set gateway.service.nodePort=30080 \
  --set runtime.profile=cpu-small --set cache.size=2Gi

log "applying a tiny LLMServer ($repo $file)"
kubectl apply -f - <<YAML
apiVersion: serving.llmserver.dev/v1alpha1
kind: LLMServer
metadata: {name: tiny, namespace: default}
spec:
  model: tiny
  backend: llama-cpp
  source:
    huggingFace: {repo: "$repo", file: "$file"}
  capabilities: [TextGeneration]
  replicas: 1
  resources: {cpu: "1", memory: 2Gi}
  llamaCpp: {nCtx: 2048}
YAML

log "waiting for Ready (up to ${timeout}s)"
kubectl wait llms/tiny --for=jsonpath='{.status.phase}'=Ready --timeout="${timeout}s"
kubectl get llms -A

log "calling the gateway with the openai SDK (the chart's generated API key)"
API_KEY=$(kubectl -n "$system_ns" get secret "$release-gateway-api-keys" -o jsonpath='{.data.apiKeys}' \
  | base64 -d | sed -n 's/^- key: //p' | head -n 1)
export API_KEY
"$python" - <<'PY'
import os
import time
import openai

client = openai.OpenAI(base_url="http://127.0.0.1:18080/v1", api_key=os.environ["API_KEY"], timeout=60)
deadline = time.monotonic() + 120
while True:  # the gateway may see the endpoint a moment after the LLMServer turns Ready
    try:
        models = [m.id for m in client.models.list().data]
        if "tiny" in models:
            break
    except openai.APIError:
        pass
    if time.monotonic() > deadline:
        raise SystemExit("the gateway never listed model 'tiny'")
    time.sleep(2)
reply = client.chat.completions.create(
    model="tiny", messages=[{"role": "user", "content": "Say hello."}], max_tokens=16)
print("reply:", reply.choices[0].message.content)
assert reply.usage.completion_tokens > 0, reply
stream = client.chat.completions.create(
    model="tiny", messages=[{"role": "user", "content": "Count to three."}], max_tokens=16, stream=True)
chunks = [c for c in stream]
assert chunks, "no streamed chunks"
try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("an unknown model was accepted")
except openai.NotFoundError as err:
    assert err.param == "model", err.body
print("E2E OK")
PY
