"""Loading and saving tokenizers: vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json.

The files and keys are those `transformers` reads and writes, so a directory
saved here loads in `transformers` and the other way round.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tokenizers import AddedToken

from bert_core._io import atomic_write_text
from bert_core.errors import TokenizerError
from bert_core.hub import resolve_file

from .vocab import VOCAB_NAME, save_vocab

__all__ = ["TokenizerFilesMixin", "TOKENIZER_FILE", "TOKENIZER_CONFIG_FILE", "SPECIAL_TOKENS_MAP_FILE", "read_json"]

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
_ROLE_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "additional_special_tokens")

# tokenizer_config.json keys that become constructor arguments.
_INIT_KEYS = (
    "do_lower_case", "do_basic_tokenize", "never_split", "tokenize_chinese_chars", "strip_accents",
    "unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "additional_special_tokens",
    "model_max_length", "padding_side", "truncation_side", "clean_up_tokenization_spaces",
    "bos_token", "eos_token", "model_input_names", "split_special_tokens", "max_input_chars_per_word",
)  # fmt: skip


def read_json(path: Path) -> dict[str, Any]:
    """Parse a JSON object from ``path``, raising :class:`TokenizerError` naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TokenizerError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise TokenizerError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


# tokenizer_config.json keys that describe files or classes, not constructor arguments.
_NOT_INIT_KEYS = frozenset({
    "tokenizer_class", "added_tokens_decoder", "auto_map", "name_or_path", "processor_class", "tokenizer_file",
    "vocab_file", "extra_special_tokens", "backend", "is_local", "chat_template", "tokenizer_object", "vocab",
})  # fmt: skip


def _added_token(entry: Any) -> Any:
    """An added_tokens_decoder entry (a dict as saved by transformers) as an AddedToken."""
    if isinstance(entry, dict) and "content" in entry:
        keys = ("single_word", "lstrip", "rstrip", "normalized", "special")
        return AddedToken(entry["content"], **{k: bool(entry[k]) for k in keys if k in entry})
    return str(entry)


def _token_text(value: Any) -> Any:
    """Special tokens are saved either as strings or as AddedToken dicts."""
    if isinstance(value, dict) and "content" in value:
        return value["content"]
    if isinstance(value, list):
        return [_token_text(v) for v in value]
    return value


class TokenizerFilesMixin:
    """``from_pretrained`` / ``save_pretrained`` / ``save_vocabulary`` for both tokenizers."""

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **kwargs: Any,
    ):
        """Load from a directory, a hub repo id, or a ``vocab.txt`` / ``tokenizer.json`` file.

        Settings come from ``tokenizer_config.json`` and ``special_tokens_map.json``
        when present; ``kwargs`` override them (e.g. ``do_lower_case=False``).

        Raises:
            TokenizerError: no vocabulary file, or a corrupt file (named).
            HubError: a hub id that is neither cached nor reachable.
        """
        path = Path(name_or_path)
        files: dict[str, Path | None] = {}
        if path.is_file():
            files["tokenizer_file" if path.suffix == ".json" else "vocab_file"] = path
        else:
            hub = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token, required=False)
            files["vocab_file"] = resolve_file(name_or_path, VOCAB_NAME, **hub)
            files["tokenizer_file"] = resolve_file(name_or_path, TOKENIZER_FILE, **hub)
            config_path = resolve_file(name_or_path, TOKENIZER_CONFIG_FILE, **hub)
            map_path = resolve_file(name_or_path, SPECIAL_TOKENS_MAP_FILE, **hub)
            added_path = resolve_file(name_or_path, ADDED_TOKENS_FILE, **hub)
        if files.get("vocab_file") is None and files.get("tokenizer_file") is None:
            raise TokenizerError(f"no {VOCAB_NAME} or {TOKENIZER_FILE} found for {os.fspath(name_or_path)!r}")
        settings: dict[str, Any] = {}
        added: list[tuple[int, str, bool]] = []
        if not path.is_file():
            config = read_json(config_path) if config_path else {}
            settings = {key: _token_text(config[key]) for key in _INIT_KEYS if key in config}
            # Keys transformers stored from unknown __init__ keywords come back as init_kwargs.
            settings.update({k: v for k, v in config.items() if k not in settings and k not in _NOT_INIT_KEYS})
            for index, entry in (config.get("added_tokens_decoder") or {}).items():
                added.append((int(index), _added_token(entry), bool(isinstance(entry, dict) and entry.get("special"))))
            if map_path:
                settings.update({k: _token_text(v) for k, v in read_json(map_path).items() if k in _INIT_KEYS})
            if not added and added_path:  # folders saved before transformers 4.34 list added tokens only here
                specials = {str(t) for k, v in settings.items() if k in _ROLE_KEYS for t in (v if isinstance(v, list) else [v])}
                added = [(int(i), str(t), str(t) in specials) for t, i in read_json(added_path).items()]
        settings.update(kwargs)
        settings.setdefault("name_or_path", os.fspath(name_or_path))
        # Added tokens are restored in id order before the remaining additional
        # special tokens, so every token gets back the id it was saved with.
        extra_specials = settings.pop("additional_special_tokens", None)
        for key in ("vocab_file", "tokenizer_file"):  # explicit file keywords win over the folder's files
            if key in settings:
                files[key] = settings.pop(key)
        tokenizer = cls._from_files(files, settings)
        for _, token, special in sorted(added, key=lambda item: item[0]):
            tokenizer.add_tokens([token], special_tokens=special)
        if extra_specials is not None:
            tokenizer.add_special_tokens({"additional_special_tokens": list(extra_specials)})
        if added:  # as transformers: roles saved in added_tokens_decoder come back as AddedToken objects
            saved = {str(t): t for t in tokenizer.added_tokens_decoder.values()}
            for role, value in tokenizer.special_tokens_map_extended.items():
                if isinstance(value, str) and value in saved:
                    setattr(tokenizer, role, saved[value])
        return tokenizer

    @classmethod
    def _from_files(cls, files: dict[str, Path | None], settings: dict[str, Any]):
        raise NotImplementedError

    def _config_extras(self) -> dict[str, Any]:
        """Engine-specific tokenizer_config.json entries."""
        return {}

    def _base_vocab(self) -> dict[str, int]:
        raise NotImplementedError

    def _added_tokens(self) -> list[tuple[int, str, bool]]:
        """``(id, token, special)`` for tokens added on top of the vocabulary."""
        raise NotImplementedError

    def save_vocabulary(self, save_directory: str | os.PathLike, filename_prefix: str | None = None) -> tuple[str]:
        """Write the base vocabulary as ``vocab.txt`` (added tokens go to tokenizer_config.json)."""
        directory = Path(save_directory)
        if not directory.is_dir():
            raise TokenizerError(f"save_vocabulary: {directory} is not a directory")
        name = f"{filename_prefix}-{VOCAB_NAME}" if filename_prefix else VOCAB_NAME
        return (save_vocab(self._base_vocab(), directory / name),)

    def save_pretrained(
        self, save_directory: str | os.PathLike, legacy_format: bool | None = None, filename_prefix: str | None = None,
        push_to_hub: bool = False, **kwargs: Any,
    ) -> tuple[str, ...]:  # fmt: skip
        """Write the tokenizer files into ``save_directory`` (created if needed); returns their paths.

        ``legacy_format`` as in transformers: ``None`` writes ``vocab.txt`` and
        (fast tokenizer) ``tokenizer.json``; ``True`` only ``vocab.txt``;
        ``False`` only ``tokenizer.json`` (fast tokenizer only). The configs
        are always written. ``filename_prefix`` prefixes every file name.
        """
        if push_to_hub:
            raise TokenizerError("save_pretrained(push_to_hub=True) is not supported here: save, then upload the folder")
        if legacy_format is False and not getattr(self, "is_fast", False):
            raise TokenizerError("legacy_format=False writes tokenizer.json, which only BertTokenizerFast can save")
        directory = Path(save_directory)
        if directory.is_file():
            raise TokenizerError(f"save_pretrained: {directory} is a file, expected a directory")
        directory.mkdir(parents=True, exist_ok=True)
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        config: dict[str, Any] = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "strip_accents": self.strip_accents,
            **self.special_tokens_map,
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            **self._config_extras(),
            "added_tokens_decoder": {
                str(index): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                             "single_word": t.single_word, "special": t.special}  # fmt: skip
                for index, t in self.added_tokens_decoder.items()
            },
        }
        for key, value in getattr(self, "init_kwargs", {}).items():  # unknown __init__ keywords, as transformers saves them
            if key not in config and key not in _NOT_INIT_KEYS and _is_json(value):
                config[key] = value
        written = [
            str(atomic_write_text(directory / (prefix + TOKENIZER_CONFIG_FILE), json.dumps(config, indent=2, ensure_ascii=False) + "\n")),
            str(atomic_write_text(directory / (prefix + SPECIAL_TOKENS_MAP_FILE), json.dumps(self.special_tokens_map, indent=2, ensure_ascii=False) + "\n")),
        ]
        if legacy_format is not False:
            written.extend(self.save_vocabulary(directory, filename_prefix))
            beyond = {t.content: i for i, t in self.added_tokens_decoder.items() if i >= self.vocab_size}
            if beyond:  # as transformers 4.x: the tokens past vocab.txt, for readers of the legacy files
                text = json.dumps(beyond, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
                written.append(str(atomic_write_text(directory / (prefix + ADDED_TOKENS_FILE), text)))
        if legacy_format is not True:
            written.extend(self._write_engine_files(directory, prefix))
        return tuple(written)

    def _write_engine_files(self, directory: Path, prefix: str = "") -> list[str]:
        return []


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
