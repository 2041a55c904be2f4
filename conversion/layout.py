"""The canonical key -> shape layout of each head, computed from a config alone.

This is the checkpoint *format* (the Hugging Face PyTorch BERT state dict),
not a model: it lets ``tribert convert`` check that a checkpoint holds what a
head needs (and nothing it would drop) without importing any framework, and
lets the drift test check every backend against one list.
"""

from __future__ import annotations

import math

import numpy as np

from bert_core.config import BertConfig
from bert_core.errors import CheckpointError
from bert_core.heads import HEADS, get_head
from bert_core.limits import limit

from .rules import BASE_MODEL_PREFIX

__all__ = ["canonical_shapes", "HEADS_WITHOUT_POOLER", "infer_head", "TensorBudget"]

#: Heads whose encoder has no pooler (``add_pooling_layer=False`` in transformers).
HEADS_WITHOUT_POOLER = ("masked-lm", "causal-lm", "token-classification", "question-answering")


def _encoder_shapes(config: BertConfig, pooler: bool) -> dict[str, tuple[int, ...]]:
    h, i = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (config.vocab_size, h),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }

    def attention(prefix: str) -> None:
        for part in ("query", "key", "value"):
            shapes[f"{prefix}.self.{part}.weight"] = (h, h)
            shapes[f"{prefix}.self.{part}.bias"] = (h,)
        if config.position_embedding_type in ("relative_key", "relative_key_query"):
            shapes[f"{prefix}.self.distance_embedding.weight"] = (2 * config.max_position_embeddings - 1, config.head_dim)
        shapes[f"{prefix}.output.dense.weight"] = (h, h)
        shapes[f"{prefix}.output.dense.bias"] = (h,)
        shapes[f"{prefix}.output.LayerNorm.weight"] = (h,)
        shapes[f"{prefix}.output.LayerNorm.bias"] = (h,)

    for n in range(config.num_hidden_layers):
        layer = f"encoder.layer.{n}"
        attention(f"{layer}.attention")
        if config.add_cross_attention:
            attention(f"{layer}.crossattention")
        shapes |= {
            f"{layer}.intermediate.dense.weight": (i, h),
            f"{layer}.intermediate.dense.bias": (i,),
            f"{layer}.output.dense.weight": (h, i),
            f"{layer}.output.dense.bias": (h,),
            f"{layer}.output.LayerNorm.weight": (h,),
            f"{layer}.output.LayerNorm.bias": (h,),
        }
    if pooler:
        shapes["pooler.dense.weight"] = (h, h)
        shapes["pooler.dense.bias"] = (h,)
    return shapes


def _mlm_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
    h, v = config.hidden_size, config.vocab_size
    return {
        "cls.predictions.bias": (v,),
        "cls.predictions.transform.dense.weight": (h, h),
        "cls.predictions.transform.dense.bias": (h,),
        "cls.predictions.transform.LayerNorm.weight": (h,),
        "cls.predictions.transform.LayerNorm.bias": (h,),
        "cls.predictions.decoder.weight": (v, h),
        "cls.predictions.decoder.bias": (v,),
    }


def canonical_shapes(config: BertConfig, head: str = "base") -> dict[str, tuple[int, ...]]:
    """Every canonical key of ``head`` (registry name) with its shape, tied decoder keys included."""
    get_head(head)  # validates the name
    encoder = _encoder_shapes(config, pooler=head not in HEADS_WITHOUT_POOLER)
    if head == "base":
        return encoder
    shapes = {f"{BASE_MODEL_PREFIX}.{k}": v for k, v in encoder.items()}
    h = config.hidden_size
    if head in ("pretraining", "masked-lm", "causal-lm"):
        shapes |= _mlm_shapes(config)
    if head in ("pretraining", "next-sentence"):
        shapes |= {"cls.seq_relationship.weight": (2, h), "cls.seq_relationship.bias": (2,)}
    if head in ("sequence-classification", "token-classification"):
        shapes |= {"classifier.weight": (config.num_labels, h), "classifier.bias": (config.num_labels,)}
    if head == "multiple-choice":
        shapes |= {"classifier.weight": (1, h), "classifier.bias": (1,)}
    if head == "question-answering":
        # transformers sizes it by num_labels (2 for start/end logits by default).
        shapes |= {"qa_outputs.weight": (config.num_labels, h), "qa_outputs.bias": (config.num_labels,)}
    return shapes


def infer_head(config: BertConfig, keys) -> str:
    """The head a checkpoint holds: ``config.architectures`` first, else the head keys present."""
    from bert_core.heads import head_for_config

    if config.architectures:
        return head_for_config(config).name
    keys = set(keys)
    has_mlm = any(k.startswith("cls.predictions.") for k in keys)
    has_nsp = any(k.startswith("cls.seq_relationship.") for k in keys)
    if has_mlm and has_nsp:
        return "pretraining"
    if has_mlm:
        return "causal-lm" if config.is_decoder else "masked-lm"
    if has_nsp:
        return "next-sentence"
    if any(k.startswith("qa_outputs.") for k in keys):
        return "question-answering"
    if any(k.startswith("classifier.") for k in keys):
        return "sequence-classification"
    return "base"


class TensorBudget:
    """How much a legacy weight file (h5, msgpack, TF1) may declare, checked before a byte is read.

    From a config: each tensor at most the size of the model's largest tensor (any head), and all
    together at most twice every head's tensors (one head plus as much again in optimizer slots
    or buffers). Without a config, both limits are ``MAX_PARAMS`` (``TRIBERT_MAX_PARAMS``).
    A 10 KB file declaring a multi-GB dataset is refused by name instead of exhausting memory.
    """

    #: numpy dtype kinds a weight may have: float, signed / unsigned int, bool (no object, string, compound).
    KINDS = "fiub"

    def __init__(self, config: BertConfig | None, path: object) -> None:
        self.path = path
        if config is None:
            self.largest_shape, self.largest, self.total = None, limit("MAX_PARAMS"), limit("MAX_PARAMS")
        else:
            shapes: dict[str, tuple[int, ...]] = {}
            for head in HEADS:
                shapes |= canonical_shapes(config, head)
            self.largest_shape = max(shapes.values(), key=math.prod)
            self.largest = math.prod(self.largest_shape)
            self.total = 2 * sum(math.prod(s) for s in shapes.values())
        self.used = 0

    def admit(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        """Count tensor ``name`` of the declared ``shape`` and ``dtype``, or refuse it by name.

        Raises:
            CheckpointError: a dtype that is not a plain number, a tensor larger than the model's
                largest, or more elements in all than the model could hold (file, name, shapes).
        """
        if dtype.kind not in self.KINDS and dtype.name != "bfloat16" or dtype.names is not None:
            raise CheckpointError(f"{self.path}: {name!r} has dtype {dtype}, not a numeric weight dtype")
        if not all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape):
            raise CheckpointError(f"{self.path}: {name!r} declares the invalid shape {shape}")
        count = math.prod(int(d) for d in shape)
        if count > self.largest:
            largest = f"the model's largest tensor {self.largest_shape}" if self.largest_shape else "the limit"
            raise CheckpointError(f"{self.path}: {name!r} declares shape {tuple(shape)} ({count:,} elements), larger "
                                  f"than {largest} ({self.largest:,} elements); refused before reading it")
        self.used += count
        if self.used > self.total:
            raise CheckpointError(f"{self.path}: its tensors declare more than {self.total:,} elements in all (at "
                                  f"{name!r}), more than the model could hold; refused before reading them")
