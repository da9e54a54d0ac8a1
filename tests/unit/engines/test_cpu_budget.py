"""The CPU budget of in-process engines: a pod's cgroup quota caps the threads, the node's cores do not."""

from __future__ import annotations

import pathlib

import pytest

from llmserver_backends import cpu_budget, llama_cpp


def _v2(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    (tmp_path / "cpu.max").write_text(text)
    return tmp_path


def test_cgroup_v2_quota_caps_and_rounds_up(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_budget, "affinity_cpus", lambda: 64)
    assert cpu_budget.quota_cpus(_v2(tmp_path, "250000 100000\n")) == 2.5
    assert cpu_budget.cpu_budget(tmp_path) == 3
    assert cpu_budget.cpu_budget(_v2(tmp_path, "max 100000\n")) == 64  # unlimited
    assert cpu_budget.cpu_budget(_v2(tmp_path, "10000 100000\n")) == 1  # 0.1 CPU still gets one thread


def test_cgroup_v1_quota_and_no_cgroup(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_budget, "affinity_cpus", lambda: 8)
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_budget.cpu_budget(tmp_path) == 2
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no limit"
    assert cpu_budget.cpu_budget(tmp_path) == 8
    assert cpu_budget.cpu_budget(tmp_path / "missing") == 8
    monkeypatch.setattr(cpu_budget, "affinity_cpus", lambda: 2)
    assert cpu_budget.cpu_budget(_v2(tmp_path, "800000 100000")) == 2  # a cpuset smaller than the quota wins


def test_llama_cpp_default_threads_follow_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_cpp.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(cpu_budget, "cpu_budget", lambda root=cpu_budget.CGROUP_ROOT: 2)
    assert llama_cpp.default_threads() == 2  # not llama.cpp's 32 (half the node's cores)
    monkeypatch.setattr(cpu_budget, "cpu_budget", lambda root=cpu_budget.CGROUP_ROOT: 64)
    assert llama_cpp.default_threads() == 32
