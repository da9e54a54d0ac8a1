"""The dependency rules of the architecture (import-linter contracts in pyproject.toml) hold."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from testkit import crd_validation


def test_import_linter_contracts_pass() -> None:
    lint_imports = pathlib.Path(sys.executable).parent / "lint-imports"
    assert lint_imports.exists(), f"import-linter is not installed in {sys.prefix}"
    result = subprocess.run(
        [str(lint_imports), "--config", "pyproject.toml", "--no-cache"],
        cwd=crd_validation.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout
