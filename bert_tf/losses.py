"""Label losses, one function per loss kind of ``bert_core.heads.LOSSES``, named ``<kind>_loss``.

Each takes the head's output object, the config and the head's label arguments
(``Head.labels``), and reduces as PyTorch (``transformers``) does: the mean over
non-ignored positions. ``-100`` marks an ignored label everywhere (QA ignores
positions clamped to ``seq_len``). A batch whose labels are all ignored gives
NaN, as ``torch.nn.CrossEntropyLoss`` does.
"""

from __future__ import annotations

import tensorflow as tf

from bert_core.config import BertConfig
from bert_core.outputs import ModelOutput

__all__ = [
    "IGNORE_INDEX",
    "cross_entropy",
    "masked_lm_loss",
    "causal_lm_loss",
    "pretraining_loss",
    "next_sentence_loss",
    "sequence_classification_loss",
    "multiple_choice_loss",
    "token_classification_loss",
    "question_answering_loss",
    "head_loss",
]

IGNORE_INDEX = -100


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor, ignore_index: int | tf.Tensor = IGNORE_INDEX) -> tf.Tensor:
    """Mean softmax cross-entropy over the labels that are not ``ignore_index``.

    Args:
        logits: ``(..., classes)``; computed in float32.
        labels: integer, the shape of ``logits`` without the last axis.

    Returns:
        A scalar float32.
    """
    logits = tf.cast(logits, tf.float32)
    classes = tf.shape(logits)[-1]
    logits = tf.reshape(logits, [-1, classes])  # (items, classes)
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])  # (items,)
    keep = tf.not_equal(labels, tf.cast(ignore_index, tf.int32))
    safe = tf.where(keep, labels, tf.zeros_like(labels))
    per_item = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    per_item = tf.where(keep, per_item, tf.zeros_like(per_item))
    return tf.reduce_sum(per_item) / tf.reduce_sum(tf.cast(keep, tf.float32))


def masked_lm_loss(outputs: ModelOutput, config: BertConfig, labels) -> tf.Tensor:
    """MLM: ``logits (batch, seq, vocab)``, ``labels (batch, seq)`` with -100 for unmasked tokens."""
    return cross_entropy(outputs.logits, labels)


def causal_lm_loss(outputs: ModelOutput, config: BertConfig, labels) -> tf.Tensor:
    """Next-token loss: logits at position t predict ``labels[t + 1]`` (shifted inside, as ``transformers``)."""
    return cross_entropy(outputs.logits[:, :-1, :], tf.convert_to_tensor(labels)[:, 1:])


def pretraining_loss(outputs: ModelOutput, config: BertConfig, labels, next_sentence_label) -> tf.Tensor:
    """MLM on ``prediction_logits`` plus next-sentence cross-entropy on ``seq_relationship_logits``."""
    return (cross_entropy(outputs.prediction_logits, labels)
            + cross_entropy(outputs.seq_relationship_logits, next_sentence_label))


def next_sentence_loss(outputs: ModelOutput, config: BertConfig, labels) -> tf.Tensor:
    """Cross-entropy of ``logits (batch, 2)``; ``labels (batch,)``: 0 = B follows A, 1 = B is random."""
    return cross_entropy(outputs.logits, labels)


def sequence_classification_loss(outputs: ModelOutput, config: BertConfig, labels) -> tf.Tensor:
    """The loss ``config.problem_type`` names, inferred as ``transformers`` infers it when unset.

    ``num_labels == 1`` -> regression (MSE); integer labels -> single-label cross-entropy;
    otherwise multi-label BCE-with-logits (mean over every element).
    """
    labels = tf.convert_to_tensor(labels)
    problem_type = config.problem_type
    if problem_type is None:
        if config.num_labels == 1:
            problem_type = "regression"
        elif labels.dtype.is_integer:
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    logits = tf.cast(outputs.logits, tf.float32)
    if problem_type == "regression":
        labels = tf.cast(labels, tf.float32)
        if config.num_labels == 1:
            logits, labels = tf.reshape(logits, [-1]), tf.reshape(labels, [-1])
        return tf.reduce_mean(tf.square(logits - labels))
    if problem_type == "single_label_classification":
        return cross_entropy(tf.reshape(logits, [-1, config.num_labels]), tf.reshape(labels, [-1]))
    labels = tf.cast(labels, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def multiple_choice_loss(outputs: ModelOutput, config: BertConfig, labels) -> tf.Tensor:
    """Cross-entropy over the choices: ``logits (batch, choices)``, ``labels (batch,)``."""
    return cross_entropy(outputs.logits, labels)


def token_classification_loss(outputs: ModelOutput, config: BertConfig, labels) -> tf.Tensor:
    """Cross-entropy per token: ``logits (batch, seq, num_labels)``, ``labels (batch, seq)`` with -100 ignored."""
    return cross_entropy(outputs.logits, labels)


def question_answering_loss(outputs: ModelOutput, config: BertConfig, start_positions, end_positions) -> tf.Tensor:
    """``(CE(start) + CE(end)) / 2``; positions are clamped to ``[0, seq_len]`` and ``seq_len`` is ignored."""
    seq_len = tf.shape(outputs.start_logits)[1]
    start = tf.clip_by_value(tf.reshape(tf.cast(start_positions, tf.int32), [-1]), 0, seq_len)
    end = tf.clip_by_value(tf.reshape(tf.cast(end_positions, tf.int32), [-1]), 0, seq_len)
    return (cross_entropy(outputs.start_logits, start, seq_len) + cross_entropy(outputs.end_logits, end, seq_len)) / 2.0


def head_loss(kind: str, outputs: ModelOutput, config: BertConfig, **labels) -> tf.Tensor:
    """The ``<kind>_loss`` of this module for a loss kind of ``bert_core.heads.LOSSES``."""
    return globals()[f"{kind}_loss"](outputs, config, **labels)
