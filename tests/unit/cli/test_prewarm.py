"""download-model --in-cluster builds the operator's download Job without status reporting."""

from __future__ import annotations

from llmserver_operator import settings
from llmserver_operator.builders import common
from llmserver_cli.commands import prewarm


def test_prewarm_job_is_the_operator_job_minus_status_reporting() -> None:
    job = prewarm.build_job("Qwen/Q-GGUF", "q4.gguf", "main", "shared-cache", "hf:token", "ml", settings.Settings())
    assert job["kind"] == "Job" and job["metadata"]["namespace"] == "ml"
    assert job["metadata"]["name"].startswith("prewarm-download-")
    pod = job["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[:3] == ["download", "--repo", "Qwen/Q-GGUF"] and "--report-to" not in args
    assert args[args.index("--file") + 1] == "q4.gguf"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "shared-cache"
    assert "serviceAccountName" not in pod and pod["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"key": "token", "name": "hf", "optional": False}
    assert common.SERVER_LABEL not in job["metadata"]["labels"]
