"""`AutoTokenizer`: the fast BERT tokenizer unless asked otherwise."""

from __future__ import annotations

import os
from typing import Any

from .fast import BertTokenizerFast
from .slow import BertTokenizer

__all__ = ["AutoTokenizer"]


class AutoTokenizer:
    """Picks the tokenizer class for a checkpoint, as `transformers.AutoTokenizer` does for BERT."""

    def __init__(self) -> None:
        raise TypeError("AutoTokenizer is not instantiated; use AutoTokenizer.from_pretrained(name_or_path)")

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, use_fast: bool = True, **kwargs: Any):
        """Load :class:`BertTokenizerFast` (``use_fast=True``, default) or :class:`BertTokenizer`.

        ``kwargs`` are those of ``from_pretrained`` on the chosen class.
        """
        return (BertTokenizerFast if use_fast else BertTokenizer).from_pretrained(name_or_path, **kwargs)
