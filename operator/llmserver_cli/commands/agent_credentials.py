"""`llmserver agent-credentials NODE`: run by an admin, once per Mac (and again to re-issue).

Creates the Mac's own ServiceAccount and the RBAC that names only its objects, pre-registers its
AppleNode, Lease and key Secret (an agent may update them, never create), and writes a kubeconfig
holding a first token for that account; copy it to the Mac and run `llmserver agent --kubeconfig`.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import click

from llmserver_cli import cluster
from llmserver_cli.apple import credentials, token_refresh
from llmserver_operator.apple import identity


class _NoDiscovery:
    """Paths come from the manifests (credentials.object_path): the DynamicClient needs no discovery."""

    def __init__(self, client: object, cache_file: object) -> None:
        del client, cache_file


def _message(error: Exception) -> str:
    """The API server's message for either client's error type."""
    summary = getattr(error, "summary", None)
    return str(summary()) if callable(summary) else cluster.api_message(error)


@click.command("agent-credentials")
@click.argument("node")
@click.option("--address", required=True, help="IP address the cluster reaches this Mac on (pre-registers the AppleNode).")
@click.option("--namespace", default="llmserver-system", show_default=True,
              help="The agents' namespace (the chart's release namespace).")
@click.option("--duration", type=click.IntRange(600), default=86400, show_default=True,
              help="Seconds the first token is valid; the agent requests a new one at 80% of that.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=pathlib.Path),
              help="Where to write the Mac's kubeconfig [default: applenode-NODE.kubeconfig].")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="The admin's kubeconfig [default: $KUBECONFIG].")
@click.option("--context", help="Kubeconfig context [default: the current context].")
def command(node: str, address: str, namespace: str, duration: int, output: pathlib.Path | None,
            kubeconfig: str | None, context: str | None) -> None:
    """Create the Mac NODE's own identity and write the kubeconfig its agent runs with."""
    import kubernetes  # imported here: `--help` never pays for it

    api = cluster.Cluster(cluster.Target(kubeconfig, context, namespace))

    dynamic = kubernetes.dynamic.DynamicClient(api.api_client, discoverer=_NoDiscovery)

    def call(method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        response = dynamic.request(method.lower(), path, body=body, serialize=False)
        return json.loads(response.data or b"{}")

    api_errors = (kubernetes.dynamic.exceptions.DynamicApiError, kubernetes.client.exceptions.ApiException)
    account = identity.account_name(node)
    try:
        lines = credentials.provision(call, node, namespace, address, api_errors[0], lambda exc: int(exc.status or 0))
        token = token_refresh.token_request(api.api_client)(namespace, account, duration)
    except api_errors as error:
        raise cluster.ClusterError(f"credentials for AppleNode {node}: {_message(error)}") from error
    config = api.api_client.configuration
    ca_pem = pathlib.Path(config.ssl_ca_cert).read_bytes() if config.ssl_ca_cert else None
    target = output or pathlib.Path(f"{account}.kubeconfig")
    credentials.write_private(target, credentials.build_kubeconfig(
        config.host, ca_pem, not config.verify_ssl, node, namespace, token))
    for line in lines:
        click.echo(line)
    click.echo(f"wrote {target} (mode 0600; token valid {duration}s, refreshed by the agent)")
    click.echo(f"on the Mac: llmserver agent --name {node} --address {address} --namespace {namespace} "
               f"--kubeconfig {target.name}")
