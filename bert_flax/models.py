"""The linen modules of the public models: ``FlaxBertModule`` and one ``FlaxBertFor*Module`` per head.

Each head module holds ``bert`` (a :class:`FlaxBertModule`) and its head under
the PyTorch attribute names (``cls``, ``classifier``, ``qa_outputs``), so
parameter paths read like the HF state dict. Modules compute losses when
labels are given, so a ``jax.grad`` of the module call is a training step.
The stateful wrappers users call are in :mod:`bert_flax.wrappers`.
"""

from __future__ import annotations

import jax.numpy as jnp
import flax.linen as nn

from bert_core import outputs as out
from bert_core.config import BertConfig

from .attention import allowed_from_mask
from .embeddings import FlaxBertEmbeddings, normal_init
from .encoder import FlaxBertEncoder
from .heads import FlaxBertOnlyMLMHead, FlaxBertOnlyNSPHead, FlaxBertPooler, FlaxBertPreTrainingHeads
from .losses import (causal_lm_loss, cross_entropy, masked_lm_loss, question_answering_loss,
                     sequence_classification_loss)

__all__ = [
    "FlaxBertModule",
    "FlaxBertForPreTrainingModule",
    "FlaxBertForCausalLMModule",
    "FlaxBertForMaskedLMModule",
    "FlaxBertForNextSentencePredictionModule",
    "FlaxBertForSequenceClassificationModule",
    "FlaxBertForMultipleChoiceModule",
    "FlaxBertForTokenClassificationModule",
    "FlaxBertForQuestionAnsweringModule",
]


def _finish(output, return_dict: bool):
    return output if return_dict else output.to_tuple()


class FlaxBertModule(nn.Module):
    """The encoder: ``embeddings``, ``encoder`` and (optionally) ``pooler``.

    Attributes:
        config: model config.
        dtype: compute dtype; LayerNorm and softmax always compute in float32.
        param_dtype: parameter dtype.
        add_pooling_layer: build ``pooler`` (heads that never use it leave it out, as in PyTorch).
        gradient_checkpointing: ``nn.remat`` each layer.
        scan_layers: ``nn.scan`` over the layers (stacked parameters).
    """

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    add_pooling_layer: bool = True
    gradient_checkpointing: bool = False
    scan_layers: bool = False

    def setup(self):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.embeddings = FlaxBertEmbeddings(self.config, **kw)
        self.encoder = FlaxBertEncoder(self.config, gradient_checkpointing=self.gradient_checkpointing,
                                       scan_layers=self.scan_layers, **kw)
        if self.add_pooling_layer:
            self.pooler = FlaxBertPooler(self.config, **kw)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, *, past_length=0,
                 init_cache: bool = False, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False, return_dict: bool = True):
        """Encode a batch.

        Args:
            input_ids: ``(batch, seq)`` ids (or ``None`` with ``inputs_embeds (batch, seq, hidden)``).
            attention_mask: ``(batch, k_len)``, 1 for real tokens; ``k_len`` is the cache's
                ``max_length`` when decoding with a cache, else ``seq``. ``None``: all ones.
                Or ``(batch, seq, k_len)``, 1 where a query may attend a key (packed sequences).
            token_type_ids / position_ids: ``(batch, seq)``; defaults zeros / ``past_length + arange``.
            head_mask: ``(heads,)`` or ``(num_layers, heads)`` multiplier of the attention probabilities.
            encoder_hidden_states / encoder_attention_mask: cross-attention inputs
                ``(batch, enc_len, hidden)`` / ``(batch, enc_len)``.
            past_length: tokens already cached (for the default position ids).
            init_cache, deterministic, output_attentions, output_hidden_states, return_dict: switches.

        Returns:
            :class:`BaseModelOutputWithPoolingAndCrossAttentions` (or its tuple).
        """
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, past_length=past_length,
                                 deterministic=deterministic)
        batch, seq = hidden.shape[:2]
        if attention_mask is None:
            attention_mask = jnp.ones((batch, seq), dtype="i4")
        allowed = allowed_from_mask(attention_mask)  # (batch, 1, 1 or q_len, k_len)
        encoder_allowed = None
        if encoder_hidden_states is not None:
            if encoder_attention_mask is None:
                encoder_attention_mask = jnp.ones(encoder_hidden_states.shape[:2], dtype="i4")
            encoder_allowed = encoder_attention_mask.astype(bool)[:, None, None, :]  # (batch, 1, 1, enc_len)
        if head_mask is not None:
            head_mask = jnp.asarray(head_mask, dtype=jnp.float32)
            if head_mask.ndim == 1:
                head_mask = jnp.broadcast_to(head_mask, (self.config.num_hidden_layers, head_mask.shape[0]))
        last, all_hidden, attentions, cross = self.encoder(
            hidden, allowed, head_mask, encoder_hidden_states, encoder_allowed, init_cache=init_cache,
            deterministic=deterministic, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states)
        pooled = self.pooler(last) if self.add_pooling_layer else None
        return _finish(out.BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=last, pooler_output=pooled, hidden_states=all_hidden, attentions=attentions,
            cross_attentions=cross), return_dict)


class _HeadModule(nn.Module):
    """Shared fields and the encoder call of every head module."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    gradient_checkpointing: bool = False
    scan_layers: bool = False

    add_pooling_layer = True

    def _bert(self):
        return FlaxBertModule(self.config, dtype=self.dtype, param_dtype=self.param_dtype,
                              add_pooling_layer=self.add_pooling_layer,
                              gradient_checkpointing=self.gradient_checkpointing, scan_layers=self.scan_layers)

    def _dense(self, features: int) -> nn.Dense:
        return nn.Dense(features, dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=normal_init(self.config))

    def _word_embeddings(self):
        # The tied MLM decoder reads the embedding table (4.x Flax's "shared_embedding").
        return self.bert.variables["params"]["embeddings"]["word_embeddings"]["embedding"]

    def _run_bert(self, input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                  deterministic, output_attentions, output_hidden_states, **kwargs):
        if self.is_initializing() and self.config.add_cross_attention and kwargs.get("encoder_hidden_states") is None:
            # Create the cross-attention weights every head of such a config owns (as in PyTorch),
            # even for heads that never receive encoder states.
            shape = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
            kwargs["encoder_hidden_states"] = jnp.zeros((*shape, self.config.hidden_size), self.dtype)
        return self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                         deterministic=deterministic, output_attentions=output_attentions,
                         output_hidden_states=output_hidden_states, return_dict=True, **kwargs)


class FlaxBertForPreTrainingModule(_HeadModule):
    """MLM + NSP pre-training: ``bert``, ``cls`` (predictions, seq_relationship)."""

    def setup(self):
        self.bert = self._bert()
        self.cls = FlaxBertPreTrainingHeads(self.config, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, next_sentence_label=None, *, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False, return_dict: bool = True):
        """Arguments as :class:`FlaxBertModule`; ``labels (batch, seq)`` (-100 ignored) and
        ``next_sentence_label (batch,)`` give ``loss = MLM + NSP``. Returns :class:`BertForPreTrainingOutput`."""
        o = self._run_bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                           deterministic, output_attentions, output_hidden_states)
        mlm, nsp = self.cls(o.last_hidden_state, o.pooler_output, self._word_embeddings())
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = masked_lm_loss(mlm, labels) + cross_entropy(nsp, next_sentence_label.reshape(-1))
        return _finish(out.BertForPreTrainingOutput(loss=loss, prediction_logits=mlm, seq_relationship_logits=nsp,
                                                    hidden_states=o.hidden_states, attentions=o.attentions),
                       return_dict)


class FlaxBertForCausalLMModule(_HeadModule):
    """Left-to-right LM (decoder): ``bert`` without pooler, ``cls`` (predictions); KV cache and cross-attention."""

    add_pooling_layer = False

    def setup(self):
        self.bert = self._bert()
        self.cls = FlaxBertOnlyMLMHead(self.config, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None, *,
                 past_length=0, init_cache: bool = False, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False, return_dict: bool = True):
        """Arguments as :class:`FlaxBertModule`; ``labels (batch, seq)`` give the shifted next-token loss.
        Returns :class:`CausalLMOutputWithCrossAttentions` (the wrapper fills ``past_key_values``)."""
        o = self._run_bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                           deterministic, output_attentions, output_hidden_states,
                           encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask,
                           past_length=past_length, init_cache=init_cache)
        logits = self.cls(o.last_hidden_state, self._word_embeddings())
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return _finish(out.CausalLMOutputWithCrossAttentions(
            loss=loss, logits=logits, hidden_states=o.hidden_states, attentions=o.attentions,
            cross_attentions=o.cross_attentions), return_dict)


class FlaxBertForMaskedLMModule(_HeadModule):
    """Masked LM: ``bert`` without pooler, ``cls`` (predictions, tied decoder)."""

    add_pooling_layer = False

    def setup(self):
        self.bert = self._bert()
        self.cls = FlaxBertOnlyMLMHead(self.config, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None, *,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False,
                 return_dict: bool = True):
        """Arguments as :class:`FlaxBertModule`; ``labels (batch, seq)``, -100 ignored.
        Returns :class:`MaskedLMOutput`."""
        o = self._run_bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                           deterministic, output_attentions, output_hidden_states,
                           encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)
        logits = self.cls(o.last_hidden_state, self._word_embeddings())
        loss = masked_lm_loss(logits, labels) if labels is not None else None
        return _finish(out.MaskedLMOutput(loss=loss, logits=logits, hidden_states=o.hidden_states,
                                          attentions=o.attentions), return_dict)


class FlaxBertForNextSentencePredictionModule(_HeadModule):
    """Next-sentence prediction: ``bert``, ``cls`` (seq_relationship)."""

    def setup(self):
        self.bert = self._bert()
        self.cls = FlaxBertOnlyNSPHead(self.config, dtype=self.dtype, param_dtype=self.param_dtype)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, *, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False, return_dict: bool = True):
        """``labels (batch,)``: 0 = B follows A. Returns :class:`NextSentencePredictorOutput`, logits ``(batch, 2)``."""
        o = self._run_bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                           deterministic, output_attentions, output_hidden_states)
        logits = self.cls(o.pooler_output)
        loss = cross_entropy(logits, labels.reshape(-1)) if labels is not None else None
        return _finish(out.NextSentencePredictorOutput(loss=loss, logits=logits, hidden_states=o.hidden_states,
                                                       attentions=o.attentions), return_dict)


class FlaxBertForSequenceClassificationModule(_HeadModule):
    """Sequence classification / regression on the pooled output: ``bert``, ``dropout``, ``classifier``."""

    def setup(self):
        c = self.config
        self.bert = self._bert()
        rate = c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob
        self.dropout = nn.Dropout(rate=rate)
        self.classifier = self._dense(c.num_labels)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, *, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False, return_dict: bool = True):
        """``labels``: ``(batch,)`` ints, floats for regression, or ``(batch, num_labels)`` multi-hot.
        The loss follows ``config.problem_type`` (inferred when unset). Returns :class:`SequenceClassifierOutput`."""
        o = self._run_bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                           deterministic, output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(o.pooler_output, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss, _ = sequence_classification_loss(logits, labels, self.config.num_labels, self.config.problem_type)
        return _finish(out.SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=o.hidden_states,
                                                    attentions=o.attentions), return_dict)


class FlaxBertForMultipleChoiceModule(_HeadModule):
    """Multiple choice: one score per choice from the pooled output: ``bert``, ``dropout``, ``classifier``."""

    def setup(self):
        c = self.config
        self.bert = self._bert()
        rate = c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob
        self.dropout = nn.Dropout(rate=rate)
        self.classifier = self._dense(1)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, *, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False, return_dict: bool = True):
        """Inputs ``(batch, num_choices, seq)``; ``labels (batch,)`` the right choice.
        Returns :class:`MultipleChoiceModelOutput` with logits ``(batch, num_choices)``."""
        ref = input_ids if input_ids is not None else inputs_embeds
        num_choices = ref.shape[1]

        def flat(x):
            return None if x is None else x.reshape((-1,) + x.shape[2:])  # (batch * choices, ...)

        o = self._run_bert(flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids),
                           head_mask, flat(inputs_embeds), deterministic, output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(o.pooler_output, deterministic=deterministic))
        logits = logits.reshape(-1, num_choices)  # (batch, num_choices)
        loss = cross_entropy(logits, labels.reshape(-1)) if labels is not None else None
        return _finish(out.MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=o.hidden_states,
                                                     attentions=o.attentions), return_dict)


class FlaxBertForTokenClassificationModule(_HeadModule):
    """Per-token classification: ``bert`` without pooler, ``dropout``, ``classifier``."""

    add_pooling_layer = False

    def setup(self):
        c = self.config
        self.bert = self._bert()
        rate = c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob
        self.dropout = nn.Dropout(rate=rate)
        self.classifier = self._dense(c.num_labels)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, *, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False, return_dict: bool = True):
        """``labels (batch, seq)``, -100 ignored.
        Returns :class:`TokenClassifierOutput`, logits ``(batch, seq, num_labels)``."""
        o = self._run_bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                           deterministic, output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(o.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = cross_entropy(logits.reshape(-1, self.config.num_labels), labels.reshape(-1))
        return _finish(out.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=o.hidden_states,
                                                 attentions=o.attentions), return_dict)


class FlaxBertForQuestionAnsweringModule(_HeadModule):
    """Extractive QA: ``bert`` without pooler, ``qa_outputs`` giving start/end logits."""

    add_pooling_layer = False

    def setup(self):
        self.bert = self._bert()
        self.qa_outputs = self._dense(self.config.num_labels)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, start_positions=None, end_positions=None, *, deterministic: bool = True,
                 output_attentions: bool = False, output_hidden_states: bool = False, return_dict: bool = True):
        """``start_positions``/``end_positions (batch,)`` give the span loss.
        Returns :class:`QuestionAnsweringModelOutput` with ``(batch, seq)`` start/end logits."""
        o = self._run_bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                           deterministic, output_attentions, output_hidden_states)
        logits = self.qa_outputs(o.last_hidden_state)  # (batch, seq, 2)
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = question_answering_loss(start_logits, end_logits, start_positions, end_positions)
        return _finish(out.QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                        hidden_states=o.hidden_states, attentions=o.attentions),
                       return_dict)
