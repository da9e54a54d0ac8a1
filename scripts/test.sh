#!/usr/bin/env bash
# The README's test command: installs what the suite needs, then runs every check and test.
# Fails when any check or test fails, and when a pytest run collects no tests (exit code 5).
#
# Without arguments the suite runs as one pytest process per test folder: the integration tests
# start hundreds of servers, engines and emulators, and separate processes keep one folder's
# leftovers (threads, descriptors, engine state) from reaching the next. With arguments, they go
# to a single pytest run unchanged: `bash scripts/test.sh tests/unit -x`.
#
# The folders in RANDOM_ORDER run their tests shuffled (pytest-random-order, `--random-order`),
# so a test that only passes after another one fails here; pytest prints the seed in its header
# (`--random-order-seed=N`), and passing that seed back reproduces the order.
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

if [ "$#" -gt 0 ]; then
  groups=("$*")
else
  groups=(tests/unit)
  for folder in tests/integration/*/ tests/e2e/; do
    groups+=("${folder%/}")
  done
fi

RANDOM_ORDER=(tests/integration/gateway tests/integration/apple)

reports="$(mktemp -d)"
failed=0
index=0
for group in "${groups[@]}"; do
  index=$((index + 1))
  order=""
  for shuffled in "${RANDOM_ORDER[@]}"; do
    if [ "$#" -eq 0 ] && [ "$group" = "$shuffled" ]; then
      order="--random-order"
    fi
  done
  echo "== pytest ${group} ${order}"
  set +e
  # shellcheck disable=SC2086  # a group given as arguments is split into them on purpose
  python -m pytest ${group} ${order} --junitxml="$reports/$index.xml"
  rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests in ${group}: failing on purpose" >&2
    failed=1
  elif [ "$rc" -ne 0 ]; then
    failed=1
  fi
done

python - "$reports" <<'EOF'
"""Adds up the JUnit reports of every pytest run into one closing line."""
import pathlib
import sys
import xml.etree.ElementTree as ET

totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for report in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    for suite in ET.parse(report).getroot().iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
failed = totals["failures"] + totals["errors"]
passed = totals["tests"] - failed - totals["skipped"]
print(f"total: {passed} passed, {failed} failed, {totals['skipped']} skipped")
EOF
rm -rf "$reports"
exit "$failed"
