"""Label losses, reduced as PyTorch (``transformers``) reduces them: mean over non-ignored positions.

``-100`` marks an ignored label everywhere (QA ignores positions clamped to
``seq_len``). A batch whose labels are all ignored gives NaN, as
``torch.nn.CrossEntropyLoss`` does.
"""

from __future__ import annotations

import tensorflow as tf

from bert_core.config import BertConfig

__all__ = [
    "IGNORE_INDEX",
    "cross_entropy",
    "masked_lm_loss",
    "causal_lm_loss",
    "sequence_classification_loss",
    "question_answering_loss",
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
    logits = tf.reshape(logits, [-1, classes])
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    keep = tf.not_equal(labels, tf.cast(ignore_index, tf.int32))
    safe = tf.where(keep, labels, tf.zeros_like(labels))
    per_item = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    per_item = tf.where(keep, per_item, tf.zeros_like(per_item))
    return tf.reduce_sum(per_item) / tf.reduce_sum(tf.cast(keep, tf.float32))


def masked_lm_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """MLM loss: ``logits (batch, seq, vocab)``, ``labels (batch, seq)`` with -100 for unmasked tokens."""
    return cross_entropy(logits, labels)


def causal_lm_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Next-token loss: logits at position t predict ``labels[t + 1]`` (shifted inside, as ``transformers``)."""
    return cross_entropy(logits[:, :-1, :], labels[:, 1:])


def sequence_classification_loss(logits: tf.Tensor, labels: tf.Tensor, config: BertConfig) -> tf.Tensor:
    """The loss ``config.problem_type`` names, inferred as ``transformers`` infers it when unset.

    ``num_labels == 1`` -> regression (MSE); integer labels -> single-label cross-entropy;
    otherwise multi-label BCE-with-logits (mean over every element).
    """
    problem_type = config.problem_type
    if problem_type is None:
        if config.num_labels == 1:
            problem_type = "regression"
        elif labels.dtype.is_integer:
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    logits = tf.cast(logits, tf.float32)
    if problem_type == "regression":
        labels = tf.cast(labels, tf.float32)
        if config.num_labels == 1:
            logits, labels = tf.reshape(logits, [-1]), tf.reshape(labels, [-1])
        return tf.reduce_mean(tf.square(logits - labels))
    if problem_type == "single_label_classification":
        return cross_entropy(tf.reshape(logits, [-1, config.num_labels]), tf.reshape(labels, [-1]))
    labels = tf.cast(labels, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def question_answering_loss(start_logits: tf.Tensor, end_logits: tf.Tensor, start_positions: tf.Tensor,
                            end_positions: tf.Tensor) -> tf.Tensor:
    """``(CE(start) + CE(end)) / 2``; positions are clamped to ``[0, seq_len]`` and ``seq_len`` is ignored."""
    seq_len = tf.shape(start_logits)[1]
    start = tf.clip_by_value(tf.reshape(tf.cast(start_positions, tf.int32), [-1]), 0, seq_len)
    end = tf.clip_by_value(tf.reshape(tf.cast(end_positions, tf.int32), [-1]), 0, seq_len)
    return (cross_entropy(start_logits, start, seq_len) + cross_entropy(end_logits, end, seq_len)) / 2.0
