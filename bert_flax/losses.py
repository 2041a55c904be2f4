"""Label losses, one function per kind of ``bert_core.heads.LOSSES`` (``<kind>_loss``), as transformers computes them.

Each takes the head's logits then its labels, in ``Head.logits`` / ``Head.labels`` order
(ignore index -100, float32); :func:`head_loss` picks the function for a head.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "IGNORE_INDEX",
    "cross_entropy",
    "head_loss",
    "masked_lm_loss",
    "causal_lm_loss",
    "pretraining_loss",
    "next_sentence_loss",
    "sequence_classification_loss",
    "multiple_choice_loss",
    "token_classification_loss",
    "question_answering_loss",
]

IGNORE_INDEX = -100


def cross_entropy(logits, labels, ignore_index: int = IGNORE_INDEX):
    """Mean negative log-likelihood over the labels that are not ``ignore_index``.

    Args:
        logits: ``(..., classes)``.
        labels: ``(...)`` integer class ids; ``ignore_index`` entries do not count.

    Returns:
        A float32 scalar (NaN when every label is ignored, as in PyTorch).
    """
    logits = logits.astype(jnp.float32)
    labels = labels.astype(jnp.int32)
    valid = labels != ignore_index
    safe = jnp.where(valid, labels, 0)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(log_probs, safe[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(valid, nll, 0.0)) / jnp.sum(valid)


def masked_lm_loss(logits, labels):
    """MLM loss: cross-entropy of ``(batch, seq, vocab)`` logits over non-ignored ``(batch, seq)`` labels."""
    return cross_entropy(logits, labels)


def causal_lm_loss(logits, labels):
    """Next-token loss: logits at position ``t`` predict ``labels[t + 1]``; the last position predicts nothing."""
    return cross_entropy(logits[:, :-1], labels[:, 1:])


def pretraining_loss(prediction_logits, seq_relationship_logits, labels, next_sentence_label):
    """MLM loss plus next-sentence loss (both ignore -100)."""
    return masked_lm_loss(prediction_logits, labels) + next_sentence_loss(seq_relationship_logits, next_sentence_label)


def next_sentence_loss(logits, labels):
    """Cross-entropy of ``(batch, 2)`` logits against ``(batch,)`` labels (0 = B follows A)."""
    return cross_entropy(logits, labels.reshape(-1))


def multiple_choice_loss(logits, labels):
    """Cross-entropy of ``(batch, choices)`` logits against the right choice ``(batch,)``."""
    return cross_entropy(logits, labels.reshape(-1))


def token_classification_loss(logits, labels):
    """Cross-entropy per token: ``(batch, seq, num_labels)`` logits, ``(batch, seq)`` labels (-100 ignored)."""
    return cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def sequence_classification_loss(logits, labels, num_labels: int, problem_type: str | None):
    """Loss by ``problem_type``, inferred as transformers does when ``None``.

    ``num_labels == 1`` -> regression (MSE); integer labels -> single-label
    cross-entropy; otherwise multi-label BCE-with-logits.
    """
    if problem_type is None:
        if num_labels == 1:
            problem_type = "regression"
        elif jnp.issubdtype(labels.dtype, jnp.integer):
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    logits = logits.astype(jnp.float32)
    if problem_type == "regression":
        if num_labels == 1:
            return jnp.mean((logits.reshape(-1) - labels.reshape(-1).astype(jnp.float32)) ** 2)
        return jnp.mean((logits - labels.astype(jnp.float32)) ** 2)
    if problem_type == "single_label_classification":
        return cross_entropy(logits.reshape(-1, num_labels), labels.reshape(-1))
    targets = labels.astype(jnp.float32)
    # BCE-with-logits, the numerically stable form PyTorch uses.
    bce = jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    return jnp.mean(bce)


def question_answering_loss(start_logits, end_logits, start_positions, end_positions):
    """Span loss: positions clamped to ``[0, seq]``, ``seq`` ignored, ``(start + end) / 2``."""
    seq = start_logits.shape[1]
    start = jnp.clip(start_positions.reshape(-1).astype(jnp.int32), 0, seq)
    end = jnp.clip(end_positions.reshape(-1).astype(jnp.int32), 0, seq)
    return (cross_entropy(start_logits, start, ignore_index=seq) + cross_entropy(end_logits, end, ignore_index=seq)) / 2


def head_loss(kind: str, logits: tuple, labels: tuple, config):
    """The ``kind`` loss (``Head.loss``) of ``logits`` and ``labels``; None unless every label is given."""
    if kind == "none" or any(label is None for label in labels):
        return None
    if kind == "sequence_classification":
        return sequence_classification_loss(*logits, *labels, config.num_labels, config.problem_type)
    return globals()[f"{kind}_loss"](*logits, *labels)
