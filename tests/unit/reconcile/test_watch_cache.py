"""The watch cache: late or older copies never replace what a pass already wrote or saw deleted."""

from __future__ import annotations

from typing import Any

from llmserver_operator import watch_cache


def obj(name: str, uid: str, version: int, **labels: str) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": name, "namespace": "ns", "uid": uid,
                                            "resourceVersion": str(version), "labels": labels}}


def test_an_older_version_of_the_same_object_is_ignored() -> None:
    cache = watch_cache.WatchCache(["Service"])
    cache.store(obj("a", "u1", 5))  # our write's answer
    cache.store(obj("a", "u1", 3))  # the watch's event from before it, arriving late
    assert cache.get("Service", "ns", "a")["metadata"]["resourceVersion"] == "5"


def test_a_deleted_object_stays_gone_and_a_new_one_of_its_name_is_kept() -> None:
    cache = watch_cache.WatchCache(["Service"])
    cache.store(obj("a", "u1", 3))
    cache.forget(obj("a", "u1", 4))
    cache.store(obj("a", "u1", 3))  # a late copy of the deleted object
    assert cache.get("Service", "ns", "a") is None
    cache.store(obj("a", "u2", 7))  # recreated
    cache.forget(obj("a", "u1", 4))  # the old object's DELETED handled after the new one was seen
    assert cache.get("Service", "ns", "a")["metadata"]["uid"] == "u2"


def test_reads_are_copies_and_lists_match_every_label() -> None:
    cache = watch_cache.WatchCache(["Service"])
    cache.store(obj("a", "u1", 1, app="x", tier="web"))
    cache.store(obj("b", "u2", 2, app="x"))
    cache.store({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}})  # not a kept kind
    assert [o["metadata"]["name"] for o in cache.list("Service", "ns", {"app": "x", "tier": "web"})] == ["a"]
    assert cache.get("Pod", "ns", "p") is None and not cache.covers("Pod")
    cache.get("Service", "ns", "a")["metadata"]["labels"]["app"] = "changed"
    assert cache.get("Service", "ns", "a")["metadata"]["labels"]["app"] == "x"
