"""What a Hugging Face repo holds, as detection sees it: asked of the Hub through huggingface-hub.

Shared by `llmserver inspect` and the operator's `backend: auto` resolution: the file list and tags
from `model_info`, then only the small config files detection reads. Errors come out as one line
naming the repo, never the token.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

from llmserver_api import detection


class HubError(Exception):
    """The Hub could not answer: unreachable, unknown repo, gated, bad revision. One clear line."""


def _is_transport_error(error: BaseException) -> bool:
    """Connection refused, DNS failure, timeout: across requests- and httpx-based hub clients."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"TransportError", "ConnectionError", "RequestError", "TimeoutException", "ConnectTimeout"})


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def hub_model_files(repo: str, revision: str = "main", token: str | None = None, file: str | None = None,
                    endpoint: str | None = None) -> detection.ModelFiles:
    """The repo as detection sees it: its file list and tags, plus the CONFIG_FILES it holds.

    Raises HubError with a message that names the repo (never the token). Blocking: callers on
    an event loop run it in a thread.
    """
    import huggingface_hub  # imported here: `llmserver --help` and local paths never pay for it
    from huggingface_hub import errors

    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None  # read per call: huggingface-hub reads it at import
    where = endpoint or "https://huggingface.co"
    api = huggingface_hub.HfApi(endpoint=endpoint, token=token)
    try:
        info = api.model_info(repo, revision=revision)
        files = [sibling.rfilename for sibling in info.siblings or []] or api.list_repo_files(repo, revision=revision)
        configs: dict[str, Any] = {}
        for name in detection.CONFIG_FILES:
            if name in files:
                local = api.hf_hub_download(repo, name, revision=revision)
                configs[name] = json.loads(pathlib.Path(local).read_text(encoding="utf-8"))
    except errors.GatedRepoError as error:
        raise HubError(f"{repo} is gated: accept its license on the Hub and set HF_TOKEN") from error
    except errors.RepositoryNotFoundError as error:
        hint = "" if token else " (a private or gated repo needs HF_TOKEN)"
        raise HubError(f"{repo} was not found on {where}{hint}") from error
    except errors.RevisionNotFoundError as error:
        raise HubError(f"{repo} has no revision {revision!r}") from error
    except errors.OfflineModeIsEnabled as error:
        raise HubError(f"cannot ask the Hub about {repo}: HF_HUB_OFFLINE is set; pass a local path instead") from error
    except errors.HfHubHTTPError as error:
        raise HubError(_scrub(f"the Hub answered an error for {repo}: {error}", token).splitlines()[0]) from error
    except ValueError as error:  # a config file that is not JSON
        raise HubError(f"{repo}: a config file is not valid JSON ({error})") from error
    except Exception as error:
        if _is_transport_error(error):
            raise HubError(f"the Hugging Face Hub is unreachable at {where} ({type(error).__name__}): "
                           "check the network or HF_ENDPOINT, or pass a local path") from error
        raise
    return detection.ModelFiles(
        files=tuple(files),
        configs=configs,
        name=repo,
        selected_file=file,
        tags=tuple(info.tags or ()),
        library_name=info.library_name,
    )
