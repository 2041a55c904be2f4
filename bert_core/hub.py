"""Resolve ``name_or_path`` (a local directory or a hub repo id) to local files.

Hub ids go through ``huggingface_hub``, which honours ``HF_HUB_OFFLINE``, the
standard cache (``HF_HOME`` / ``HF_HUB_CACHE`` / ``cache_dir``), ``revision`` and
``token``. Nothing here downloads unless asked for a hub id that is not cached.

:class:`PushToHubMixin` is the way back up: ``push_to_hub`` on every model and
tokenizer base class uploads what its ``save_pretrained`` writes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import TriBertError

__all__ = ["resolve_file", "is_local", "HubError", "PushToHubMixin"]


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


class PushToHubMixin:
    """``push_to_hub`` for any class with ``save_pretrained(directory, **kwargs)``, as in transformers 4.x.

    Added to the models' ``BertPreTrainedModel`` in each backend, to the
    tokenizers' ``BertTokenizerBase`` and to ``BertConfig``; the upload is exactly what
    ``save_pretrained`` writes (canonical ``config.json`` + safetensors for a
    model, the tokenizer files for a tokenizer), so the repo loads with
    ``from_pretrained`` in every backend and in ``transformers``.
    """

    def push_to_hub(
        self,
        repo_id: str,
        use_temp_dir: bool | None = None,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        max_shard_size: int | str | None = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        revision: str | None = None,
        commit_description: str | None = None,
        **save_kwargs: Any,
    ):
        """Save into a temporary folder and upload it to the hub repo ``repo_id`` (created if needed).

        Args:
            repo_id: ``"user/name"`` or ``"name"`` (the token's namespace).
            use_temp_dir: accepted for transformers compatibility; a temporary folder is always used.
            commit_message: defaults to ``"Upload model"`` / ``"Upload tokenizer"`` / ``"Upload config"``.
            private: visibility of a newly created repo (an existing repo keeps its own).
            token: hub token; defaults to the one ``hf auth login`` saved.
            max_shard_size: shard the weights above this size (models only).
            create_pr: open a pull request instead of committing to the branch.
            safe_serialization: must be true: tribert writes safetensors only.
            revision: branch to commit to (created from main if it does not exist); with
                ``create_pr``, the branch the pull request targets.
            commit_description: the commit's (or pull request's) description.
            **save_kwargs: passed on to ``save_pretrained``.

        Returns:
            huggingface_hub's ``CommitInfo`` (``commit_url``, ``oid``, ``pr_url``).

        Raises:
            ValueError: ``safe_serialization=False``.
            huggingface_hub.errors.HfHubHTTPError: the hub refused (no token, no write access, ...).
        """
        if not safe_serialization:
            raise ValueError("push_to_hub(safe_serialization=False): tribert saves safetensors only")
        from huggingface_hub import CommitOperationAdd, HfApi

        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision is not None and not revision.startswith("refs/pr"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        if max_shard_size is not None:
            save_kwargs["max_shard_size"] = max_shard_size
        if commit_message is None:  # transformers' defaults
            name = type(self).__name__
            commit_message = "Upload tokenizer" if "Tokenizer" in name else "Upload config" if "Config" in name else "Upload model"
        with tempfile.TemporaryDirectory(prefix="tribert-push-") as folder:
            self.save_pretrained(folder, **save_kwargs)
            # One commit of every file, as transformers does (create_commit, not upload_folder, whose
            # streamed multi-commit path may split it and refuses a pull request against a branch).
            files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
            operations = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
                          for p in files]  # fmt: skip
            return api.create_commit(repo_id, operations, commit_message=commit_message,
                                     commit_description=commit_description, revision=revision,
                                     create_pr=create_pr)  # fmt: skip
