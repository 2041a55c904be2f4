"""The public models: ``TFBertModel`` and the eight heads, built from ``bert_core.heads.HEADS``.

Each ``call`` takes the ``transformers`` 4.x arguments in their order
(``Head.forward_args``: ``input_ids, attention_mask, token_type_ids,
position_ids, head_mask, inputs_embeds``, cross-attention inputs, labels, cache
arguments, ``output_attentions, output_hidden_states, return_dict``) plus
``training``, and returns the ``bert_core`` output class (``return_dict=False``:
its ``to_tuple()``). Parameter paths equal the HF PyTorch state-dict keys modulo
the Keras leaf names (``bert.encoder.layer.0.attention.self.query.kernel``).

``TFBertModel`` is written out; the heads are one generic class,
:class:`_TFBertHead`, specialised by :func:`_head_class` from each row of the
head table (module, pooler, what it reads, dropout, width, loss, labels,
choices axis, decoder and cross-attention arguments).
"""

from __future__ import annotations

import dataclasses
import inspect

import keras
import tensorflow as tf

from bert_core import outputs as out
from bert_core.config import BertConfig
from bert_core.errors import ConfigError
from bert_core.heads import CACHE_ARGS, ENCODER_ARGS, HEADS, INPUT_ARGS, Head

from . import losses
from ._common import dense
from .attention import make_attention_bias
from .base import TFBertPreTrainedModel, check_inputs
from .compiled import PackedTokens, unpadding
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

    Eager inference follows the rule of :mod:`bert_core.unpad`: zeros at masked positions of
    ``last_hidden_state`` / ``hidden_states``, and a right-padded batch with enough padding runs its
    dense layers on the real tokens only (:class:`~bert_tf.compiled.PackedTokens`); see ``set_unpadding``.
    """

    head = HEADS["base"]

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

        seq = tf.shape(input_ids)[1] if input_ids is not None else tf.shape(inputs_embeds)[1]
        past_key_values_length = tf.shape(past_key_values[0][0])[2] if past_key_values is not None else 0
        check_inputs(config, input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
                     seq_length=seq, past_key_values_length=past_key_values_length)
        # The bias is built once here and shared by every layer; scores and softmax run in float32.
        attention_bias = make_attention_bias(attention_mask, query_length=seq,
                                             key_length=past_key_values_length + seq, dtype=tf.float32,
                                             causal=config.is_decoder)
        encoder_attention_bias = None
        if config.is_decoder and encoder_hidden_states is not None and encoder_attention_mask is not None:
            encoder_attention_bias = make_attention_bias(encoder_attention_mask, query_length=seq,
                                                         key_length=tf.shape(encoder_hidden_states)[1],
                                                         dtype=tf.float32)

        # Keras layers take only tensors positionally; everything else goes by keyword.
        embedding_output = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids,
                                           position_ids=position_ids, inputs_embeds=inputs_embeds,
                                           past_key_values_length=past_key_values_length, training=training)
        # The inference rule (bert_core.unpad), as the top-level call decided it (bert_tf.compiled.unpad_mode).
        unpad = unpadding() if (attention_mask is not None and attention_mask.shape.rank == 2
                                and past_key_values is None and head_mask is None and not config.is_decoder
                                and encoder_hidden_states is None and not output_attentions) else None
        packed = None
        if unpad is not None and unpad.packing is not None:
            shape = tf.shape(embedding_output)
            packed = PackedTokens.make(unpad.packing, shape[0], shape[1])
            embedding_output = packed.pack(embedding_output)  # (1, tokens, hidden): no compute on padding
        encoded = self.encoder(embedding_output, attention_bias=attention_bias if packed is None else packed,
                               head_mask=_head_mask(head_mask, config), encoder_hidden_states=encoder_hidden_states,
                               encoder_attention_bias=encoder_attention_bias, past_key_values=past_key_values,
                               use_cache=use_cache, output_attentions=output_attentions,
                               output_hidden_states=output_hidden_states, training=training)
        sequence_output, hidden_states = encoded.last_hidden_state, encoded.hidden_states
        if packed is not None:
            sequence_output = packed.unpack(sequence_output)
            if hidden_states is not None:
                hidden_states = tuple(packed.unpack(h) for h in hidden_states)
        # The pooler reads position 0 as computed (a left-padded batch's is padding, as in transformers).
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        if unpad is not None and packed is None:
            keep = tf.cast(attention_mask, tf.bool)[:, :, None]  # (batch, seq, 1)
            sequence_output = tf.where(keep, sequence_output, tf.zeros_like(sequence_output))
            if hidden_states is not None:
                hidden_states = tuple(tf.where(keep, h, tf.zeros_like(h)) for h in hidden_states)
        output = out.BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output, pooler_output=pooled, hidden_states=hidden_states,
            past_key_values=encoded.past_key_values, attentions=encoded.attentions,
            cross_attentions=encoded.cross_attentions)
        return _finish(output, return_dict, config)

    def get_input_embeddings(self) -> keras.layers.Embedding:
        return self.embeddings.word_embeddings


def _flatten_choices(x):
    """``(batch, choices, ...)`` -> ``(batch * choices, ...)``."""
    if x is None:
        return None
    x = tf.convert_to_tensor(x)
    return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))  # (batch * choices, ...)


class _TFBertHead(TFBertPreTrainedModel):
    """A head over ``bert``, described by :attr:`head` (a ``bert_core.heads.Head``).

    Builds ``bert`` (with its pooler when the head reads it), then the head module the row
    names: ``cls`` (pre-training, MLM or NSP heads), ``dropout`` + ``classifier``, or
    ``qa_outputs``. Subclasses are made by :func:`_head_class`, one per row.
    """

    head: Head

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        head, policy = self.head, self.dtype_policy
        self.bert = TFBertModel(config, add_pooling_layer=head.pooler, name="bert", dtype=policy)
        if head.module == "pretraining":
            self.cls = TFBertPreTrainingHeads(config, name="cls", dtype=policy)
        elif head.module == "mlm":
            self.cls = TFBertOnlyMLMHead(config, name="cls", dtype=policy)
        elif head.module == "nsp":
            self.cls = TFBertOnlyNSPHead(config, name="cls", dtype=policy)
        else:
            if head.dropout:
                rate = config.hidden_dropout_prob if config.classifier_dropout is None else config.classifier_dropout
                self.dropout = keras.layers.Dropout(rate, dtype=policy)
            setattr(self, head.module, dense(config, head.num_outputs(config), head.module, policy))
        self._finish_init()

    def build(self, input_shape=None) -> None:
        if self.built:
            return
        module = self.cls if self.head.module in ("pretraining", "mlm", "nsp") else getattr(self, self.head.module)
        if isinstance(module, keras.layers.Dense):
            module.build((None, self.config.hidden_size))
        else:
            module.build()
        self.built = True

    def _logits(self, encoded, training) -> tuple[tf.Tensor, ...]:
        """The head module on the encoder's output: one tensor per ``head.logits`` field."""
        head = self.head
        if head.module == "pretraining":
            return self.cls(encoded.last_hidden_state, encoded.pooler_output, self._word_embeddings())
        if head.module == "mlm":
            return (self.cls(encoded.last_hidden_state, self._word_embeddings()),)
        if head.module == "nsp":
            return (self.cls(encoded.pooler_output),)
        source = encoded.pooler_output if head.reads == "pooled" else encoded.last_hidden_state
        if head.dropout:
            source = self.dropout(source, training=training)
        logits = getattr(self, head.module)(source)
        if head.module == "qa_outputs":  # (batch, seq, 2) -> start, end (batch, seq)
            return logits[..., 0], logits[..., 1]
        return (logits,)

    def _word_embeddings(self) -> tf.Tensor:
        return self.bert.embeddings.word_embeddings.embeddings

    def _forward(self, arguments: dict, training) -> out.ModelOutput:
        head = self.head
        inputs = {name: arguments[name] for name in INPUT_ARGS}
        encoder_args = {name: arguments[name] for name in ENCODER_ARGS + CACHE_ARGS if name in arguments}
        labels = {name: arguments[name] for name in head.labels}
        if head.decoder and labels.get("labels") is not None:
            encoder_args["use_cache"] = False  # a training step keeps no cache, as transformers 4.x
        if head.choices:
            source = inputs["input_ids"] if inputs["input_ids"] is not None else inputs["inputs_embeds"]
            num_choices = tf.shape(tf.convert_to_tensor(source))[1]
            inputs.update({k: _flatten_choices(v) for k, v in inputs.items() if k != "head_mask"})
        encoded = self.bert(**inputs, **encoder_args, output_attentions=arguments["output_attentions"],
                            output_hidden_states=arguments["output_hidden_states"], return_dict=True,
                            training=training)
        fields = dict(zip(head.logits, self._logits(encoded, training)))
        if head.choices:
            fields["logits"] = tf.reshape(fields["logits"], [-1, num_choices])  # (batch, choices)
        carried = {f.name for f in dataclasses.fields(head.output)} & {"past_key_values", "hidden_states",
                                                                         "attentions", "cross_attentions"}
        output = head.output(**fields, **{name: getattr(encoded, name) for name in carried})
        if labels and all(value is not None for value in labels.values()):
            output.loss = self.compute_head_loss(output, **labels)
        return _finish(output, arguments["return_dict"], self.config)

    def compute_head_loss(self, outputs: out.ModelOutput, **labels) -> tf.Tensor:
        """The ``bert_tf.losses`` function of this head's loss kind, on ``outputs`` and the label tensors."""
        return losses.head_loss(self.head.loss, outputs, self.config, **labels)


def _call_signature(head: Head) -> inspect.Signature:
    """``call(self, <head.forward_args>, training=False)``, every argument defaulting to None."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    names = ("self", *head.forward_args)
    return inspect.Signature([inspect.Parameter(names[0], kind)]
                             + [inspect.Parameter(name, kind, default=None) for name in names[1:]]
                             + [inspect.Parameter("training", kind, default=False)])


_CALL_DOC = """Run the {class_name}.

Arguments in the ``transformers`` 4.x order: {args}, then Keras' ``training``.
Inputs as :meth:`TFBertModel.call`; labels ({labels}) add ``loss`` ({loss} loss of
:mod:`bert_tf.losses`) to the returned :class:`~bert_core.outputs.{output}`.
"""


def _head_class(head: Head) -> type:
    """The Keras model class of one head row: :class:`_TFBertHead` with the row's exact call signature."""
    signature = _call_signature(head)

    def call(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["self"]
        return self._forward(arguments, arguments.pop("training"))

    call.__signature__ = signature  # what Keras and inspect read: the 4.x argument order
    call.__doc__ = _CALL_DOC.format(class_name=head.tf_class_name, args=", ".join(head.forward_args),
                                    labels=", ".join(head.labels) or "none", loss=head.loss,
                                    output=head.output.__name__)
    attrs = {"__module__": __name__, "__qualname__": head.tf_class_name, "head": head, "call": call,
             "label_names": head.labels, "logits_names": head.logits[:1],
             "__doc__": f"``{head.class_name}`` of ``transformers`` 4.x in Keras: the ``{head.name}`` head row."}
    return keras.saving.register_keras_serializable(package="tribert")(
        type(head.tf_class_name, (_TFBertHead,), attrs))


_HEAD_CLASSES = {head.tf_class_name: _head_class(head) for head in HEADS.values() if head.name != "base"}
TFBertForPreTraining = _HEAD_CLASSES["TFBertForPreTraining"]
TFBertLMHeadModel = _HEAD_CLASSES["TFBertLMHeadModel"]
TFBertForMaskedLM = _HEAD_CLASSES["TFBertForMaskedLM"]
TFBertForNextSentencePrediction = _HEAD_CLASSES["TFBertForNextSentencePrediction"]
TFBertForSequenceClassification = _HEAD_CLASSES["TFBertForSequenceClassification"]
TFBertForMultipleChoice = _HEAD_CLASSES["TFBertForMultipleChoice"]
TFBertForTokenClassification = _HEAD_CLASSES["TFBertForTokenClassification"]
TFBertForQuestionAnswering = _HEAD_CLASSES["TFBertForQuestionAnswering"]
