"""The public models: ``BertModel`` written out, and the eight heads built from ``bert_core.heads.HEADS``.

A head is data (:class:`bert_core.heads.Head`): the module it adds, what that
module reads, its dropout, width, loss, labels and cache arguments.
:func:`build_head_class` turns one row into a class with the transformers 4.x
forward signature, the parameter paths of the checkpoints and the loss of
:mod:`bert_torch.losses`; nothing about a head is written twice.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Callable

import torch
from torch import nn

from bert_core import outputs as out
from bert_core.config import BertConfig
from bert_core.errors import ConfigError
from bert_core.heads import HEADS, INPUT_ARGS, Head
from bert_core.inputs import validate_inputs

from .attention import make_attention_bias
from .base import BertPreTrainedModel
from .embeddings import BertEmbeddings
from .encoder import BertEncoder
from .heads import BertOnlyMLMHead, BertOnlyNSPHead, BertPooler, BertPreTrainingHeads
from .losses import head_loss
from .unpad import PackedBatch, padding_read, reads_padding

__all__ = ["BertModel", "build_head_class"] + [
    head.class_name for head in HEADS.values() if head.name != "base"
]


def _tracing() -> bool:
    """True while torch.compile, torch.export or torch.jit trace the forward: no host reads of data then."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()


def _extrema(values: torch.Tensor) -> tuple[int, int] | None:
    """``(min, max)`` of an integer tensor as Python ints, read back in one transfer; None when empty."""
    if values.numel() == 0:
        return None
    low, high = torch.stack(torch.aminmax(values)).tolist()
    return low, high


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


class BertModel(BertPreTrainedModel):
    """The encoder: ``embeddings``, ``encoder``, optional ``pooler``.

    With ``config.is_decoder`` self-attention is causal and ``use_cache`` returns
    ``past_key_values``; with ``config.add_cross_attention`` each layer also attends
    to ``encoder_hidden_states``.

    A right-padded encoder batch with enough padding runs on its real tokens
    only (see :mod:`bert_torch.unpad`) when called for inference on CPU, or
    always with ``set_unpadding(True)``; outputs at padded positions are then
    zeros, real positions are unchanged (to float rounding).
    """

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        # Real tokens only (unpad.py): None = for inference on CPU (the default), True = whenever exact,
        # False = never; set by set_unpadding.
        self.unpad_inputs: bool | None = None
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

        Raises:
            InputError: an id, token type or position outside its table, or a sequence longer than
                ``max_position_embeddings`` (checked on the host unless compiling or exporting).
        """
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        use_cache = (config.use_cache if use_cache is None else use_cache) if config.is_decoder else False
        if self.encoder.gradient_checkpointing and self.training and use_cache:
            use_cache = False  # recomputed layers cannot hand back a cache
        if (input_ids is None) == (inputs_embeds is None):
            raise ConfigError("pass exactly one of input_ids and inputs_embeds")

        past_key_values_length = past_key_values[0][0].shape[2] if past_key_values is not None else 0
        tracing = _tracing()
        if not tracing:
            validate_inputs(config, input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
                            seq_length=(input_ids if input_ids is not None else inputs_embeds).shape[1],
                            past_key_values_length=past_key_values_length, extrema=_extrema)
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, past_key_values_length)
        batch, seq = hidden.shape[:2]
        if (attention_mask is not None and attention_mask.dim() == 2 and not tracing
                and bool(attention_mask.all())):
            attention_mask = None  # nothing masked: SDPA runs without a bias (what transformers does too)
        # The inference rule (bert_core.unpad): masked positions read zeros; packed when it pays off.
        zero_padding = (attention_mask is not None and attention_mask.dim() == 2 and not tracing
                        and past_key_values is None and head_mask is None and not config.is_decoder
                        and encoder_hidden_states is None and not output_attentions and self._unpads(hidden))
        packed = PackedBatch.from_mask(attention_mask) if zero_padding and self._packs(hidden) else None
        if packed is not None:
            hidden, attention_bias = packed.pack(hidden), packed  # (1, tokens, hidden): no compute on padding
        else:
            attention_bias = make_attention_bias(attention_mask, query_length=seq,
                                                 key_length=past_key_values_length + seq, dtype=hidden.dtype,
                                                 causal=config.is_decoder, device=hidden.device)
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
        sequence_output, hidden_states = encoded.last_hidden_state, encoded.hidden_states
        if packed is not None:
            sequence_output = packed.unpack(sequence_output)
            if hidden_states is not None:
                hidden_states = tuple(packed.unpack(h) for h in hidden_states)
        # The pooler reads position 0 as computed (a left-padded batch's is padding, as in transformers).
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        if zero_padding and packed is None:
            keep = (attention_mask != 0).to(sequence_output.dtype)[:, :, None]  # (batch, seq, 1)
            sequence_output = sequence_output * keep
            if hidden_states is not None:
                hidden_states = tuple(h * keep for h in hidden_states)
        result = out.BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            hidden_states=hidden_states,
            past_key_values=encoded.past_key_values,
            attentions=encoded.attentions,
            cross_attentions=encoded.cross_attentions,
        )
        return _finish(result, return_dict, config)

    def _unpads(self, hidden: torch.Tensor) -> bool:
        """Whether this call follows the inference rule of :mod:`bert_core.unpad` (zeros at masked positions).

        ``set_unpadding``'s choice, else inference: eval mode, no gradient to record (grad disabled, or
        nothing requiring it) and no :func:`~bert_core.unpad.padding_read` caller, on any device.
        """
        if self.unpad_inputs is not None:
            return self.unpad_inputs
        if self.training or reads_padding():
            return False
        return not torch.is_grad_enabled() or not (hidden.requires_grad
                                                   or any(p.requires_grad for p in self.parameters()))

    def _packs(self, hidden: torch.Tensor) -> bool:
        """Whether such a call also skips the padding's compute: on CPU, or anywhere with ``set_unpadding(True)``.

        CUDA keeps the padded compute by default (the per-sequence attention calls were not measured
        there) and zeroes the masked positions after it.
        """
        return self.unpad_inputs is True or hidden.device.type == "cpu"


# -- the heads, built from bert_core.heads.HEADS ---------------------------------------------------

#: ``Head.module`` -> (attribute name, constructor): the attribute names are the checkpoints'.
_MODULES: dict[str, tuple[str, Callable[[BertConfig, Head], nn.Module]]] = {
    "pretraining": ("cls", lambda config, head: BertPreTrainingHeads(config)),
    "mlm": ("cls", lambda config, head: BertOnlyMLMHead(config)),
    "nsp": ("cls", lambda config, head: BertOnlyNSPHead(config)),
    "classifier": ("classifier", lambda config, head: nn.Linear(config.hidden_size, head.num_outputs(config))),
    "qa_outputs": ("qa_outputs", lambda config, head: nn.Linear(config.hidden_size, head.num_outputs(config))),
}

#: ``Head.reads`` -> the fields of the encoder output the head module takes, in order.
_READS = {"sequence": ("last_hidden_state",), "pooled": ("pooler_output",),
          "both": ("last_hidden_state", "pooler_output")}

#: Encoder output fields a head output carries over when its class has them.
_CARRIED = ("past_key_values", "hidden_states", "attentions", "cross_attentions")

#: Per head: the class docstring and the forward docstring (what its labels are, what it returns).
_DOCS: dict[str, tuple[str, str]] = {
    "pretraining": (
        "``bert`` + ``cls`` (MLM and next-sentence heads); loss = MLM + NSP when both labels are given.",
        "``labels`` ``(batch, seq)`` token ids or -100; ``next_sentence_label`` ``(batch,)`` in {0, 1}.\n\n"
        "Returns :class:`~bert_core.outputs.BertForPreTrainingOutput`."),
    "causal-lm": (
        "``bert`` (no pooler) + ``cls``: a causal LM (``config.is_decoder=True``) with a KV cache.",
        "``labels`` ``(batch, seq)`` (shifted inside: position t predicts t + 1); labels turn the cache off.\n\n"
        "Returns :class:`~bert_core.outputs.CausalLMOutputWithCrossAttentions`."),
    "masked-lm": (
        "``bert`` (no pooler) + ``cls`` (the MLM head, decoder tied to the word embeddings).",
        "``labels`` ``(batch, seq)`` token ids, -100 where not masked.\n\n"
        "Returns :class:`~bert_core.outputs.MaskedLMOutput`."),
    "next-sentence": (
        "``bert`` + ``cls`` (``seq_relationship`` on the pooled output).",
        "``labels`` ``(batch,)``: 0 = B continues A, 1 = random.\n\n"
        "Returns :class:`~bert_core.outputs.NextSentencePredictorOutput`."),
    "sequence-classification": (
        "``bert`` + ``dropout`` + ``classifier`` on the pooled output; loss by ``config.problem_type``.",
        "``labels``: ``(batch,)`` floats (regression) or ids, or ``(batch, num_labels)`` multi-hot.\n\n"
        "``config.problem_type`` None is inferred per call as ``transformers`` does (the config is not modified).\n"
        "Returns :class:`~bert_core.outputs.SequenceClassifierOutput`."),
    "multiple-choice": (
        "``bert`` + ``dropout`` + ``classifier`` (one score per choice); inputs ``(batch, choices, seq)``.",
        "Every input has a ``choices`` axis after ``batch``; ``labels`` ``(batch,)`` is the right choice.\n\n"
        "Returns :class:`~bert_core.outputs.MultipleChoiceModelOutput` with logits ``(batch, choices)``."),
    "token-classification": (
        "``bert`` (no pooler) + ``dropout`` + ``classifier`` per token.",
        "``labels`` ``(batch, seq)`` ids or -100. Returns :class:`~bert_core.outputs.TokenClassifierOutput`."),
    "question-answering": (
        "``bert`` (no pooler) + ``qa_outputs`` (start and end logits per token).",
        "``start_positions`` / ``end_positions`` ``(batch,)`` token indices.\n\n"
        "Returns :class:`~bert_core.outputs.QuestionAnsweringModelOutput` with ``(batch, seq)`` logits."),
}


class _BertHeadModel(BertPreTrainedModel):
    """Base of the eight head classes: ``bert`` and the module its ``head`` names (see :func:`build_head_class`)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        head = self.head
        self.bert = BertModel(config, add_pooling_layer=head.pooler)
        if head.dropout:
            p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
            self.dropout = nn.Dropout(p)
        name, build = _MODULES[head.module]
        self.add_module(name, build(config, head))
        self.post_init()

    def _run_head(self, args: dict[str, Any]):
        """The forward pass of ``head`` on its arguments by name (``Head.forward_args``, all present)."""
        head, config = self.head, self.config
        labels = tuple(args[name] for name in head.labels)
        if head.choices:
            # Every input has a choices axis after batch; the encoder sees (batch * choices, seq[, hidden]).
            num_choices = (args["input_ids"] if args["input_ids"] is not None else args["inputs_embeds"]).shape[1]
            for name in INPUT_ARGS:
                x = args[name]
                if name != "head_mask" and x is not None:
                    args[name] = x.reshape(-1, *x.shape[2:])  # (batch * choices, seq[, hidden])
        if head.decoder and any(label is not None for label in labels):
            args["use_cache"] = False  # training on labels: no cache, as transformers 4.x
        # A loss over per-token logits reads padded positions: the encoder must compute them as the padded path does.
        keep_padding = head.loss_reads_padding and any(label is not None for label in labels) and not _tracing()
        with padding_read() if keep_padding else contextlib.nullcontext():
            # Every forward argument but the labels and return_dict is BertModel's, by the same name.
            bert = self.bert(**{k: v for k, v in args.items() if k not in head.labels and k != "return_dict"},
                             return_dict=True)
        features = [getattr(bert, field) for field in _READS[head.reads]]
        if head.dropout:
            features = [self.dropout(x) for x in features]
        logits = getattr(self, _MODULES[head.module][0])(*features)
        if head.choices:
            logits = logits.view(-1, num_choices)  # (batch * choices, 1) -> (batch, choices)
        if not isinstance(logits, tuple):
            # One tensor per output field: question answering's (batch, seq, 2) becomes start and end (batch, seq).
            logits = (logits,) if len(head.logits) == 1 else tuple(
                t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        carried = {field: getattr(bert, field) for field in self._carried_fields}
        output = head.output(loss=head_loss(head, config, logits, labels), **dict(zip(head.logits, logits)),
                             **carried)
        return _finish(output, args["return_dict"], config)


def _bind(head: Head, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments by name in ``head.forward_args``, absent ones None; Python's errors for a bad call."""
    names = head.forward_args
    if len(args) > len(names):
        raise TypeError(f"{head.class_name}.forward() takes {len(names)} arguments but {len(args)} were given")
    values = dict.fromkeys(names)
    values.update(zip(names, args))
    for name in kwargs:
        if name not in values:
            raise TypeError(f"{head.class_name}.forward() got an unexpected keyword argument {name!r}")
        if names.index(name) < len(args):
            raise TypeError(f"{head.class_name}.forward() got multiple values for argument {name!r}")
    values.update(kwargs)
    return values


def build_head_class(head: Head) -> type:
    """The ``bert_torch`` class of ``head``: a :class:`_BertHeadModel` whose ``forward`` takes ``head.forward_args``.

    ``forward`` accepts the arguments positionally or by name, as the transformers 4.x
    signature does (``inspect.signature`` reports it), and returns ``head.output``.
    """
    class_doc, forward_doc = _DOCS[head.name]

    def forward(self, *args: Any, **kwargs: Any):
        return self._run_head(_bind(head, args, kwargs))

    forward.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
           for name in head.forward_args])
    forward.__doc__ = forward_doc
    forward.__qualname__ = f"{head.class_name}.forward"
    # The encoder fields the output class carries, found once here (not in the traced forward).
    carried = tuple(field for field in _CARRIED if field in head.output.field_names())
    namespace = {"head": head, "forward": forward, "_carried_fields": carried, "__doc__": class_doc,
                 "__module__": __name__, "__qualname__": head.class_name}
    return type(head.class_name, (_BertHeadModel,), namespace)


for _head in HEADS.values():
    if _head.name != "base":
        globals()[_head.class_name] = build_head_class(_head)
del _head
