"""The autoscaler's measurement over HTTP: two stand-in gateway replicas on loopback, found through the
gateway Service's EndpointSlices in the API emulator, give one sum per server and one correct desired
count; an endpoint that is not ready is not asked, and a ready one that does not answer makes the
round incomplete (no scale-down) instead of counting as zero."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from llmserver_api import elastic
from llmserver_operator import kube as kube_mod
from llmserver_operator import metrics as metrics_mod
from llmserver_operator import watch_cache
from llmserver_operator.autoscaler import decision, gateways, loop
from testkit import emulator, gateway_load, ports

pytestmark = pytest.mark.timeout(60)


def autoscaler(kube: emulator.KubeEmulator) -> loop.Autoscaler:
    client = kube_mod.Kube(kube_mod.configuration(kube.kubeconfig, pool_size=2))
    return loop.Autoscaler(client, watch_cache.WatchCache(["LLMServer"]), metrics_mod.OperatorMetrics(),
                           gateways.ServiceRef(gateway_load.GATEWAY_NS, gateway_load.GATEWAY), timeout=0.5)


async def measure(scaler: loop.Autoscaler) -> gateways.Load | None:
    async with aiohttp.ClientSession() as session:
        return await scaler.measure(session)


def test_two_gateway_replicas_give_one_sum_and_one_desired_count(load_servers: gateway_load.LoadServers) -> None:
    first, second = load_servers.start(), load_servers.start()
    first.set("ml/chat", 6, held=1)
    first.set("static/local", 50)  # a local-mode route: no LLMServer to scale
    second.set("ml/chat", 5)
    second.set("ml/embed", 2)
    with emulator.KubeEmulator() as kube:
        gateway_load.publish(kube, "gw-a", first.port)
        gateway_load.publish(kube, "gw-b", second.port)
        gateway_load.publish(kube, "gw-c", ports.free_port(), ready=False)  # a terminating replica: not asked
        gateway_load.publish(kube, "other", first.port, service="something-else")  # another Service's slice
        load = asyncio.run(measure(autoscaler(kube)))
    assert load is not None and load.complete and (load.asked, load.answered) == (2, 2)
    assert load.servers == {"ml/chat": gateways.ServerLoad(11, 1), "ml/embed": gateways.ServerLoad(2, 0)}
    assert (first.asked, second.asked) == (1, 1)

    rule = decision.Policy.of(elastic.Autoscaling(min_replicas=0, max_replicas=10, target_in_flight=4))
    chat = load.servers["ml/chat"]
    decided, _ = decision.decide(rule, 1, decision.Memory(), 0.0, decision.Demand(chat.in_flight, chat.held))
    assert (decided.desired, decided.replicas, decided.direction) == (3, 3, "up")  # ceil(11 / 4), not ceil(6 / 4)


def test_a_gateway_that_does_not_answer_makes_the_round_incomplete(load_servers: gateway_load.LoadServers) -> None:
    good, broken = load_servers.start(), load_servers.start()
    good.set("ml/chat", 3)
    broken.status = 500
    with emulator.KubeEmulator() as kube:
        gateway_load.publish(kube, "gw-a", good.port)
        gateway_load.publish(kube, "gw-b", broken.port)
        gateway_load.publish(kube, "gw-c", ports.free_port())  # ready, but nothing listens
        scaler = autoscaler(kube)
        load = asyncio.run(measure(scaler))
        assert load is not None and not load.complete and (load.asked, load.answered) == (3, 1)
        assert load.servers == {"ml/chat": gateways.ServerLoad(3, 0)}
        good.status = 503
        assert asyncio.run(measure(scaler)) is None  # none answered: nothing measured


def test_no_gateway_endpoints_measure_nothing(load_servers: gateway_load.LoadServers) -> None:
    with emulator.KubeEmulator() as kube:
        assert asyncio.run(measure(autoscaler(kube))) is None
