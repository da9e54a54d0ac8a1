"""The static config file: the contract's shape, errors that name the field, reload on change."""

from __future__ import annotations

import asyncio
import pathlib
import textwrap

import pytest

from llmserver_gateway import auth, config, table

CONTRACT_EXAMPLE = textwrap.dedent("""
    models:
      - name: tiny                    # the served model name clients send
        policy: LeastOutstanding      # or PrefixHash
        endpoints:
          - url: http://127.0.0.1:18081   # runtime base URL (without /v1)
            ready: true
            apiKey: optional-per-endpoint-key    # sent as Bearer (Mac runtimes)
      - name: gpt-4o-mini
        upstream:                     # Proxy mode
          url: https://provider.example/v1
          model: gpt-4o-mini          # upstream model name
          apiKeyEnv: PROVIDER_API_KEY # or apiKey: literal (tests only); never logged
    apiKeys:                          # optional; absent means no auth
      - key: sk-local-1               # or keyEnv: NAME
        models: ["*"]                 # models this key may use
        requestsPerMinute: 600
""")


def test_the_contract_example_parses() -> None:
    routes, keys = config.parse(CONTRACT_EXAMPLE, {"PROVIDER_API_KEY": "sk-provider"})
    tiny, proxied = routes
    assert tiny == table.Route(
        model="tiny",
        policy=table.Policy.LEAST_OUTSTANDING,
        endpoints=(table.Endpoint("http://127.0.0.1:18081", True, "optional-per-endpoint-key"),),
        source="config",
    )
    assert proxied.upstream == table.Upstream("https://provider.example/v1", "gpt-4o-mini", "sk-provider")
    assert keys == [auth.ApiKey("sk-local-1", None, 600)]
    assert "sk-provider" not in repr(proxied)  # keys stay out of reprs (and so out of logs)


def test_absent_api_keys_mean_no_auth_and_defaults_apply() -> None:
    routes, keys = config.parse("models:\n  - name: a\n    endpoints: [{url: 'http://h:1/'}]\n", {})
    assert keys is None
    assert routes[0].policy is table.Policy.LEAST_OUTSTANDING
    assert routes[0].endpoints == (table.Endpoint("http://h:1"),)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("models: [{name: a, policy: Random}]", {}, "models[0].policy"),
        ("models: [{name: a, endpoints: [{url: 'ftp://x'}]}]", {}, "models[0].endpoints[0].url"),
        ("models: [{name: a, upstream: {url: 'http://p/v1', apiKeyEnv: NOPE}}]", {}, "models[0].upstream.apiKeyEnv"),
        ("models: [{name: a}, {name: a}]", {}, "models[1].name"),
        ("models: [{name: a, endpoints: [{url: 'http://h:1'}], upstream: {url: 'http://p'}}]", {}, "models[0]"),
        ("models: [{name: a, endpoint: []}]", {}, "models[0].endpoint"),
        ("apiKeys: [{models: ['*']}]", {}, "apiKeys[0]"),
        ("apiKeys: [{key: k, requestsPerMinute: 0}]", {}, "apiKeys[0].requestsPerMinute"),
        ("- just a list", {}, "top level"),
        ("models: [name: a", {}, "not valid YAML"),
    ],
)
def test_bad_config_names_the_field(text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(text, env)
    assert message in str(caught.value)


def test_yaml_errors_do_not_quote_the_file() -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse("apiKeys:\n  - key: sk-secret-value\n   bad: [", {})
    assert "sk-secret-value" not in str(caught.value)
    assert "line" in str(caught.value)


async def test_reload_on_change_keeps_last_good_table(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("models: [{name: a, endpoints: [{url: 'http://h:1'}]}]\n")
    routes, keys = table.RoutingTable(), auth.KeyStore()
    source = config.StaticSource(path, routes, keys, environ={}, poll_seconds=0.02)
    source.load()
    assert [r.model for r in routes.routes()] == ["a"]
    task = asyncio.create_task(source.run())
    try:
        path.write_text("models: [{name: b, endpoints: [{url: 'http://h:2'}]}]\napiKeys: [{key: k}]\n")
        await _until(lambda: routes.get("b") is not None)
        assert routes.get("a") is None
        assert keys.enabled
        path.write_text("models: [{name: c, policy: Nope}]\n")  # broken edit: ignored
        await asyncio.sleep(0.2)
        assert routes.get("b") is not None
        path.unlink()  # removed: still serving
        await asyncio.sleep(0.1)
        assert routes.get("b") is not None
        path.write_text("")  # truncated by a writer that has not written yet: still serving
        await asyncio.sleep(0.2)
        assert routes.get("b") is not None
        path.write_text("models: []\n")
        await _until(lambda: routes.get("b") is None)
        assert not keys.enabled
    finally:
        task.cancel()


def test_missing_file_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    source = config.StaticSource(tmp_path / "nope.yaml", table.RoutingTable(), auth.KeyStore(), environ={})
    with pytest.raises(config.ConfigError, match="cannot read gateway config"):
        source.load()


async def _until(check, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
