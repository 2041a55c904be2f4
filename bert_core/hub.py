"""Resolve ``name_or_path`` (a local directory or a hub repo id) to local files.

Hub ids go through ``huggingface_hub``, which honours ``HF_HUB_OFFLINE``, the
standard cache (``HF_HOME`` / ``HF_HUB_CACHE`` / ``cache_dir``), ``revision`` and
``token``. Nothing here downloads unless asked for a hub id that is not cached.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import TriBertError

__all__ = ["resolve_file", "is_local", "HubError"]


class HubError(TriBertError, OSError):
    """A file could not be found locally or on the hub (names the repo and file)."""


def is_local(name_or_path: str | os.PathLike) -> bool:
    """True when ``name_or_path`` is an existing directory or file on disk."""
    return Path(name_or_path).exists()


def resolve_file(
    name_or_path: str | os.PathLike,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    required: bool = True,
) -> Path | None:
    """Path of ``filename`` inside a local directory or a hub repo.

    Returns ``None`` when the file does not exist and ``required`` is false.

    Raises:
        HubError: the directory or repo lacks the file (``required``), the repo id
            is malformed, or the hub cannot be reached and nothing is cached.
    """
    local = Path(name_or_path)
    if local.is_dir():
        candidate = local / filename
        if candidate.is_file():
            return candidate
        if required:
            raise HubError(f"{filename} not found in directory {local}")
        return None
    if local.exists():
        raise HubError(f"expected a directory or hub repo id, got the file {local}")

    repo_id = str(name_or_path)
    if repo_id.count("/") > 1 or repo_id.startswith((".", "/", "~")):
        raise HubError(f"{repo_id!r} is neither an existing directory nor a valid hub repo id")

    import huggingface_hub as hf
    from huggingface_hub import errors as hf_errors

    try:
        path = hf.hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
        )
        return Path(path)
    except hf_errors.LocalEntryNotFoundError:  # before EntryNotFoundError: it may subclass it
        # Offline (local_files_only or HF_HUB_OFFLINE) and not cached: the file
        # may simply not exist in the repo, so only complain if it is required.
        if required:
            raise HubError(
                f"{filename} of {repo_id!r} is not in the local cache and the hub is not reachable "
                f"(offline mode or no network); download it first or pass a local directory"
            ) from None
        return None
    except hf_errors.EntryNotFoundError:
        if required:
            raise HubError(f"{filename} not found in hub repo {repo_id!r} (revision {revision or 'main'})") from None
        return None
    except hf_errors.RepositoryNotFoundError:
        raise HubError(f"hub repo {repo_id!r} not found (private repos need token=...)") from None
    except hf_errors.RevisionNotFoundError:
        raise HubError(f"revision {revision!r} not found in hub repo {repo_id!r}") from None
    except hf_errors.HFValidationError as exc:
        raise HubError(f"{repo_id!r} is neither an existing directory nor a valid hub repo id ({exc})") from None
    except OSError as exc:
        raise HubError(f"could not fetch {filename} from {repo_id!r}: {exc}") from None
