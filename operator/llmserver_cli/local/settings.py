"""Where local mode keeps its files. Read once in the CLI entrypoints (env `LLMSERVER_CACHE_DIR`,
`LLMSERVER_STATE_DIR`), then passed down; nothing reads the environment at import time."""

from __future__ import annotations

import pathlib

import pydantic
import pydantic_settings

_BASE = pathlib.Path("~/.cache/llmserver").expanduser()


class LocalSettings(pydantic_settings.BaseSettings):
    """Paths shared by `llmserver up`, `download-model` and `list-loaded --local`."""

    model_config = pydantic_settings.SettingsConfigDict(env_prefix="LLMSERVER_", extra="ignore")

    cache_dir: pathlib.Path = pydantic.Field(
        _BASE / "models",
        description="The local model cache; laid out like the cluster cache (llmserver_api.paths).",
    )
    state_dir: pathlib.Path = pydantic.Field(
        _BASE / "local",
        description="Where a running `llmserver up` writes its state file, gateway config and logs.",
    )

    @pydantic.field_validator("cache_dir", "state_dir")
    @classmethod
    def _expand(cls, value: pathlib.Path) -> pathlib.Path:
        return value.expanduser().absolute()

    @property
    def state_file(self) -> pathlib.Path:
        """The JSON file `list-loaded --local` and `load-model/unload-model --local` read."""
        return self.state_dir / "state.json"

    @property
    def gateway_config(self) -> pathlib.Path:
        """The gateway's static config (docs/contracts.md), rewritten on every change."""
        return self.state_dir / "gateway.yaml"

    @property
    def log_dir(self) -> pathlib.Path:
        """One log file per process (runtime, downloader, gateway)."""
        return self.state_dir / "logs"
