# The README's two Quickstart commands, plus the pieces CI runs.
.PHONY: demo test generate lint

demo:  ## Serve a tiny generated model on http://127.0.0.1:8000/v1 (no cluster, works offline)
	bash scripts/demo.sh

test:  ## Install everything needed, then run every check and the whole test suite
	bash scripts/test.sh

generate:  ## Regenerate the CRDs (crds/*.yaml and the chart's copy) from the pydantic models
	"$${LLMSERVER_VENV:-$$HOME/.cache/llmserver/venv}/bin/python" -m llmserver_api.generate
