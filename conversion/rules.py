"""The one table of name and layout rules between the canonical checkpoint and each framework.

Module paths are the same in all three frameworks
(``bert.encoder.layer.3.attention.self.query``); only the *leaf* name and the
layout differ. A framework key here is that module path, dot-separated, plus
the framework's own leaf name:

=========================  ============  ============  ===========  =========
module (last component)    torch leaf    keras leaf    flax leaf    layout
=========================  ============  ============  ===========  =========
``LayerNorm``              ``weight``    ``gamma``     ``scale``    same
``LayerNorm``              ``bias``      ``beta``      ``bias``     same
``*_embeddings`` and
``distance_embedding``     ``weight``    ``embeddings`` ``embedding`` same
any other (dense)          ``weight``    ``kernel``    ``kernel``   transposed
any other                  ``bias``      ``bias``      ``bias``     same
=========================  ============  ============  ===========  =========

Backends express their parameters with these keys (``bert_flax`` joins its
param-tree path with dots, ``bert_tf`` walks its layers by attribute name) and
call :func:`to_framework` / :func:`from_framework`; nothing else in tribert
knows a framework's naming.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from bert_core.errors import CheckpointError
from bert_core.heads import TIED_KEYS as _HEAD_TIED_KEYS

__all__ = [
    "FRAMEWORKS",
    "LeafRule",
    "LEAF_RULES",
    "LEGACY_LEAF_NAMES",
    "LEGACY_TF_REWRITES",
    "LEGACY_TF_SKIP",
    "TF_H5_SPELLINGS",
    "BASE_MODEL_PREFIX",
    "TIED_KEYS",
    "IGNORED_KEY_PATTERNS",
    "to_framework_key",
    "from_framework_key",
    "to_framework",
    "from_framework",
]

FRAMEWORKS = ("torch", "keras", "flax")

#: The prefix of the encoder's parameters inside a head model (``bert.embeddings...``).
BASE_MODEL_PREFIX = "bert"

#: Target keys that may be absent from a checkpoint because they share storage
#: with another key (the MLM decoder is tied to the word embeddings).
#: Tied keys are a fact about the heads; their one home is :data:`bert_core.heads.TIED_KEYS`.
TIED_KEYS = _HEAD_TIED_KEYS

#: Checkpoint keys that are buffers, not weights: read without complaint, never loaded.
IGNORED_KEY_PATTERNS = (re.compile(r"(^|\.)embeddings\.position_ids$"),)

#: Leaf names written by TF-era checkpoints, mapped to canonical leaves.
LEGACY_LEAF_NAMES = {"gamma": "weight", "beta": "bias"}

#: Legacy TensorFlow variable names -> framework keys in the "keras" naming above,
#: applied in order (regex, replacement) after "/" becomes ".". Two sources:
#: ``tf_h5``: `transformers` 4.x ``tf_model.h5`` (``tf_bert_for_x/bert/encoder/layer_._0/...:0``);
#: ``google_tf1``: the original Google checkpoints (``bert/encoder/layer_0/...``).
LEGACY_TF_REWRITES: dict[str, tuple[tuple[str, str], ...]] = {
    "tf_h5": (
        (r":\d+$", ""),                                   # variable suffix
        (r"^[^.]+\.", ""),                                # the Keras model's own name scope
        (r"(^|\.)[a-z]+___(cls)(?=\.)", r"\1\2"),         # mlm___cls / nsp___cls -> cls
        (r"\.layer_\._(\d+)\.", r".layer.\1."),             # layer_._3 -> layer.3
        (r"word_embeddings\.weight$", "word_embeddings.embeddings"),
    ),
    "google_tf1": (
        (r"\.layer_(\d+)\.", r".layer.\1."),                 # layer_3 -> layer.3
        (r"_embeddings$", "_embeddings.embeddings"),         # the variable is the table itself
        (r"^cls\.predictions\.output_bias$", "cls.predictions.bias"),
        # Stored [out, in] already, so it bypasses the kernel transpose: emit the canonical key.
        (r"^cls\.seq_relationship\.output_weights$", "=cls.seq_relationship.weight"),
        (r"^cls\.seq_relationship\.output_bias$", "cls.seq_relationship.bias"),
    ),
}

#: The other direction for ``tf_h5``: a "keras"-named key with "/" for "." -> its 4.x
#: ``tf_model.h5`` spelling (without the model scope and ``:0``), applied in order.
#: ``LEGACY_TF_REWRITES["tf_h5"]`` undoes each of these.
TF_H5_SPELLINGS: tuple[tuple[str, str], ...] = (
    (r"word_embeddings/embeddings$", "word_embeddings/weight"),
    (r"(^|/)layer/(\d+)/", r"\1layer_._\2/"),            # layer.3 -> layer_._3
    (r"^cls/(predictions)/", r"mlm___cls/\1/"),            # 4.x's MLM head layer
    (r"^cls/(seq_relationship)/", r"nsp___cls/\1/"),       # 4.x's NSP head layer
)

#: Legacy TF variables that are optimizer state or bookkeeping, never weights.
LEGACY_TF_SKIP = re.compile(r"(adam_[mv]|AdamWeightDecayOptimizer(_\d+)?|global_step|_power|Momentum)$")


@dataclass(frozen=True)
class LeafRule:
    """How one canonical leaf maps into each framework.

    Attributes:
        module: regex the last module-path component must match fully.
        torch / keras / flax: the leaf name in each framework (torch = canonical).
        transpose: canonical ``[out, in]`` is stored ``[in, out]`` in Keras and Flax.
    """

    module: str
    torch: str
    keras: str
    flax: str
    transpose: bool = False

    def leaf(self, framework: str) -> str:
        return getattr(self, framework)


_EMBEDDING_MODULES = r"word_embeddings|position_embeddings|token_type_embeddings|distance_embedding"

#: First match wins.
LEAF_RULES: tuple[LeafRule, ...] = (
    LeafRule("LayerNorm", "weight", "gamma", "scale"),
    LeafRule("LayerNorm", "bias", "beta", "bias"),
    LeafRule(_EMBEDDING_MODULES, "weight", "embeddings", "embedding"),
    LeafRule(r".+", "weight", "kernel", "kernel", transpose=True),
    LeafRule(r".+", "bias", "bias", "bias"),
)


def _check_framework(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise CheckpointError(f"unknown framework {framework!r}; choose one of {list(FRAMEWORKS)}")


def _split(key: str) -> tuple[str, str, str]:
    module_path, _, leaf = key.rpartition(".")
    module = module_path.rpartition(".")[2]
    return module_path, module, leaf


def to_framework_key(key: str, framework: str) -> tuple[str, bool]:
    """Map a canonical key to ``(framework key, transpose)``.

    Raises:
        CheckpointError: no rule matches ``key``.
    """
    _check_framework(framework)
    module_path, module, leaf = _split(key)
    for rule in LEAF_RULES:
        if rule.torch == leaf and re.fullmatch(rule.module, module):
            return f"{module_path}.{rule.leaf(framework)}", rule.transpose
    raise CheckpointError(f"no conversion rule for canonical key {key!r}")


def from_framework_key(key: str, framework: str) -> tuple[str, bool]:
    """Map a framework key back to ``(canonical key, transpose)``.

    Raises:
        CheckpointError: no rule matches ``key``.
    """
    _check_framework(framework)
    module_path, module, leaf = _split(key)
    for rule in LEAF_RULES:
        if rule.leaf(framework) == leaf and re.fullmatch(rule.module, module):
            return f"{module_path}.{rule.torch}", rule.transpose
    raise CheckpointError(f"no conversion rule for {framework} key {key!r}")


def _convert(tensors: Mapping[str, Any], framework: str, mapper) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for key, value in tensors.items():
        try:
            new_key, transpose = mapper(key, framework)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        array = np.asarray(value)
        if transpose:
            if array.ndim != 2:
                problems.append(f"{key}: expected a 2-D weight to transpose, got shape {array.shape}")
                continue
            array = array.T
        if new_key in out:
            problems.append(f"{key}: maps to {new_key!r}, which another key already produced")
            continue
        out[new_key] = array
    if problems:
        raise CheckpointError(f"{len(problems)} key(s) could not be converted:\n  " + "\n  ".join(problems))
    return out


def to_framework(tensors: Mapping[str, Any], framework: str) -> dict[str, np.ndarray]:
    """Canonical ``{key: array}`` -> framework ``{key: array}`` (transposed views, no copies).

    Every problem is collected and raised once in a :class:`CheckpointError`.
    """
    return _convert(tensors, framework, to_framework_key)


def from_framework(tensors: Mapping[str, Any], framework: str) -> dict[str, np.ndarray]:
    """Framework ``{key: array}`` -> canonical ``{key: array}``; the inverse of :func:`to_framework`."""
    return _convert(tensors, framework, from_framework_key)
