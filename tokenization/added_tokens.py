"""Special-token roles and added tokens, as `transformers` 4.x exposes them.

`AddedToken` is the `tokenizers` class `transformers` itself re-exports; both
tokenizers accept it (or a plain string) in ``add_tokens``, in
``add_special_tokens`` and as a special-token argument. The roles
(``bos_token`` ... ``mask_token``, ``additional_special_tokens``) read back as
strings, may be ``None`` and can be set, by token or by id (``eos_token_id = 5``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tokenizers import AddedToken

from bert_core.errors import TokenizerError

__all__ = ["AddedToken", "SpecialTokensMixin", "SPECIAL_TOKENS_ATTRIBUTES", "SPECIAL_TOKEN_NAMES", "AddedTokenSplitter", "as_added_token"]

# transformers' order: all_special_tokens lists them in this order.
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
SPECIAL_TOKENS_ATTRIBUTES = (*SPECIAL_TOKEN_NAMES, "additional_special_tokens")
# transformers 5.x renamed additional_special_tokens to extra_special_tokens; both names work here.
_ALIASES = {"extra_special_tokens": "additional_special_tokens", "extra_special_tokens_ids": "additional_special_tokens_ids"}


def token_list(tokens: Any, argument: str) -> list[str | AddedToken]:
    """A string, an AddedToken or a sequence of them, as a list; empty strings dropped as transformers does."""
    items = [tokens] if isinstance(tokens, (str, AddedToken)) else list(tokens or ())
    for item in items:
        if not isinstance(item, (str, AddedToken)):
            raise TokenizerError(f"{argument}: expected str or AddedToken items, got {type(item).__name__} ({item!r})")
    return [item for item in items if str(item)]


def as_added_token(token: str | AddedToken, special: bool, content: str | None = None) -> AddedToken:
    """An AddedToken for ``token``: a string gets transformers' defaults (special ones not normalized).

    ``special=True`` marks an AddedToken special, as ``add_tokens(..., special_tokens=True)`` does.
    """
    if isinstance(token, str):
        return AddedToken(token if content is None else content, special=special, normalized=not special)
    return AddedToken(
        token.content if content is None else content, single_word=token.single_word, lstrip=token.lstrip,
        rstrip=token.rstrip, normalized=token.normalized, special=token.special or special,
    )  # fmt: skip


class SpecialTokensMixin:
    """The special-token roles, their ids, and ``add_special_tokens``.

    Each engine provides ``_add_tokens(tokens, special)`` (register the tokens,
    return how many new ids) and ``_special_tokens_changed()`` (rebuild what
    depends on the roles, e.g. the fast post-processor).
    """

    SPECIAL_TOKENS_ATTRIBUTES = list(SPECIAL_TOKENS_ATTRIBUTES)

    def _init_special_tokens(self, values: dict[str, Any]) -> None:
        self._special: dict[str, Any] = {name: None for name in SPECIAL_TOKEN_NAMES}
        self._special["additional_special_tokens"] = []
        for name, value in values.items():
            setattr(self, name, [] if value is None and name == "additional_special_tokens" else value)

    def __setattr__(self, name: str, value: Any) -> None:
        name = _ALIASES.get(name, name)
        if name in SPECIAL_TOKEN_NAMES:
            if value is not None and not isinstance(value, (str, AddedToken)):
                raise TokenizerError(f"{name} must be a str, an AddedToken or None, got {type(value).__name__}")
            self._special[name] = value
        elif name == "additional_special_tokens":
            self._special[name] = None if value is None else list({str(t): t for t in token_list(value, name)}.values())
        elif name.endswith("_token_id") and name[: -len("_id")] in SPECIAL_TOKEN_NAMES:
            setattr(self, name[: -len("_id")], None if value is None else self.convert_ids_to_tokens(value))
        elif name == "additional_special_tokens_ids":
            setattr(self, "additional_special_tokens", [self.convert_ids_to_tokens(i) for i in value])
        else:
            super().__setattr__(name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: the role attributes live in self._special.
        special = self.__dict__.get("_special")
        name = _ALIASES.get(name, name)
        if special is not None:
            if name in SPECIAL_TOKEN_NAMES:
                return None if special[name] is None else str(special[name])
            if name == "additional_special_tokens":
                return None if special[name] is None else [str(t) for t in special[name]]
            if name.endswith("_token_id") and name[: -len("_id")] in SPECIAL_TOKEN_NAMES:
                token = special[name[: -len("_id")]]
                return None if token is None else self.convert_tokens_to_ids(str(token))
            if name == "additional_special_tokens_ids":
                return self.convert_tokens_to_ids([str(t) for t in special["additional_special_tokens"] or ()])
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def special_tokens_map(self) -> dict[str, Any]:
        """Role -> token string for every role that is set."""
        return {name: (value if isinstance(value, str) else [str(t) for t in value]) for name, value in self._set_roles(str).items()}

    @property
    def special_tokens_map_extended(self) -> dict[str, Any]:
        """Role -> token, keeping AddedToken objects where they were given."""
        return self._set_roles(None)

    def _set_roles(self, convert: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in SPECIAL_TOKENS_ATTRIBUTES:
            value = self._special[name]
            if value is None or value == []:
                continue
            out[name] = [convert(t) if convert else t for t in value] if isinstance(value, list) else (convert(value) if convert else value)
        return out

    @property
    def all_special_tokens_extended(self) -> list[str | AddedToken]:
        seen: dict[str, Any] = {}
        for value in self.special_tokens_map_extended.values():
            for token in value if isinstance(value, list) else [value]:
                seen.setdefault(str(token), token)
        return list(seen.values())

    @property
    def all_special_tokens(self) -> list[str]:
        """Every special token string, roles first, without repeats."""
        return [str(t) for t in self.all_special_tokens_extended]

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def add_tokens(self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False) -> int:
        """Add tokens that are never split; returns how many new ids were created.

        ``AddedToken`` options (lstrip, rstrip, single_word, normalized) are
        honoured; with ``special_tokens=True`` they are skipped by
        ``decode(skip_special_tokens=True)``.
        """
        tokens = token_list(new_tokens, "add_tokens")
        return self._add_tokens(tokens, special_tokens) if tokens else 0

    def add_special_tokens(
        self, special_tokens_dict: dict[str, Any], replace_additional_special_tokens: bool = True,
        replace_extra_special_tokens: bool | None = None,
    ) -> int:  # fmt: skip
        """Set special-token roles (``{"bos_token": "<s>", "additional_special_tokens": [...]}``).

        ``additional_special_tokens`` replaces the current list unless
        ``replace_additional_special_tokens=False`` (the old tokens stay in
        the vocabulary either way). Returns how many new ids were created.
        """
        if replace_extra_special_tokens is not None:  # the transformers 5.x name
            replace_additional_special_tokens = replace_extra_special_tokens
        to_add: list[str | AddedToken] = []
        for role, value in special_tokens_dict.items():
            role = _ALIASES.get(role, role)
            if role not in SPECIAL_TOKENS_ATTRIBUTES:
                raise TokenizerError(f"add_special_tokens: unknown role {role!r} (expected one of {', '.join(SPECIAL_TOKENS_ATTRIBUTES)})")
            if role == "additional_special_tokens":
                if not isinstance(value, (list, tuple)):
                    raise TokenizerError(f"additional_special_tokens must be a list or tuple, got {type(value).__name__}")
                values = token_list(value, role)
                current = [] if replace_additional_special_tokens else self._special[role] or []
                fresh = [t for t in values if str(t) not in {str(c) for c in current}]
                setattr(self, role, [*current, *fresh])
                to_add.extend(values)
            else:
                if not isinstance(value, (str, AddedToken)):
                    raise TokenizerError(f"add_special_tokens: {role} must be a str or AddedToken, got {type(value).__name__}")
                setattr(self, role, value)
                to_add.append(value)
        added = self._add_tokens(to_add, True) if to_add else 0
        self._special_tokens_changed()
        return added

    def _add_tokens(self, tokens: list[str | AddedToken], special: bool) -> int:
        raise NotImplementedError

    def _special_tokens_changed(self) -> None:
        """Hook: the roles changed."""

    @property
    def max_len_single_sentence(self) -> int:
        """The longest single sequence that fits once ``[CLS]``/``[SEP]`` are added."""
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        """The longest pair (both sequences together) that fits with its three special tokens."""
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)


class AddedTokenSplitter:
    """Splits text around added tokens for the pure-Python tokenizer, as transformers' slow tokenizer.

    ``split(text)`` returns the pieces: added tokens on their own, the text in
    between with the whitespace an ``lstrip``/``rstrip`` token swallows
    removed. Matching is
    case-sensitive, as in transformers 5.x's ``BertTokenizerLegacy`` (4.x
    lower-cased the text first when ``do_lower_case``).
    """

    def __init__(self, tokens: dict[str, AddedToken]):
        self.tokens = tokens
        ordered = sorted(tokens, key=len, reverse=True)  # longest match first
        self.pattern = re.compile("(" + "|".join(map(re.escape, ordered)) + ")") if ordered else None

    def split(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"tokenize expects a string, got {type(text).__name__}")
        if self.pattern is None:
            return [text]
        parts = self.pattern.split(text)  # even indices: text, odd indices: a matched token
        pieces, text_run = [], parts[0]
        for i in range(1, len(parts), 2):
            match, after = parts[i], parts[i + 1]
            token = self.tokens[match]  # single_word is not honoured here, as in transformers' slow tokenizer
            pieces += [text_run.rstrip() if token.lstrip else text_run, match]
            text_run = after.lstrip() if token.rstrip else after
        pieces.append(text_run)
        return [p for p in pieces if p]
