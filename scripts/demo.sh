#!/usr/bin/env bash
# The README's first command: serves a tiny generated model locally, no cluster needed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(bash "$here/scripts/setup-env.sh" demo | tail -n 1)"
exec "$venv/bin/llmserver" up --demo "$@"
