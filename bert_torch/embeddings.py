"""``BertEmbeddings``: word + token-type (+ absolute position) embeddings, LayerNorm, dropout."""

from __future__ import annotations

import torch
from torch import nn

from bert_core.config import BertConfig

__all__ = ["BertEmbeddings"]


class BertEmbeddings(nn.Module):
    """Sum of word, token-type and (for ``position_embedding_type="absolute"``) position embeddings.

    The relative position types keep ``position_embeddings`` (checkpoints carry
    it) but do not add it, as ``transformers`` 4.x does; their positions enter
    the attention scores instead.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_embedding_type = config.position_embedding_type

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values_length: int = 0,
    ) -> torch.Tensor:
        """Embed a batch.

        Args:
            input_ids: ``(batch, seq)`` token ids, or None when ``inputs_embeds`` is given.
            token_type_ids: ``(batch, seq)``; defaults to zeros.
            position_ids: ``(batch, seq)`` or ``(1, seq)``; defaults to
                ``arange(past_key_values_length, past_key_values_length + seq)``.
            inputs_embeds: ``(batch, seq, hidden)`` instead of ``input_ids``.
            past_key_values_length: tokens already in the KV cache (positions continue after them).

        Returns:
            ``(batch, seq, hidden)`` embeddings.
        """
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch, seq = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        if token_type_ids is None:
            token_type_ids = torch.zeros((batch, seq), dtype=torch.long, device=device)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        if self.position_embedding_type == "absolute":
            if position_ids is None:
                start = past_key_values_length
                position_ids = torch.arange(start, start + seq, device=device)[None, :]  # (1, seq)
            embeddings = embeddings + self.position_embeddings(position_ids)
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings)
