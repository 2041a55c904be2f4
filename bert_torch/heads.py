"""The pooler and the prediction heads that sit on the encoder."""

from __future__ import annotations

import torch
from torch import nn

from bert_core.config import BertConfig

from .activations import get_activation

__all__ = [
    "BertPooler",
    "BertPredictionHeadTransform",
    "BertLMPredictionHead",
    "BertOnlyMLMHead",
    "BertOnlyNSPHead",
    "BertPreTrainingHeads",
]


class BertPooler(nn.Module):
    """``tanh(dense(hidden_states[:, 0]))``: ``(batch, seq, hidden) -> (batch, hidden)``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))


class BertPredictionHeadTransform(nn.Module):
    """``LayerNorm(act(dense(x)))`` before the MLM decoder, ``(batch, seq, hidden)`` in and out."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    """Vocabulary logits ``(batch, seq, vocab)``.

    ``decoder.weight`` is tied to the word embeddings by the owning model
    (``tie_weights``); ``decoder.bias`` *is* ``bias`` (one parameter, two names),
    so checkpoints may carry either ``cls.predictions.bias`` or both.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class BertOnlyMLMHead(nn.Module):
    """The masked-/causal-LM head alone: ``predictions``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, hidden) -> (batch, seq, vocab)`` logits."""
        return self.predictions(sequence_output)


class BertOnlyNSPHead(nn.Module):
    """The next-sentence head alone: ``seq_relationship``, ``(batch, hidden) -> (batch, 2)``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.seq_relationship(pooled_output)


class BertPreTrainingHeads(nn.Module):
    """Both pre-training heads: ``predictions`` (MLM) and ``seq_relationship`` (NSP)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, sequence_output: torch.Tensor, pooled_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(mlm logits (batch, seq, vocab), nsp logits (batch, 2))``."""
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)
