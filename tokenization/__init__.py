"""BERT tokenizers, framework-neutral.

`BertTokenizer` is pure Python; `BertTokenizerFast` runs on the `tokenizers`
library and adds offsets and word ids. Both give the ids `transformers` gives
and return a :class:`BatchEncoding`; ``return_tensors="pt"|"tf"|"jax"``
imports that framework only when asked.
"""

from bert_core._version import __version__  # noqa: F401  (one version for every package)

from .added_tokens import AddedToken
from .auto import AutoTokenizer
from .base import BertTokenizerBase
from .basic import BasicTokenizer, WordpieceTokenizer
from .batch_encoding import BatchEncoding, CharSpan, TokenSpan
from .fast import BertTokenizerFast
from .slow import BertTokenizer
from .vocab import load_vocab, save_vocab

__all__ = [
    "AddedToken",
    "AutoTokenizer",
    "BasicTokenizer",
    "BatchEncoding",
    "BertTokenizer",
    "BertTokenizerBase",
    "BertTokenizerFast",
    "CharSpan",
    "TokenSpan",
    "WordpieceTokenizer",
    "load_vocab",
    "save_vocab",
]
