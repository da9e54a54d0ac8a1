"""One identity per Mac: what a Mac's ServiceAccount may do under the RBAC the identity builders
make (for two Macs, each with a placed server) together with the chart's own RBAC, evaluated
offline (testkit.rbac): its own objects only; never another Mac's key, Lease or AppleNode, never
the gateway's keys."""

from __future__ import annotations

import llmserver_api
import pytest
from llmserver_operator.apple import identity
from testkit import helm, rbac

AGENTS = helm.NAMESPACE  # the agents' namespace is the release namespace
GATEWAY_KEYS = f"{helm.RELEASE}-llmserver-gateway-api-keys"
G = llmserver_api.GROUP


def _server(name: str, namespace: str) -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({"metadata": {"name": name, "namespace": namespace},
                                                   "spec": {"model": name, "backend": "mlx",
                                                            "source": {"pvc": {"claimName": "m"}}}})


@pytest.fixture(scope="module")
def world() -> list[dict]:
    """The chart (default values) plus two provisioned Macs, m1 serving ml/a and m2 serving ml/b."""
    objects = helm.template()
    for node, server in (("m1", _server("a", "ml")), ("m2", _server("b", "ml"))):
        objects += identity.build_access(node, AGENTS)
        objects += [identity.build_status_role(server), identity.build_status_binding(server, node, AGENTS)]
    return objects


def _m1(world: list[dict]) -> set[rbac.Grant]:
    return rbac.grants(world, identity.account_name("m1"), AGENTS)


ALLOWED = [
    rbac.Request("get", G, "applenodes", None, "m1"),
    rbac.Request("update", G, "applenodes", None, "m1"),
    rbac.Request("patch", G, "applenodes/status", None, "m1"),
    rbac.Request("get", "coordination.k8s.io", "leases", AGENTS, "applenode-m1"),
    rbac.Request("update", "coordination.k8s.io", "leases", AGENTS, "applenode-m1"),
    rbac.Request("get", "", "secrets", AGENTS, "applenode-m1-key"),
    rbac.Request("update", "", "secrets", AGENTS, "applenode-m1-key"),
    rbac.Request("create", "", "serviceaccounts/token", AGENTS, "applenode-m1"),
    rbac.Request("list", G, "llmservers", None, None),
    rbac.Request("patch", G, "llmservers/status", "ml", "a"),
]
DENIED = [
    rbac.Request("get", "", "secrets", AGENTS, "applenode-m2-key"),  # another Mac's key
    rbac.Request("update", "", "secrets", AGENTS, "applenode-m2-key"),
    rbac.Request("get", "", "secrets", AGENTS, GATEWAY_KEYS),  # the gateway's keys
    rbac.Request("list", "", "secrets", AGENTS, None),
    rbac.Request("create", "", "secrets", AGENTS, None),
    rbac.Request("get", "", "secrets", "ml", "hf-token"),
    rbac.Request("update", G, "applenodes", None, "m2"),  # another AppleNode
    rbac.Request("patch", G, "applenodes", None, "m2"),
    rbac.Request("patch", G, "applenodes/status", None, "m2"),
    rbac.Request("create", G, "applenodes", None, None),
    rbac.Request("delete", G, "applenodes", None, "m1"),
    rbac.Request("update", "coordination.k8s.io", "leases", AGENTS, "applenode-m2"),  # another Mac's heartbeat
    rbac.Request("create", "coordination.k8s.io", "leases", AGENTS, None),
    rbac.Request("create", "", "serviceaccounts/token", AGENTS, "applenode-m2"),  # a token for another Mac
    rbac.Request("create", "", "serviceaccounts/token", AGENTS, f"{helm.RELEASE}-llmserver-gateway"),
    rbac.Request("patch", G, "llmservers/status", "ml", "b"),  # a server placed elsewhere
    rbac.Request("patch", G, "llmservers/status", "other", "a"),  # same name, other namespace
    rbac.Request("patch", G, "llmservers", "ml", "a"),  # the spec
    rbac.Request("update", "discovery.k8s.io", "endpointslices", "ml", "a-apple"),
]


@pytest.mark.parametrize("request_", ALLOWED, ids=str)
def test_a_mac_may_do_what_its_agent_does(world: list[dict], request_: rbac.Request) -> None:
    assert rbac.allowed(request_, _m1(world))


@pytest.mark.parametrize("request_", DENIED, ids=str)
def test_a_mac_cannot_reach_other_macs_or_the_gateways_keys(world: list[dict], request_: rbac.Request) -> None:
    assert not rbac.allowed(request_, _m1(world))


def test_every_grant_is_named_except_listing_servers(world: list[dict]) -> None:
    unnamed = {(g.verb, g.resource) for g in _m1(world) if not g.names}
    assert unnamed == {("list", "llmservers")}  # a list cannot be narrowed by name
    assert {g.namespace for g in _m1(world)} == {None, AGENTS, "ml"}


def test_the_status_grant_follows_the_server_to_its_node() -> None:
    server = _server("a", "ml")
    moved = [identity.build_status_role(server), identity.build_status_binding(server, "m2", AGENTS)]
    request = rbac.Request("patch", G, "llmservers/status", "ml", "a")
    assert rbac.allowed(request, rbac.grants(moved, "applenode-m2", AGENTS))
    assert not rbac.allowed(request, rbac.grants(moved, "applenode-m1", AGENTS))
    assert moved[1]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "llmserver-operator"  # pruned with the server


def test_the_agent_may_update_but_not_create_what_registration_precreates() -> None:
    """Every object the agent writes exists beforehand (create is never narrowed by name)."""
    precreated = {(o["kind"], o["metadata"]["name"]) for o in identity.build_registration("m1", AGENTS, "10.0.0.5")}
    assert precreated == {("AppleNode", "m1"), ("Lease", "applenode-m1"), ("Secret", "applenode-m1-key")}
    node = next(o for o in identity.build_registration("m1", AGENTS, "10.0.0.5") if o["kind"] == "AppleNode")
    llmserver_api.AppleNode.model_validate(node)  # the API accepts the placeholder


def test_the_chart_grants_mac_agents_nothing(world: list[dict]) -> None:
    """No shared agent account: the chart's objects bind nothing to any applenode-* account."""
    chart = helm.template()
    for node in ("m1", "m2"):
        assert rbac.grants(chart, identity.account_name(node), AGENTS) == set()
    assert not [o for o in chart if "apple-agent" in o["metadata"]["name"]]
