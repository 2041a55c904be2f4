"""Label losses, one per loss kind of ``bert_core.heads.LOSSES``, computed as ``transformers`` computes them.

Each ``<kind>_loss`` takes the head's logits, then its labels, in the order of
``Head.logits`` and ``Head.labels``; :func:`head_loss` picks the one a head
names. Ignored labels are -100.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

from bert_core.config import BertConfig
from bert_core.heads import LOSSES, Head

__all__ = [
    "IGNORE_INDEX",
    "LOSS_FUNCTIONS",
    "head_loss",
    "infer_problem_type",
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


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``(..., classes)`` logits over the ``(...)`` labels that are not -100."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device),
                           ignore_index=IGNORE_INDEX)


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``(batch, seq, vocab)`` logits over the ``(batch, seq)`` labels that are not -100."""
    return _cross_entropy(logits, labels)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token loss: position ``t`` predicts ``labels[t + 1]``; logits upcast to float32.

    Args:
        logits: ``(batch, seq, vocab)``.
        labels: ``(batch, seq)``, usually the input ids, -100 where ignored.
    """
    shift_logits = logits[:, :-1, :].float()  # (batch, seq - 1, vocab)
    shift_labels = labels[:, 1:].to(logits.device)  # (batch, seq - 1)
    return _cross_entropy(shift_logits, shift_labels)


def pretraining_loss(prediction_logits: torch.Tensor, seq_relationship_logits: torch.Tensor, labels: torch.Tensor,
                     next_sentence_label: torch.Tensor) -> torch.Tensor:
    """The masked-LM loss of ``(batch, seq, vocab)`` logits plus the next-sentence loss of ``(batch, 2)`` logits."""
    return masked_lm_loss(prediction_logits, labels) + next_sentence_loss(seq_relationship_logits,
                                                                          next_sentence_label)


def next_sentence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``(batch, 2)`` logits; ``labels`` ``(batch,)``: 0 = B continues A, 1 = random."""
    return _cross_entropy(logits, labels)


def infer_problem_type(num_labels: int, labels: torch.Tensor) -> str:
    """``transformers``' rule: one label -> regression; integer labels -> single-label; else multi-label."""
    if num_labels == 1:
        return "regression"
    if labels.dtype in (torch.long, torch.int):
        return "single_label_classification"
    return "multi_label_classification"


def sequence_classification_loss(logits: torch.Tensor, labels: torch.Tensor,
                                 problem_type: str | None = None) -> torch.Tensor:
    """MSE (regression), cross-entropy (single-label) or BCE-with-logits (multi-label).

    Args:
        logits: ``(batch, num_labels)``.
        labels: ``(batch,)`` floats or ids, or ``(batch, num_labels)`` multi-hot floats.
        problem_type: ``config.problem_type``; None infers it with :func:`infer_problem_type`.
    """
    num_labels = logits.shape[-1]
    labels = labels.to(logits.device)
    problem_type = problem_type or infer_problem_type(num_labels, labels)
    if problem_type == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if problem_type == "single_label_classification":
        return _cross_entropy(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def multiple_choice_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``(batch, choices)`` scores; ``labels`` ``(batch,)`` is the right choice."""
    return _cross_entropy(logits, labels)


def token_classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``(batch, seq, num_labels)`` logits over the ``(batch, seq)`` labels that are not -100."""
    return _cross_entropy(logits, labels)


def question_answering_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, start_positions: torch.Tensor,
                            end_positions: torch.Tensor) -> torch.Tensor:
    """Mean of the start and end cross-entropies.

    Positions outside the sequence are clamped to ``seq_len`` and ignored, as in
    ``transformers``.

    Args:
        start_logits / end_logits: ``(batch, seq)``.
        start_positions / end_positions: ``(batch,)`` (or ``(batch, 1)``) token indices.
    """
    seq_len = start_logits.shape[1]
    start = start_positions.reshape(-1).to(start_logits.device).clamp(0, seq_len)
    end = end_positions.reshape(-1).to(end_logits.device).clamp(0, seq_len)
    start_loss = F.cross_entropy(start_logits, start, ignore_index=seq_len)
    end_loss = F.cross_entropy(end_logits, end, ignore_index=seq_len)
    return (start_loss + end_loss) / 2


#: Loss kind (``Head.loss``) -> its function.
LOSS_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    kind: globals()[f"{kind}_loss"] for kind in LOSSES if kind != "none"
}


def head_loss(head: Head, config: BertConfig, logits: tuple[torch.Tensor, ...],
              labels: tuple[torch.Tensor | None, ...]) -> torch.Tensor | None:
    """``head``'s loss on its ``logits`` (``Head.logits`` order), or None unless every label is given.

    ``config.problem_type`` None is inferred per call as ``transformers`` does (the config is not modified).
    """
    if head.loss == "none" or not labels or any(label is None for label in labels):
        return None
    options = {"problem_type": config.problem_type} if head.loss == "sequence_classification" else {}
    return LOSS_FUNCTIONS[head.loss](*logits, *labels, **options)
