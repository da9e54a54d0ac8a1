"""`python -m llmserver_operator`: runs the operator (settings from LLMSERVER_OPERATOR_* env)."""

from __future__ import annotations

import logging

import kopf

from llmserver_operator import handlers
from llmserver_operator import settings as settings_mod


def main() -> None:
    """Reads settings, registers the handlers on a fresh registry and runs kopf until stopped."""
    settings = settings_mod.Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry = kopf.OperatorRegistry()
    handlers.register(registry, apple=settings.apple_enabled)
    kopf.run(
        registry=registry,
        memo=handlers.make_memo(settings),
        standalone=settings.peering_name is None,
        peering_name=settings.peering_name,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
    )


if __name__ == "__main__":
    main()
