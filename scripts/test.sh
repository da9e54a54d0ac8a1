#!/usr/bin/env bash
# The README's test command: installs what the suite needs, then runs every check and test.
# Fails when any check or test fails, and when pytest collects no tests (exit code 5).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
venv="$(bash scripts/setup-env.sh full | tail -n 1)"
bash scripts/setup-tools.sh
export PATH="$venv/bin:$HOME/.cache/llmserver/bin:$PATH"

echo "== import rules (import-linter)"
lint-imports --config pyproject.toml

echo "== generated CRDs are up to date"
python -m llmserver_api.generate --check

echo "== test suite"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
