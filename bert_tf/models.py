"""The public models: ``TFBertModel`` and the eight heads, mirroring ``transformers`` 4.x.

Each ``call`` takes the PyTorch arguments (``input_ids, attention_mask,
token_type_ids, position_ids, head_mask, inputs_embeds, ...``, labels,
``output_attentions, output_hidden_states, return_dict``) plus ``training``,
and returns the ``bert_core`` output class (``return_dict=False``: its
``to_tuple()``). Parameter paths equal the HF PyTorch state-dict keys modulo
the Keras leaf names (``bert.encoder.layer.0.attention.self.query.kernel``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bert_core import outputs as out
from bert_core.config import BertConfig
from bert_core.errors import ConfigError

from . import losses
from ._common import dense
from .attention import make_attention_bias
from .base import TFBertPreTrainedModel
from .embeddings import TFBertEmbeddings
from .encoder import TFBertEncoder
from .heads import TFBertOnlyMLMHead, TFBertOnlyNSPHead, TFBertPooler, TFBertPreTrainingHeads

__all__ = [
    "TFBertModel",
    "TFBertForPreTraining",
    "TFBertLMHeadModel",
    "TFBertForMaskedLM",
    "TFBertForNextSentencePrediction",
    "TFBertForSequenceClassification",
    "TFBertForMultipleChoice",
    "TFBertForTokenClassification",
    "TFBertForQuestionAnswering",
]

_BASE_ARGS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "head_mask", "inputs_embeds",
              "output_attentions", "output_hidden_states")


def _tensor(x):
    if x is None or isinstance(x, (tf.Tensor, tf.Variable, keras.KerasTensor)):
        return x
    return tf.convert_to_tensor(x)


def _finish(output: out.ModelOutput, return_dict: bool | None, config: BertConfig):
    return_dict = config.return_dict if return_dict is None else return_dict
    return output if return_dict else output.to_tuple()


def _head_mask(head_mask, config: BertConfig):
    """``(heads,)`` or ``(layers, heads)`` -> ``(layers, 1, heads, 1, 1)``, as ``transformers`` 4.x expands it."""
    if head_mask is None:
        return None
    head_mask = tf.convert_to_tensor(head_mask)
    if head_mask.shape.rank == 1:
        head_mask = tf.tile(head_mask[None, :], [config.num_hidden_layers, 1])
    return head_mask[:, None, :, None, None]


@keras.saving.register_keras_serializable(package="tribert")
class TFBertModel(TFBertPreTrainedModel):
    """The bare encoder: ``embeddings``, ``encoder`` and (``add_pooling_layer``) ``pooler``.

    Returns :class:`BaseModelOutputWithPoolingAndCrossAttentions`: ``last_hidden_state
    (batch, seq, hidden)``, ``pooler_output (batch, hidden)``, and on request hidden states,
    attentions, cross-attentions and (decoder, ``use_cache``) ``past_key_values``.
    """

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True, **kwargs) -> None:
        super().__init__(config, **kwargs)
        policy = self.dtype_policy
        self.add_pooling_layer = add_pooling_layer
        self.embeddings = TFBertEmbeddings(config, name="embeddings", dtype=policy)
        self.encoder = TFBertEncoder(config, name="encoder", dtype=policy)
        self.pooler = TFBertPooler(config, name="pooler", dtype=policy) if add_pooling_layer else None
        self._finish_init()

    def _constructor_config(self) -> dict:
        return {"add_pooling_layer": self.add_pooling_layer}

    def build(self, input_shape=None) -> None:
        if self.built:
            return
        self.embeddings.build()
        self.encoder.build()
        if self.pooler is not None:
            self.pooler.build()
        self.built = True

    def call(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_values=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        training=False,
    ):
        """Encode a batch.

        Args:
            input_ids: ``(batch, seq)`` token ids (or ``inputs_embeds (batch, seq, hidden)``).
            attention_mask: ``(batch, past + seq)``, 1 for real tokens, 0 for padding.
            token_type_ids / position_ids: ``(batch, seq)``.
            head_mask: ``(heads,)`` or ``(layers, heads)`` multiplier of the attention probabilities.
            encoder_hidden_states / encoder_attention_mask: cross-attention source ``(batch, enc_len, hidden)``
                and its mask ``(batch, enc_len)`` (decoder with ``add_cross_attention``).
            past_key_values: the legacy cache, a tuple over layers of ``(k, v)`` or ``(k, v, cross_k, cross_v)``,
                each ``(batch, heads, past, head_dim)``.
            use_cache: return the updated cache (decoder only; default ``config.use_cache``).
            training: dropout on.
        """
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        use_cache = (config.use_cache if use_cache is None else use_cache) if config.is_decoder else False
        if input_ids is not None and inputs_embeds is not None:
            raise ConfigError("pass either input_ids or inputs_embeds, not both")
        if input_ids is None and inputs_embeds is None:
            raise ConfigError("pass input_ids or inputs_embeds")
        input_ids, attention_mask, token_type_ids, position_ids = map(
            _tensor, (input_ids, attention_mask, token_type_ids, position_ids))
        inputs_embeds, encoder_hidden_states, encoder_attention_mask = map(
            _tensor, (inputs_embeds, encoder_hidden_states, encoder_attention_mask))

        shape = tf.shape(input_ids) if input_ids is not None else tf.shape(inputs_embeds)[:-1]
        batch, seq = shape[0], shape[1]
        past_length = tf.shape(past_key_values[0][0])[2] if past_key_values is not None else 0
        attention_bias = make_attention_bias(attention_mask, batch_size=batch, query_length=seq,
                                             key_length=past_length + seq, causal=config.is_decoder)
        encoder_attention_bias = None
        if config.is_decoder and encoder_hidden_states is not None:
            enc_shape = tf.shape(encoder_hidden_states)
            if encoder_attention_mask is None:
                encoder_attention_mask = tf.ones(enc_shape[:2], dtype=tf.int32)
            encoder_attention_bias = make_attention_bias(encoder_attention_mask, batch_size=batch, query_length=seq,
                                                         key_length=enc_shape[1])

        # Keras layers take only tensors positionally; everything else goes by keyword.
        embedding_output = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids,
                                           position_ids=position_ids, inputs_embeds=inputs_embeds,
                                           past_key_values_length=past_length, training=training)
        encoded = self.encoder(embedding_output, attention_bias=attention_bias,
                               head_mask=_head_mask(head_mask, config), encoder_hidden_states=encoder_hidden_states,
                               encoder_attention_bias=encoder_attention_bias, past_key_values=past_key_values,
                               use_cache=use_cache, output_attentions=output_attentions,
                               output_hidden_states=output_hidden_states, training=training)
        sequence_output = encoded.last_hidden_state
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        output = out.BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output, pooler_output=pooled, hidden_states=encoded.hidden_states,
            past_key_values=encoded.past_key_values, attentions=encoded.attentions,
            cross_attentions=encoded.cross_attentions)
        return _finish(output, return_dict, config)

    def get_input_embeddings(self) -> keras.layers.Embedding:
        return self.embeddings.word_embeddings


class _TFBertHead(TFBertPreTrainedModel):
    """A head over ``bert``: builds the encoder with or without its pooler."""

    has_pooler = True

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.bert = TFBertModel(config, add_pooling_layer=self.has_pooler, name="bert", dtype=self.dtype_policy)

    def build(self, input_shape=None) -> None:
        if self.built:
            return
        for name in ("cls", "classifier", "qa_outputs"):
            layer = getattr(self, name, None)
            if layer is None:
                continue
            if isinstance(layer, keras.layers.Dense):
                layer.build((None, self.config.hidden_size))
            else:
                layer.build()
        self.built = True

    def _encode(self, kwargs, training, **extra):
        base = {k: kwargs[k] for k in _BASE_ARGS}
        return self.bert(**base, **extra, return_dict=True, training=training)

    def _word_embeddings(self) -> tf.Tensor:
        return self.bert.embeddings.word_embeddings.embeddings

    def _classifier_dropout(self) -> keras.layers.Dropout:
        rate = self.config.classifier_dropout
        rate = self.config.hidden_dropout_prob if rate is None else rate
        return keras.layers.Dropout(rate, dtype=self.dtype_policy)


@keras.saving.register_keras_serializable(package="tribert")
class TFBertForPreTraining(_TFBertHead):
    """MLM + NSP heads (``cls.predictions``, ``cls.seq_relationship``); loss = MLM + NSP when both labels are given."""

    label_names = ("labels", "next_sentence_label")
    logits_names = ("prediction_logits",)

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.cls = TFBertPreTrainingHeads(config, name="cls", dtype=self.dtype_policy)
        self._finish_init()

    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, labels=None, next_sentence_label=None, output_attentions=None,
             output_hidden_states=None, return_dict=None, training=False):
        """``labels (batch, seq)`` (-100 = not masked), ``next_sentence_label (batch,)``; see :meth:`TFBertModel.call`."""
        encoded = self._encode(locals(), training)
        prediction, relationship = self.cls(encoded.last_hidden_state, encoded.pooler_output, self._word_embeddings())
        output = out.BertForPreTrainingOutput(prediction_logits=prediction, seq_relationship_logits=relationship,
                                              hidden_states=encoded.hidden_states, attentions=encoded.attentions)
        if labels is not None and next_sentence_label is not None:
            output.loss = self.compute_head_loss(output, labels=labels, next_sentence_label=next_sentence_label)
        return _finish(output, return_dict, self.config)

    def compute_head_loss(self, outputs, labels=None, next_sentence_label=None):
        return (losses.masked_lm_loss(outputs.prediction_logits, labels)
                + losses.cross_entropy(outputs.seq_relationship_logits, next_sentence_label))


@keras.saving.register_keras_serializable(package="tribert")
class TFBertLMHeadModel(_TFBertHead):
    """Causal LM (``config.is_decoder``): ``cls.predictions``; cross-attention and a KV cache in decoder mode."""

    has_pooler = False
    label_names = ("labels",)

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.cls = TFBertOnlyMLMHead(config, name="cls", dtype=self.dtype_policy)
        self._finish_init()

    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None,
             past_key_values=None, use_cache=None, output_attentions=None, output_hidden_states=None,
             return_dict=None, training=False):
        """``labels (batch, seq)`` are the input ids themselves (shifted inside); see :meth:`TFBertModel.call`."""
        if labels is not None:
            use_cache = False
        encoded = self._encode(locals(), training, encoder_hidden_states=encoder_hidden_states,
                               encoder_attention_mask=encoder_attention_mask, past_key_values=past_key_values,
                               use_cache=use_cache)
        logits = self.cls(encoded.last_hidden_state, self._word_embeddings())
        output = out.CausalLMOutputWithCrossAttentions(
            logits=logits, past_key_values=encoded.past_key_values, hidden_states=encoded.hidden_states,
            attentions=encoded.attentions, cross_attentions=encoded.cross_attentions)
        if labels is not None:
            output.loss = self.compute_head_loss(output, labels=labels)
        return _finish(output, return_dict, self.config)

    def compute_head_loss(self, outputs, labels=None):
        return losses.causal_lm_loss(outputs.logits, labels)


@keras.saving.register_keras_serializable(package="tribert")
class TFBertForMaskedLM(_TFBertHead):
    """Masked LM: ``cls.predictions`` over the encoder without pooler."""

    has_pooler = False
    label_names = ("labels",)

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.cls = TFBertOnlyMLMHead(config, name="cls", dtype=self.dtype_policy)
        self._finish_init()

    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None,
             output_attentions=None, output_hidden_states=None, return_dict=None, training=False):
        """``labels (batch, seq)``, -100 where no token is predicted; logits ``(batch, seq, vocab)``.

        ``encoder_hidden_states`` / ``encoder_attention_mask`` feed cross-attention (a config with
        ``add_cross_attention``), as in :meth:`TFBertModel.call`.
        """
        encoded = self._encode(locals(), training, encoder_hidden_states=encoder_hidden_states,
                               encoder_attention_mask=encoder_attention_mask)
        logits = self.cls(encoded.last_hidden_state, self._word_embeddings())
        output = out.MaskedLMOutput(logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions)
        if labels is not None:
            output.loss = self.compute_head_loss(output, labels=labels)
        return _finish(output, return_dict, self.config)

    def compute_head_loss(self, outputs, labels=None):
        return losses.masked_lm_loss(outputs.logits, labels)


@keras.saving.register_keras_serializable(package="tribert")
class TFBertForNextSentencePrediction(_TFBertHead):
    """Next-sentence prediction: ``cls.seq_relationship`` on the pooled output, logits ``(batch, 2)``."""

    label_names = ("labels",)

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.cls = TFBertOnlyNSPHead(config, name="cls", dtype=self.dtype_policy)
        self._finish_init()

    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None,
             training=False):
        """``labels (batch,)``: 0 = B follows A, 1 = B is random."""
        encoded = self._encode(locals(), training)
        logits = self.cls(encoded.pooler_output)
        output = out.NextSentencePredictorOutput(logits=logits, hidden_states=encoded.hidden_states,
                                                 attentions=encoded.attentions)
        if labels is not None:
            output.loss = self.compute_head_loss(output, labels=labels)
        return _finish(output, return_dict, self.config)

    def compute_head_loss(self, outputs, labels=None):
        return losses.cross_entropy(outputs.logits, labels)


@keras.saving.register_keras_serializable(package="tribert")
class TFBertForSequenceClassification(_TFBertHead):
    """Sequence classification / regression: ``dropout`` + ``classifier`` on the pooled output."""

    label_names = ("labels",)

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dropout = self._classifier_dropout()
        self.classifier = dense(config, config.num_labels, "classifier", self.dtype_policy)
        self._finish_init()

    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None,
             training=False):
        """``labels (batch,)`` ints, floats for regression, or ``(batch, num_labels)`` multi-label floats."""
        encoded = self._encode(locals(), training)
        logits = self.classifier(self.dropout(encoded.pooler_output, training=training))
        output = out.SequenceClassifierOutput(logits=logits, hidden_states=encoded.hidden_states,
                                              attentions=encoded.attentions)
        if labels is not None:
            output.loss = self.compute_head_loss(output, labels=labels)
        return _finish(output, return_dict, self.config)

    def compute_head_loss(self, outputs, labels=None):
        return losses.sequence_classification_loss(outputs.logits, tf.convert_to_tensor(labels), self.config)


def _flatten_choices(x):
    """``(batch, choices, ...)`` -> ``(batch * choices, ...)``."""
    if x is None:
        return None
    x = tf.convert_to_tensor(x)
    shape = tf.shape(x)
    return tf.reshape(x, tf.concat([[-1], shape[2:]], axis=0))


@keras.saving.register_keras_serializable(package="tribert")
class TFBertForMultipleChoice(_TFBertHead):
    """Multiple choice: inputs ``(batch, choices, seq)``, one score per choice from ``classifier`` (1 unit)."""

    label_names = ("labels",)

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dropout = self._classifier_dropout()
        self.classifier = dense(config, 1, "classifier", self.dtype_policy)
        self._finish_init()

    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None,
             training=False):
        """``labels (batch,)``: the index of the right choice; logits ``(batch, choices)``."""
        source = input_ids if input_ids is not None else inputs_embeds
        num_choices = tf.shape(tf.convert_to_tensor(source))[1]
        encoded = self.bert(input_ids=_flatten_choices(input_ids), attention_mask=_flatten_choices(attention_mask),
                            token_type_ids=_flatten_choices(token_type_ids),
                            position_ids=_flatten_choices(position_ids), head_mask=head_mask,
                            inputs_embeds=_flatten_choices(inputs_embeds), output_attentions=output_attentions,
                            output_hidden_states=output_hidden_states, return_dict=True, training=training)
        logits = self.classifier(self.dropout(encoded.pooler_output, training=training))
        logits = tf.reshape(logits, [-1, num_choices])  # (batch, choices)
        output = out.MultipleChoiceModelOutput(logits=logits, hidden_states=encoded.hidden_states,
                                               attentions=encoded.attentions)
        if labels is not None:
            output.loss = self.compute_head_loss(output, labels=labels)
        return _finish(output, return_dict, self.config)

    def compute_head_loss(self, outputs, labels=None):
        return losses.cross_entropy(outputs.logits, labels)


@keras.saving.register_keras_serializable(package="tribert")
class TFBertForTokenClassification(_TFBertHead):
    """Token classification: ``dropout`` + ``classifier`` on every token, logits ``(batch, seq, num_labels)``."""

    has_pooler = False
    label_names = ("labels",)

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dropout = self._classifier_dropout()
        self.classifier = dense(config, config.num_labels, "classifier", self.dtype_policy)
        self._finish_init()

    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None,
             training=False):
        """``labels (batch, seq)``, -100 for tokens without a label."""
        encoded = self._encode(locals(), training)
        logits = self.classifier(self.dropout(encoded.last_hidden_state, training=training))
        output = out.TokenClassifierOutput(logits=logits, hidden_states=encoded.hidden_states,
                                           attentions=encoded.attentions)
        if labels is not None:
            output.loss = self.compute_head_loss(output, labels=labels)
        return _finish(output, return_dict, self.config)

    def compute_head_loss(self, outputs, labels=None):
        return losses.cross_entropy(outputs.logits, labels)


@keras.saving.register_keras_serializable(package="tribert")
class TFBertForQuestionAnswering(_TFBertHead):
    """Extractive QA: ``qa_outputs`` gives start and end logits ``(batch, seq)`` each."""

    has_pooler = False
    label_names = ("start_positions", "end_positions")
    logits_names = ("start_logits",)

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.qa_outputs = dense(config, config.num_labels, "qa_outputs", self.dtype_policy)
        self._finish_init()

    def call(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
             inputs_embeds=None, start_positions=None, end_positions=None, output_attentions=None,
             output_hidden_states=None, return_dict=None, training=False):
        """``start_positions`` / ``end_positions (batch,)``: the answer span (clamped to the sequence)."""
        encoded = self._encode(locals(), training)
        logits = self.qa_outputs(encoded.last_hidden_state)  # (batch, seq, 2)
        output = out.QuestionAnsweringModelOutput(start_logits=logits[..., 0], end_logits=logits[..., 1],
                                                  hidden_states=encoded.hidden_states, attentions=encoded.attentions)
        if start_positions is not None and end_positions is not None:
            output.loss = self.compute_head_loss(output, start_positions=start_positions, end_positions=end_positions)
        return _finish(output, return_dict, self.config)

    def compute_head_loss(self, outputs, start_positions=None, end_positions=None):
        return losses.question_answering_loss(outputs.start_logits, outputs.end_logits, start_positions,
                                              end_positions)
