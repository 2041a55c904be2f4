"""The public models: ``BertModel`` and the eight heads, with the transformers 4.x forward signature."""

from __future__ import annotations

import torch
from torch import nn

from bert_core import outputs as out
from bert_core.config import BertConfig
from bert_core.errors import ConfigError

from .attention import make_attention_bias
from .base import BertPreTrainedModel
from .embeddings import BertEmbeddings
from .encoder import BertEncoder
from .unpad import PackedBatch
from .heads import BertOnlyMLMHead, BertOnlyNSPHead, BertPooler, BertPreTrainingHeads
from .losses import (causal_lm_loss, masked_lm_loss, question_answering_loss, sequence_classification_loss)

__all__ = [
    "BertModel",
    "BertForPreTraining",
    "BertLMHeadModel",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
]


def _head_mask(head_mask: torch.Tensor | None, config: BertConfig, dtype: torch.dtype) -> torch.Tensor | None:
    """``(heads,)`` or ``(layers, heads)`` -> ``(layers, 1, heads, 1, 1)``, as transformers 4.x broadcasts it."""
    if head_mask is None:
        return None
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    if tuple(head_mask.shape) not in ((heads,), (layers, heads)):
        raise ConfigError(f"head_mask must have shape ({heads},) or ({layers}, {heads}), got {tuple(head_mask.shape)}")
    if head_mask.dim() == 1:
        head_mask = head_mask[None, :].expand(layers, -1)  # (layers, heads)
    return head_mask[:, None, :, None, None].to(dtype)  # (layers, 1, heads, 1, 1)


def _finish(output: out.ModelOutput, return_dict: bool | None, config: BertConfig):
    return output if (config.return_dict if return_dict is None else return_dict) else output.to_tuple()


def _classifier_dropout(config: BertConfig) -> nn.Dropout:
    p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    return nn.Dropout(p)


class BertModel(BertPreTrainedModel):
    """The encoder: ``embeddings``, ``encoder``, optional ``pooler``.

    With ``config.is_decoder`` self-attention is causal and ``use_cache`` returns
    ``past_key_values``; with ``config.add_cross_attention`` each layer also attends
    to ``encoder_hidden_states``.

    With ``set_unpadding(True)`` a right-padded encoder batch with enough
    padding runs on its real tokens only (see :mod:`bert_torch.unpad`);
    outputs at padded positions are then zeros, real positions are unchanged
    (to float rounding).
    """

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        # Real tokens only (unpad.py); off by default so every position, padding included,
        # equals transformers (callers compare whole tensors). set_unpadding(True) turns it on;
        # pipelines do, as nothing reads their padded positions.
        self.unpad_inputs = False
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: tuple[tuple[torch.Tensor, ...], ...] | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ):
        """Encode a batch.

        Args:
            input_ids: ``(batch, seq)``; exactly one of it and ``inputs_embeds`` ``(batch, seq, hidden)``.
            attention_mask: ``(batch, past + seq)``, 1 for real tokens (default: all real).
            token_type_ids / position_ids: ``(batch, seq)``; default zeros / ``arange`` after the cache.
            head_mask: ``(heads,)`` or ``(layers, heads)`` multipliers of the attention probabilities.
            encoder_hidden_states / encoder_attention_mask: ``(batch, enc_len, hidden)`` / ``(batch, enc_len)``
                for cross-attention.
            past_key_values: per layer ``(k, v)`` or ``(k, v, cross_k, cross_v)``, each
                ``(batch, heads, past, head_dim)``.
            use_cache: return the updated cache (decoder mode only; default ``config.use_cache``).

        Returns:
            :class:`~bert_core.outputs.BaseModelOutputWithPoolingAndCrossAttentions` (or its
            ``to_tuple()`` when ``return_dict=False``).
        """
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        use_cache = (config.use_cache if use_cache is None else use_cache) if config.is_decoder else False
        if self.encoder.gradient_checkpointing and self.training and use_cache:
            use_cache = False  # recomputed layers cannot hand back a cache
        if (input_ids is None) == (inputs_embeds is None):
            raise ConfigError("pass exactly one of input_ids and inputs_embeds")

        past_length = past_key_values[0][0].shape[2] if past_key_values is not None else 0
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, past_length)
        batch, seq = hidden.shape[:2]
        tracing = torch.compiler.is_compiling() or torch.compiler.is_exporting()  # no data-dependent branches
        if (attention_mask is not None and attention_mask.dim() == 2 and not tracing
                and bool(attention_mask.all())):
            attention_mask = None  # nothing masked: SDPA runs without a bias (what transformers does too)
        packed = None
        if (attention_mask is not None and not tracing and self.unpad_inputs and past_key_values is None
                and head_mask is None and not config.is_decoder and encoder_hidden_states is None
                and not output_attentions):
            packed = PackedBatch.from_mask(attention_mask)
        if packed is not None:
            hidden, attention_bias = packed.pack(hidden), packed  # (1, tokens, hidden): no compute on padding
        else:
            attention_bias = make_attention_bias(attention_mask, query_length=seq, key_length=past_length + seq,
                                                 dtype=hidden.dtype, device=hidden.device, causal=config.is_decoder)
        encoder_bias = None
        if encoder_hidden_states is not None and encoder_attention_mask is not None:
            encoder_bias = make_attention_bias(encoder_attention_mask, query_length=seq,
                                               key_length=encoder_hidden_states.shape[1], dtype=hidden.dtype,
                                               device=hidden.device)
        encoded = self.encoder(
            hidden,
            attention_bias,
            _head_mask(head_mask, config, hidden.dtype),
            encoder_hidden_states,
            encoder_bias,
            past_key_values,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        sequence_output = encoded.last_hidden_state
        if packed is not None:
            sequence_output = packed.unpack(sequence_output)
            if encoded.hidden_states is not None:
                encoded.hidden_states = tuple(packed.unpack(h) for h in encoded.hidden_states)
        result = out.BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=self.pooler(sequence_output) if self.pooler is not None else None,
            hidden_states=encoded.hidden_states,
            past_key_values=encoded.past_key_values,
            attentions=encoded.attentions,
            cross_attentions=encoded.cross_attentions,
        )
        return _finish(result, return_dict, config)


class BertForPreTraining(BertPreTrainedModel):
    """``bert`` + ``cls`` (MLM and next-sentence heads); loss = MLM + NSP when both labels are given."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, next_sentence_label=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        """``labels`` ``(batch, seq)`` token ids or -100; ``next_sentence_label`` ``(batch,)`` in {0, 1}.

        Returns :class:`~bert_core.outputs.BertForPreTrainingOutput`.
        """
        bert = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                         output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                         return_dict=True)
        prediction_logits, seq_relationship_logits = self.cls(bert.last_hidden_state, bert.pooler_output)
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = masked_lm_loss(prediction_logits, labels) + masked_lm_loss(seq_relationship_logits,
                                                                              next_sentence_label)
        return _finish(out.BertForPreTrainingOutput(loss, prediction_logits, seq_relationship_logits,
                                                    bert.hidden_states, bert.attentions), return_dict, self.config)


class BertLMHeadModel(BertPreTrainedModel):
    """``bert`` (no pooler) + ``cls``: a causal LM (``config.is_decoder=True``) with a KV cache."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None,
                past_key_values=None, use_cache=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        """``labels`` ``(batch, seq)`` (shifted inside: position t predicts t + 1); labels turn the cache off.

        Returns :class:`~bert_core.outputs.CausalLMOutputWithCrossAttentions`.
        """
        if labels is not None:
            use_cache = False
        bert = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                         encoder_hidden_states, encoder_attention_mask, past_key_values, use_cache,
                         output_attentions, output_hidden_states, return_dict=True)
        logits = self.cls(bert.last_hidden_state)
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return _finish(out.CausalLMOutputWithCrossAttentions(loss, logits, bert.past_key_values, bert.hidden_states,
                                                             bert.attentions, bert.cross_attentions),
                       return_dict, self.config)


class BertForMaskedLM(BertPreTrainedModel):
    """``bert`` (no pooler) + ``cls`` (the MLM head, decoder tied to the word embeddings)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None,
                output_attentions=None, output_hidden_states=None, return_dict=None):
        """``labels`` ``(batch, seq)`` token ids, -100 where not masked.

        Returns :class:`~bert_core.outputs.MaskedLMOutput`.
        """
        bert = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                         encoder_hidden_states, encoder_attention_mask, output_attentions=output_attentions,
                         output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.cls(bert.last_hidden_state)
        loss = masked_lm_loss(logits, labels) if labels is not None else None
        return _finish(out.MaskedLMOutput(loss, logits, bert.hidden_states, bert.attentions), return_dict, self.config)


class BertForNextSentencePrediction(BertPreTrainedModel):
    """``bert`` + ``cls`` (``seq_relationship`` on the pooled output)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertOnlyNSPHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """``labels`` ``(batch,)``: 0 = B continues A, 1 = random.

        Returns :class:`~bert_core.outputs.NextSentencePredictorOutput`.
        """
        bert = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                         output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                         return_dict=True)
        logits = self.cls(bert.pooler_output)
        loss = masked_lm_loss(logits, labels) if labels is not None else None
        return _finish(out.NextSentencePredictorOutput(loss, logits, bert.hidden_states, bert.attentions),
                       return_dict, self.config)


class BertForSequenceClassification(BertPreTrainedModel):
    """``bert`` + ``dropout`` + ``classifier`` on the pooled output; loss by ``config.problem_type``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """``labels``: ``(batch,)`` floats (regression) or ids, or ``(batch, num_labels)`` multi-hot.

        ``config.problem_type`` None is inferred per call as ``transformers`` does (the config is not modified).
        Returns :class:`~bert_core.outputs.SequenceClassifierOutput`.
        """
        bert = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                         output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                         return_dict=True)
        logits = self.classifier(self.dropout(bert.pooler_output))
        loss = sequence_classification_loss(logits, labels, self.config.problem_type) if labels is not None else None
        return _finish(out.SequenceClassifierOutput(loss, logits, bert.hidden_states, bert.attentions),
                       return_dict, self.config)


class BertForMultipleChoice(BertPreTrainedModel):
    """``bert`` + ``dropout`` + ``classifier`` (one score per choice); inputs ``(batch, choices, seq)``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """Every input has a ``choices`` axis after ``batch``; ``labels`` ``(batch,)`` is the right choice.

        Returns :class:`~bert_core.outputs.MultipleChoiceModelOutput` with logits ``(batch, choices)``.
        """
        num_choices = (input_ids if input_ids is not None else inputs_embeds).shape[1]

        def flat(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.reshape(-1, *x.shape[2:])  # (batch * choices, seq[, hidden])

        bert = self.bert(flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids), head_mask,
                         flat(inputs_embeds), output_attentions=output_attentions,
                         output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(bert.pooler_output)).view(-1, num_choices)  # (batch, choices)
        loss = masked_lm_loss(logits, labels) if labels is not None else None
        return _finish(out.MultipleChoiceModelOutput(loss, logits, bert.hidden_states, bert.attentions),
                       return_dict, self.config)


class BertForTokenClassification(BertPreTrainedModel):
    """``bert`` (no pooler) + ``dropout`` + ``classifier`` per token."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """``labels`` ``(batch, seq)`` ids or -100. Returns :class:`~bert_core.outputs.TokenClassifierOutput`."""
        bert = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                         output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                         return_dict=True)
        logits = self.classifier(self.dropout(bert.last_hidden_state))
        loss = masked_lm_loss(logits, labels) if labels is not None else None
        return _finish(out.TokenClassifierOutput(loss, logits, bert.hidden_states, bert.attentions),
                       return_dict, self.config)


class BertForQuestionAnswering(BertPreTrainedModel):
    """``bert`` (no pooler) + ``qa_outputs`` (start and end logits per token)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, start_positions=None, end_positions=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        """``start_positions`` / ``end_positions`` ``(batch,)`` token indices.

        Returns :class:`~bert_core.outputs.QuestionAnsweringModelOutput` with ``(batch, seq)`` logits.
        """
        bert = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                         output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                         return_dict=True)
        logits = self.qa_outputs(bert.last_hidden_state)  # (batch, seq, num_labels)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = question_answering_loss(start_logits, end_logits, start_positions, end_positions)
        return _finish(out.QuestionAnsweringModelOutput(loss, start_logits, end_logits, bert.hidden_states,
                                                        bert.attentions), return_dict, self.config)
