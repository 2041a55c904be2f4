"""The public models: ``FlaxBertModule`` and the eight head modules, and their stateful wrappers.

Every head is built from its row of :data:`bert_core.heads.HEADS` by one
builder (:func:`build_head`): a linen module ``FlaxBertFor*Module`` holding
``bert`` (a :class:`FlaxBertModule`) and its head under the PyTorch attribute
names (``cls``, ``classifier``, ``qa_outputs``), so parameter paths read like
the HF state dict; and a wrapper ``FlaxBertFor*`` (see :mod:`bert_flax.base`)
called as ``model(**inputs, params=None, dropout_rng=None, train=False)``.
Modules compute the loss when labels are given, so a ``jax.grad`` of the
module call is a training step.
"""

from __future__ import annotations

import dataclasses
import inspect

import jax.numpy as jnp
import flax.linen as nn

from bert_core import outputs as out
from bert_core.config import BertConfig
from bert_core.errors import ConfigError
from bert_core.heads import CACHE_ARGS, FLAG_ARGS, HEADS, Head

from .attention import make_attention_bias
from .base import FlaxBertPreTrainedModel, check_inputs
from .embeddings import FlaxBertEmbeddings, normal_init
from .encoder import FlaxBertEncoder
from .generation import FlaxCacheMixin, FlaxGenerationMixin
from .heads import FlaxBertOnlyMLMHead, FlaxBertOnlyNSPHead, FlaxBertPooler, FlaxBertPreTrainingHeads
from .losses import head_loss
from .unpad import PackedBatch

__all__ = ["FlaxBertModule", "FlaxBertModel", "build_head"]  # the head classes are added below


def _finish(output, return_dict: bool):
    return output if return_dict else output.to_tuple()


def _head_mask(head_mask, config: BertConfig):
    """``(heads,)`` or ``(layers, heads)`` -> ``(layers, 1, heads, 1, 1)``, as transformers 4.x broadcasts it."""
    if head_mask is None:
        return None
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    head_mask = jnp.asarray(head_mask, dtype=jnp.float32)
    if tuple(head_mask.shape) not in ((heads,), (layers, heads)):
        raise ConfigError(f"head_mask must have shape ({heads},) or ({layers}, {heads}), got {tuple(head_mask.shape)}")
    head_mask = jnp.broadcast_to(head_mask, (layers, heads))
    return head_mask[:, None, :, None, None]  # (layers, 1, heads, 1, 1)


class FlaxBertModule(nn.Module):
    """The encoder: ``embeddings``, ``encoder`` and (optionally) ``pooler``.

    With ``config.is_decoder`` self-attention is causal and writes the ``cache`` collection
    (``init_cache``); with ``config.add_cross_attention`` each layer also attends to
    ``encoder_hidden_states``.

    Attributes:
        config: model config.
        dtype: compute dtype; LayerNorm and softmax always compute in float32.
        param_dtype: parameter dtype.
        add_pooling_layer: build ``pooler`` (heads that never use it leave it out, as in PyTorch).
        gradient_checkpointing: ``nn.remat`` each layer.
        scan_layers: ``nn.scan`` over the layers (stacked parameters).
        attn_implementation: ``"sdpa"`` (``jax.nn.dot_product_attention``) or ``"eager"``.
    """

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    add_pooling_layer: bool = True
    gradient_checkpointing: bool = False
    scan_layers: bool = False
    attn_implementation: str = "sdpa"

    def setup(self):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.embeddings = FlaxBertEmbeddings(self.config, **kw)
        self.encoder = FlaxBertEncoder(self.config, self.attn_implementation,
                                       gradient_checkpointing=self.gradient_checkpointing,
                                       scan_layers=self.scan_layers, **kw)
        if self.add_pooling_layer:
            self.pooler = FlaxBertPooler(self.config, **kw)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None,
                 output_attentions: bool = False, output_hidden_states: bool = False, return_dict: bool = True, *,
                 past_key_values_length=0, init_cache: bool = False, deterministic: bool = True,
                 zero_padding: bool = False, packing=None):
        """Encode a batch.

        Args:
            input_ids: ``(batch, seq)`` ids (or ``None`` with ``inputs_embeds (batch, seq, hidden)``).
            attention_mask: ``(batch, k_len)``, 1 for real tokens; ``k_len`` is the cache's
                ``max_length`` when decoding with a cache, else ``seq``. ``None``: all ones.
                Or ``(batch, seq, k_len)``, 1 where a query may attend a key (packed sequences).
            token_type_ids / position_ids: ``(batch, seq)``; defaults zeros / ``past_key_values_length + arange``.
            head_mask: ``(heads,)`` or ``(num_layers, heads)`` multiplier of the attention probabilities.
            encoder_hidden_states / encoder_attention_mask: cross-attention inputs
                ``(batch, enc_len, hidden)`` / ``(batch, enc_len)``.
            past_key_values_length: tokens already in the cache (its ``cache_index``; may be traced).
            init_cache, deterministic, output_attentions, output_hidden_states, return_dict: switches.
            zero_padding: return zeros at the masked positions of ``last_hidden_state`` and
                ``hidden_states`` (2-D ``attention_mask``; the pooler reads the values before), the
                inference rule of :mod:`bert_core.unpad` (the wrapper decides when).
            packing: ``(indices, slots)`` of :func:`bert_flax.unpad.packing_indices`: every dense layer runs
                on the real tokens only (zeros at the masked positions, as ``zero_padding``).

        Returns:
            :class:`BaseModelOutputWithPoolingAndCrossAttentions` (or its tuple).

        Raises:
            InputError: ids, token types or positions outside their tables (checked when not traced).
        """
        c = self.config
        check_inputs(c, input_ids, token_type_ids, position_ids, inputs_embeds, past_key_values_length)
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, past_key_values_length,
                                 deterministic=deterministic)
        batch, seq = hidden.shape[:2]
        # One bias per forward, causal part and cache included; the layers only add relative positions.
        key_length = attention_mask.shape[-1] if attention_mask is not None else seq
        attention_bias = make_attention_bias(attention_mask, query_length=seq, key_length=key_length,
                                             dtype=self.dtype, causal=c.is_decoder,
                                             past_key_values_length=past_key_values_length)
        encoder_bias = None
        if encoder_hidden_states is not None and encoder_attention_mask is not None:
            encoder_bias = make_attention_bias(encoder_attention_mask, query_length=seq,
                                               key_length=encoder_hidden_states.shape[1], dtype=self.dtype)
        packed = None
        if packing is not None:
            packed = PackedBatch(*packing, attention_bias, batch, seq)
            hidden, attention_bias = packed.pack(hidden), packed  # (1, bucket, hidden): no compute on padding
        encoded = self.encoder(hidden, attention_bias, _head_mask(head_mask, c), encoder_hidden_states, encoder_bias,
                               output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                               deterministic=deterministic, init_cache=init_cache)
        last, hidden_states = encoded.last_hidden_state, encoded.hidden_states
        if packed is not None:
            last = packed.unpack(last)
            hidden_states = None if hidden_states is None else tuple(packed.unpack(h) for h in hidden_states)
        # The pooler reads position 0 as computed (a left-padded batch's is padding, as in transformers).
        pooled = self.pooler(last) if self.add_pooling_layer else None
        if zero_padding and packed is None:
            keep = (attention_mask != 0)[:, :, None]  # (batch, seq, 1)
            last = jnp.where(keep, last, 0)
            hidden_states = None if hidden_states is None else tuple(jnp.where(keep, h, 0) for h in hidden_states)
        return _finish(out.BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=last, pooler_output=pooled, hidden_states=hidden_states, attentions=encoded.attentions,
            cross_attentions=encoded.cross_attentions), return_dict)


#: The head module each ``Head.module`` adds under ``cls``.
_CLS_MODULES = {"pretraining": FlaxBertPreTrainingHeads, "mlm": FlaxBertOnlyMLMHead, "nsp": FlaxBertOnlyNSPHead}
#: The array inputs a multiple-choice head flattens from ``(batch, choices, ...)`` to ``(batch * choices, ...)``.
_CHOICE_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")


class _FlaxBertHeadModule(nn.Module):
    """One head on ``bert``, entirely described by the class attribute ``head`` (a :class:`Head`)."""

    config: BertConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    gradient_checkpointing: bool = False
    scan_layers: bool = False
    attn_implementation: str = "sdpa"

    head = HEADS["base"]  # set per class by build_head

    def setup(self):
        h, c = self.head, self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.bert = FlaxBertModule(c, add_pooling_layer=h.pooler, gradient_checkpointing=self.gradient_checkpointing,
                                   scan_layers=self.scan_layers, attn_implementation=self.attn_implementation, **kw)
        if h.dropout:
            self.dropout = nn.Dropout(rate=c.classifier_dropout if c.classifier_dropout is not None
                                      else c.hidden_dropout_prob)
        if h.module in _CLS_MODULES:
            self.cls = _CLS_MODULES[h.module](c, **kw)
        elif h.module in ("classifier", "qa_outputs"):
            setattr(self, h.module, nn.Dense(h.num_outputs(c), kernel_init=normal_init(c), **kw))

    def _word_embeddings(self):
        # The tied MLM decoder reads the embedding table (4.x Flax's "shared_embedding").
        if not self.config.tie_word_embeddings:
            return None
        return self.bert.variables["params"]["embeddings"]["word_embeddings"]["embedding"]

    def _forward(self, inputs: dict, flags: dict, deterministic: bool, **switches):
        h, c = self.head, self.config
        ref = inputs["input_ids"] if inputs["input_ids"] is not None else inputs["inputs_embeds"]
        if h.choices:
            num_choices = ref.shape[1]
            for name in _CHOICE_INPUTS:  # (batch, choices, ...) -> (batch * choices, ...)
                x = inputs[name]
                inputs[name] = None if x is None else x.reshape((-1,) + x.shape[2:])
        encoder = {k: inputs.get(k) for k in ("encoder_hidden_states", "encoder_attention_mask")}
        if self.is_initializing() and c.add_cross_attention and encoder["encoder_hidden_states"] is None:
            # Create the cross-attention weights every head of such a config owns (as in PyTorch),
            # even for heads that never receive encoder states.
            shape = (inputs["input_ids"] if inputs["input_ids"] is not None else inputs["inputs_embeds"]).shape[:2]
            encoder["encoder_hidden_states"] = jnp.zeros((*shape, c.hidden_size), self.dtype)
        o = self.bert(*(inputs[n] for n in _CHOICE_INPUTS[:4]), inputs["head_mask"], inputs["inputs_embeds"],
                      **encoder, output_attentions=flags["output_attentions"],
                      output_hidden_states=flags["output_hidden_states"], deterministic=deterministic, **switches)
        features = {"sequence": (o.last_hidden_state,), "pooled": (o.pooler_output,),
                    "both": (o.last_hidden_state, o.pooler_output)}[h.reads]
        if h.dropout:
            features = tuple(self.dropout(f, deterministic=deterministic) for f in features)
        if h.module in ("pretraining", "mlm"):
            logits = self.cls(*features, self._word_embeddings())
        else:
            logits = getattr(self, "cls" if h.module == "nsp" else h.module)(*features)
        logits = logits if isinstance(logits, tuple) else (logits,)
        if len(logits) < len(h.logits):  # qa_outputs: (batch, seq, 2) -> start, end (batch, seq)
            logits = tuple(logits[0][..., i] for i in range(len(h.logits)))
        if h.choices:
            logits = (logits[0].reshape(-1, num_choices),)  # (batch, choices)
        fields = {f.name for f in dataclasses.fields(h.output)}
        result = dict(zip(h.logits, logits), loss=head_loss(h.loss, logits, tuple(inputs[n] for n in h.labels), c),
                      hidden_states=o.hidden_states, attentions=o.attentions)
        if "cross_attentions" in fields:
            result["cross_attentions"] = o.cross_attentions
        return _finish(h.output(**result), flags["return_dict"])


#: The keyword-only switches a head module hands to ``bert`` as they are.
_SWITCHES = ("zero_padding", "packing", "init_cache", "past_key_values_length")


def _module_signature(head: Head) -> inspect.Signature:
    """``(self, <head.forward_args without the cache arguments>, *, <linen switches>)``."""
    flags = {"output_attentions": False, "output_hidden_states": False, "return_dict": True}
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD)]
    params += [P(n, P.POSITIONAL_OR_KEYWORD, default=flags.get(n)) for n in head.forward_args if n not in CACHE_ARGS]
    extras = {"deterministic": True, "zero_padding": False, "packing": None,
              **({"init_cache": False, "past_key_values_length": 0} if head.decoder else {})}
    params += [P(n, P.KEYWORD_ONLY, default=d) for n, d in extras.items()]
    return inspect.Signature(params)


def _module_call(head: Head):
    signature = _module_signature(head)

    def __call__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        del values["self"]
        flags = {n: values.pop(n) for n in FLAG_ARGS}
        deterministic = values.pop("deterministic")
        switches = {n: values.pop(n) for n in _SWITCHES if n in values}
        return self._forward(values, flags, deterministic, **switches)

    __call__.__signature__ = signature
    __call__.__doc__ = (f"Arguments as :class:`FlaxBertModule`, then the labels {list(head.labels)}; "
                        f"returns :class:`{head.output.__name__}` (loss when every label is given).")
    return __call__


def build_head(head: Head) -> tuple[type, type]:
    """The linen module and the wrapper class of ``head``, named ``<flax_name>Module`` and ``<flax_name>``."""
    name = head.flax_name
    doc = (f"The {head.name!r} head: ``bert`` ({'with' if head.pooler else 'without'} pooler) + ``{head.module}``, "
           f"reading the {head.reads} output; returns :class:`{head.output.__name__}` ({', '.join(head.logits)}).")
    module = type(f"{name}Module", (_FlaxBertHeadModule,),
                  {"head": head, "__call__": _module_call(head), "__doc__": doc, "__module__": __name__,
                   "__qualname__": f"{name}Module"})
    return module, _wrapper(head, module, doc)


def _wrapper(head: Head, module: type, doc: str) -> type:
    mixins = ()
    if head.decoder:
        mixins = (FlaxGenerationMixin,) if head.module == "mlm" else (FlaxCacheMixin,)
    attrs = {"module_class": module, "head": head, "__doc__": doc, "__module__": __name__,
             "__qualname__": head.flax_name}
    if head.choices:
        attrs["default_input_shape"] = (1, 1, 1)  # (batch, choices, seq)
    return type(head.flax_name, (*mixins, FlaxBertPreTrainedModel), attrs)


FlaxBertModel = _wrapper(HEADS["base"], FlaxBertModule,
                         "The bare encoder: ``last_hidden_state (batch, seq, hidden)`` and ``pooler_output "
                         "(batch, hidden)``; ``add_pooling_layer=False`` builds it without the pooler.")

for _head in HEADS.values():
    if _head.module != "none":
        _module, _model = build_head(_head)
        globals()[_module.__name__], globals()[_model.__name__] = _module, _model
        __all__ += [_module.__name__, _model.__name__]
del _head, _module, _model
