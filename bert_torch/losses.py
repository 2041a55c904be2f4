"""Label losses, computed as ``transformers`` computes them (ignore index -100)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = [
    "IGNORE_INDEX",
    "masked_lm_loss",
    "causal_lm_loss",
    "sequence_classification_loss",
    "infer_problem_type",
    "question_answering_loss",
]

IGNORE_INDEX = -100


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over positions whose label is not -100.

    Args:
        logits: ``(..., num_classes)``.
        labels: ``(...)`` class ids or -100.
    """
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device),
                           ignore_index=IGNORE_INDEX)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token loss: position ``t`` predicts ``labels[t + 1]``; logits upcast to float32.

    Args:
        logits: ``(batch, seq, vocab)``.
        labels: ``(batch, seq)``, usually the input ids, -100 where ignored.
    """
    shift_logits = logits[:, :-1, :].float()  # (batch, seq - 1, vocab)
    shift_labels = labels[:, 1:].to(logits.device)  # (batch, seq - 1)
    return masked_lm_loss(shift_logits, shift_labels)


def infer_problem_type(num_labels: int, labels: torch.Tensor) -> str:
    """``transformers``' rule: one label -> regression; integer labels -> single-label; else multi-label."""
    if num_labels == 1:
        return "regression"
    if labels.dtype in (torch.long, torch.int):
        return "single_label_classification"
    return "multi_label_classification"


def sequence_classification_loss(logits: torch.Tensor, labels: torch.Tensor, problem_type: str | None) -> torch.Tensor:
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
        return masked_lm_loss(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


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
