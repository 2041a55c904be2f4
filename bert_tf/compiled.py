"""The compiled call path: ``tf.function`` (XLA by default) over inputs padded to bucketed lengths.

It is also what ``model(**inputs)`` runs for eager inference (:func:`compilable_arguments` says when),
so the first thing a user calls costs milliseconds, not the ~100 ms of an eager Keras call.

An eager Keras call costs tens of milliseconds of Python per forward; a
compiled one costs the kernels. XLA compiles once per input *shape*, so
sequence lengths are padded up to a few buckets (16, 32, 64, ...) and a stream
of batches of varied lengths compiles a handful of programs, not one per batch.
Padded positions carry ``attention_mask = 0``; every output is sliced back to
the true length and losses are computed on the sliced outputs, so results equal
the eager call's.

The plain graph eager inference runs also follows the inference rule of :mod:`bert_core.unpad`
(:func:`unpad_mode` decides per call, on the host): zeros at masked positions and, when
:meth:`~bert_core.unpad.UnpadPlan.from_mask` finds a plan, the real tokens' indices as more
graph inputs, so the dense layers run on the real tokens only (still one graph per argument set,
whatever the token count; :func:`packing_inputs`). Inputs are checked on the host first
(:func:`bert_core.validate_inputs`): inside the compiled graph an out-of-range id
would be clamped silently by XLA's gather.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf
from keras.src.backend.common import global_state
from keras.src.backend.common.stateless_scope import in_stateless_scope

from bert_core import outputs as out
from bert_core.errors import ConfigError
from bert_core.inputs import max_sequence_length, validate_inputs
from bert_core.unpad import UnpadPlan, reads_padding

from ._common import is_symbolic

__all__ = ["DEFAULT_BUCKETS", "bucket_length", "pad_to_length", "CompiledCall", "compilable_arguments",
           "bucket_dataset", "Unpadding", "unpadding", "unpadding_scope", "unpad_mode", "packing_inputs",
           "PackedTokens", "ATTENTION_GROUPS", "PACKING_INPUTS"]

DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512)
#: Inputs padded along their last (sequence) axis, and the value padding gets (None: the pad token id).
_PADDED = {"input_ids": None, "attention_mask": 0, "token_type_ids": 0}
_COMPILED_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")
_LABELS = ("labels", "next_sentence_label", "start_positions", "end_positions")
#: Output classes whose ``logits`` have a sequence axis (axis 1).
_TOKEN_LOGITS = (out.MaskedLMOutput, out.CausalLMOutputWithCrossAttentions, out.TokenClassifierOutput)
_SEQUENCE_FIELDS = ("last_hidden_state", "prediction_logits", "start_logits", "end_logits")


#: Self-attention of packed tokens runs on this many groups of rows of similar length, each padded to its
#: longest row only: on 32 rows of 8..125 tokens that computes ~46% of the padded (batch, seq, seq) scores
#: (8 groups measured faster than 4 there, and cost the same on a padded 2 x 16 batch).
ATTENTION_GROUPS = 8


@dataclass(frozen=True)
class PackedTokens:
    """The real tokens of a right-padded ``(batch, seq)`` batch laid end to end (:mod:`bert_core.unpad`).

    Passed down the encoder in place of the attention bias: every dense layer and LayerNorm runs on the
    ``(1, tokens, hidden)`` real tokens only, and self-attention runs per group of rows of similar length
    (:func:`bert_tf.compiled.packing_inputs`), each row attending to its own tokens as on the padded path.
    """

    indices: tf.Tensor  # (tokens,) int32 flat positions ``row * seq + column`` of the real tokens
    batch: tf.Tensor  # scalar int32
    seq: tf.Tensor  # scalar int32
    groups: tuple[tuple[tf.Tensor, tf.Tensor], ...]  # per group: (rows, width) cells' tokens, (rows, 1, 1, width) bias
    unattend: tf.Tensor  # (tokens,) int32 each packed token's cell in the groups' concatenated cells

    @classmethod
    def make(cls, packing, batch: tf.Tensor, seq: tf.Tensor) -> "PackedTokens":
        """From the tensors of :func:`bert_tf.compiled.packing_inputs` and the padded batch's shape."""
        shapes = packing["unpad_attend_shapes"]  # (ATTENTION_GROUPS, 2)
        cells = tf.split(packing["unpad_attend_index"], shapes[:, 0] * shapes[:, 1], num=ATTENTION_GROUPS)
        lengths = tf.split(packing["unpad_attend_lengths"], shapes[:, 0], num=ATTENTION_GROUPS)
        groups = []
        for g in range(ATTENTION_GROUPS):
            index = tf.reshape(cells[g], shapes[g])  # (rows, width)
            allowed = tf.range(shapes[g, 1])[None, :] < lengths[g][:, None]
            groups.append((index, tf.where(allowed, 0.0, tf.float32.min)[:, None, None, :]))  # (rows, 1, 1, width)
        return cls(packing["unpad_indices"], batch, seq, tuple(groups), packing["unpad_unattend"])

    def pack(self, x: tf.Tensor) -> tf.Tensor:
        """``(batch, seq, width)`` -> ``(1, tokens, width)``: the real tokens only."""
        flat = tf.reshape(x, tf.stack([self.batch * self.seq, tf.shape(x)[-1]]))
        return tf.gather(flat, self.indices)[None]

    def unpack(self, x: tf.Tensor) -> tf.Tensor:
        """``(1, tokens, width)`` -> ``(batch, seq, width)``, zeros at padded positions."""
        width = tf.shape(x)[-1]
        flat = tf.scatter_nd(self.indices[:, None], x[0], tf.stack([self.batch * self.seq, width]))
        return tf.reshape(flat, tf.stack([self.batch, self.seq, width]))

    def attend(self, query: tf.Tensor, key: tf.Tensor, value: tf.Tensor, attend) -> tf.Tensor:
        """Packed ``(1, tokens, width)`` projections -> packed context, one ``attend`` call per group.

        ``attend(query, key, value, bias)`` takes ``(rows, width_g, hidden)`` blocks and a
        ``(rows, 1, 1, width_g)`` bias and returns the ``(rows, width_g, hidden)`` context.
        """
        contexts = []
        for index, bias in self.groups:
            context = attend(*(tf.gather(x[0], index) for x in (query, key, value)), bias)
            contexts.append(tf.reshape(context, tf.stack([-1, tf.shape(context)[-1]])))
        return tf.gather(tf.concat(contexts, 0), self.unattend)[None]


#: The packed path's extra graph inputs (int32), in this order (see :func:`packing_inputs`).
PACKING_INPUTS = ("unpad_indices", "unpad_attend_index", "unpad_attend_lengths", "unpad_attend_shapes",
                  "unpad_unattend")


def packing_inputs(plan: UnpadPlan) -> dict[str, np.ndarray]:
    """The host-side arrays the packed path takes: where the real tokens are, and how attention groups them.

    ``unpad_indices`` ``(tokens,)``: the plan's flat positions of the real tokens. Rows sorted by length are
    split into :data:`ATTENTION_GROUPS` groups (some empty when there are fewer rows); group ``g`` attends as
    an ``(rows_g, width_g)`` block, ``width_g`` its longest row: ``unpad_attend_shapes`` ``(groups, 2)`` holds
    those shapes, ``unpad_attend_index`` the packed token each block cell reads (the blocks flattened and
    concatenated; a cell past its row's end reads the row's last token, which the bias masks),
    ``unpad_attend_lengths`` ``(batch,)`` the rows' lengths in block order, and ``unpad_unattend``
    ``(tokens,)`` where each packed token's cell is in that concatenation.
    """
    lengths, starts = np.asarray(plan.lengths), np.asarray(plan.offsets[:-1])
    order = np.argsort(lengths, kind="stable")
    index, shapes, unattend, base = [], [], np.empty(plan.tokens, np.int64), 0
    for rows in np.array_split(order, ATTENTION_GROUPS):
        width = int(lengths[rows].max()) if rows.size else 0
        columns = np.arange(width)[None, :]
        block = starts[rows, None] + np.minimum(columns, lengths[rows, None] - 1)  # (rows, width)
        real = columns < lengths[rows, None]
        unattend[block[real]] = base + np.flatnonzero(real)
        index.append(block.ravel())
        shapes.append((rows.size, width))
        base += rows.size * width
    arrays = (plan.indices, np.concatenate(index), lengths[order], np.array(shapes), unattend)
    return {name: array.astype(np.int32) for name, array in zip(PACKING_INPUTS, arrays)}


@dataclass(frozen=True)
class Unpadding:
    """How the encoder call in progress follows the inference rule: zeros at masked positions, and the real
    tokens packed when ``packing`` (the tensors of :func:`packing_inputs`, by name) is set."""

    packing: Mapping[str, tf.Tensor] | None = None


# Set around a top-level call (or inside the graph function while it traces), read by TFBertModel.call.
_UNPADDING: ContextVar[Unpadding | None] = ContextVar("tribert_tf_unpadding", default=None)


@contextmanager
def unpadding_scope(value: Unpadding | None) -> Iterator[None]:
    """Run the model calls inside with ``value`` as their :func:`unpadding`."""
    token = _UNPADDING.set(value)
    try:
        yield
    finally:
        _UNPADDING.reset(token)


def unpadding() -> Unpadding | None:
    """The :class:`Unpadding` of the model call in progress (None: the padded path, ``transformers``' values)."""
    return _UNPADDING.get()


def bucket_length(length: int, buckets: Sequence[int] = DEFAULT_BUCKETS) -> int:
    """The smallest bucket ``>= length``; past the last bucket, the next multiple of it."""
    for bucket in sorted(buckets):
        if length <= bucket:
            return bucket
    largest = max(buckets)
    return -(-length // largest) * largest


def pad_to_length(inputs: Mapping[str, Any], length: int, pad_token_id: int = 0) -> dict[str, np.ndarray]:
    """Right-pad ``input_ids`` / ``attention_mask`` / ``token_type_ids`` (numpy) to ``length`` on the last axis.

    ``position_ids`` continue counting; a missing ``attention_mask`` becomes ones over the real tokens.
    """
    inputs = {k: np.asarray(v) for k, v in inputs.items() if v is not None}
    if "input_ids" not in inputs:
        raise ConfigError("the compiled path needs input_ids (inputs_embeds run eagerly)")
    real = inputs["input_ids"].shape[-1]
    if length < real:
        raise ConfigError(f"cannot pad a sequence of {real} tokens to {length}")
    inputs.setdefault("attention_mask", np.ones_like(inputs["input_ids"]))
    padded = {}
    for key, value in inputs.items():
        # A 3-D (block-diagonal) attention_mask pads its query and key axes.
        axes = 2 if key == "attention_mask" and value.ndim == inputs["input_ids"].ndim + 1 else 1
        widths = [(0, 0)] * (value.ndim - axes) + [(0, length - real)] * axes
        if key == "position_ids":
            extra = np.arange(real, length, dtype=value.dtype) + (value[..., -1:] - real + 1 if real else 0)
            padded[key] = np.concatenate([value, np.broadcast_to(extra, value.shape[:-1] + (length - real,))], -1)
        else:
            fill = pad_token_id if _PADDED.get(key, 0) is None else 0
            padded[key] = np.pad(value, widths, constant_values=fill)
    return padded


def _slice(output: out.ModelOutput, length: int) -> out.ModelOutput:
    """Cut every sequence axis of ``output`` back to ``length``."""
    changes = {}
    for name in _SEQUENCE_FIELDS:
        if getattr(output, name, None) is not None:
            changes[name] = getattr(output, name)[:, :length]
    if isinstance(output, _TOKEN_LOGITS) and output.logits is not None:
        changes["logits"] = output.logits[:, :length]
    if getattr(output, "hidden_states", None) is not None:
        changes["hidden_states"] = tuple(h[:, :length] for h in output.hidden_states)
    if getattr(output, "attentions", None) is not None:
        changes["attentions"] = tuple(a[:, :, :length, :length] for a in output.attentions)
    for name, value in changes.items():
        setattr(output, name, value)
    return output


class CompiledCall:
    """A model's forward pass as one ``tf.function`` per argument set; with XLA, fed bucket-padded inputs.

    Args:
        model: a ``bert_tf`` model.
        jit_compile: compile with XLA (default: one program per batch size and bucket) or run as a
            plain TensorFlow graph (one graph serves every shape, inputs are not padded).
        buckets: the sequence lengths XLA inputs are padded up to.

    Calling it takes the eager call's arguments (``input_ids``, ``attention_mask``,
    ``token_type_ids``, ``position_ids``, labels, ``output_hidden_states``,
    ``output_attentions``, ``return_dict``) and returns the same output object, sliced to the true length.
    Decoder caches and cross-attention inputs are not compiled (a decoder returns no cache here);
    call the model for those. ``unpad`` (plain graph only; what :func:`unpad_mode` returned) makes
    the call follow the inference rule of :mod:`bert_core.unpad`.
    """

    def __init__(self, model, *, jit_compile: bool = True, buckets: Sequence[int] = DEFAULT_BUCKETS) -> None:
        self.model = model
        self.jit_compile = jit_compile
        self.buckets = tuple(buckets)
        self._functions: dict[tuple, tf.types.experimental.PolymorphicFunction] = {}

    def _function(self, names: tuple[str, ...], ranks: tuple[int, ...], flags: tuple[bool, bool, bool]):
        # The attention switch is read while tracing: a graph per implementation, so switching takes effect.
        key = (names, ranks, flags, self.model.attn_implementation)
        if key not in self._functions:
            signature = [tf.TensorSpec([None] * rank, tf.int32, name=name) for name, rank in zip(names, ranks)]
            output_hidden_states, output_attentions, unpad = flags

            # A cache computed over bucket padding would be wrong to return: the compiled path keeps none.
            no_cache = {"use_cache": False} if "use_cache" in inspect.signature(self.model.call).parameters else {}

            def forward(*tensors):
                inputs = dict(zip(names, tensors))
                packing = {name: inputs.pop(name) for name in PACKING_INPUTS if name in inputs} or None
                with unpadding_scope(Unpadding(packing) if unpad else None):
                    return self.model(**inputs, output_hidden_states=output_hidden_states,
                                      output_attentions=output_attentions, return_dict=True, training=False,
                                      **no_cache)

            self._functions[key] = tf.function(forward, input_signature=signature, jit_compile=self.jit_compile)
        return self._functions[key]

    def traced_count(self) -> int:
        """How many graphs have been traced so far (one per argument set, not per shape)."""
        return sum(f.experimental_get_tracing_count() for f in self._functions.values())

    def __call__(self, output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                 return_dict=None, *, unpad: UnpadPlan | bool = False, **inputs) -> Any:
        labels = {k: inputs.pop(k) for k in _LABELS if inputs.get(k) is not None}
        unknown = sorted(k for k, v in inputs.items() if v is not None and k not in _COMPILED_INPUTS)
        if unknown or inputs.get("inputs_embeds") is not None:
            raise ConfigError(f"the compiled path takes {list(_COMPILED_INPUTS[:4])} and labels; call the model "
                              f"itself for {unknown or ['inputs_embeds']}")
        config = self.model.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        if inputs.get("attention_mask") is not None:  # the eager call reads any nonzero value as "attend"
            inputs["attention_mask"] = (np.asarray(inputs["attention_mask"]) != 0).astype(np.int32)
        if inputs.get("input_ids") is None:
            raise ConfigError("the compiled path needs input_ids (inputs_embeds run eagerly)")
        real = np.shape(inputs["input_ids"])[-1]
        validate_inputs(config, input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids"),
                        position_ids=inputs.get("position_ids"), seq_length=real)
        # XLA compiles per shape, so it gets bucket lengths; a plain graph runs any shape as it is.
        # Never pad past the position table: padded positions would index outside it.
        length = min(bucket_length(real, self.buckets), max_sequence_length(config)) if self.jit_compile else real
        padded = pad_to_length(inputs, length, config.pad_token_id or 0)
        if "position_ids" in padded:  # the padding's positions count on; keep them inside the table
            padded["position_ids"] = np.minimum(padded["position_ids"], max_sequence_length(config) - 1)
        if unpad is not False and self.jit_compile:
            raise ConfigError("unpad is for the plain graph (jit_compile=False): XLA pads inputs to buckets")
        names = tuple(sorted(padded))
        tensors = [tf.constant(padded[n], tf.int32) for n in names]
        if isinstance(unpad, UnpadPlan):
            packing = packing_inputs(unpad)
            names, tensors = names + tuple(packing), tensors + [tf.constant(v) for v in packing.values()]
        function = self._function(names, tuple(t.shape.rank for t in tensors),
                                  (bool(output_hidden_states), bool(output_attentions), unpad is not False))
        output = function(*tensors)
        if length != real:
            output = _slice(output, real)
        if labels:
            output.loss = self.model.compute_head_loss(output, **labels)
        return_dict = config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()


def _recording() -> bool:
    """Whether a ``tf.GradientTape`` or ``tf.autodiff.ForwardAccumulator`` is active on this thread.

    TensorFlow has no public test for it; ``could_possibly_record`` is the one its own ops use to decide
    whether to record (true while any tape is open and not paused by ``stop_recording``). Without it,
    assume a tape may record: the eager call is always correct.
    """
    try:
        from tensorflow.python.eager.record import could_possibly_record
    except ImportError:
        return True
    return could_possibly_record()


def _integral(value) -> bool:
    if isinstance(value, tf.Tensor):
        return value.dtype.is_integer
    try:
        return np.asarray(value).dtype.kind in "iu"
    except ValueError:  # ragged nested lists: the eager call reports them
        return False


@tf.autograph.experimental.do_not_convert  # host-side Python, never part of a graph
def compilable_arguments(model, args: tuple, kwargs: dict) -> dict | None:
    """The call's arguments by name when ``model(*args, **kwargs)`` may run through :class:`CompiledCall`, else None.

    It may when the call is eager inference: TensorFlow executes eagerly (not inside ``tf.function``,
    ``fit`` or ``predict``), no tape records, ``training`` is falsy, the call is not nested in another Keras
    layer's call (whose ``training`` it would inherit) nor in a ``StatelessScope``, ``model.run_eagerly`` and
    ``tf.config.run_functions_eagerly`` are off, and every argument is one the compiled path takes:
    integer ``input_ids`` / ``token_type_ids`` / ``position_ids``, ``attention_mask`` (2-D or the 3-D
    block mask), labels, the output flags, and no decoder cache to return. Anything else runs eagerly.
    """
    if (model.run_eagerly or not tf.executing_eagerly() or tf.config.functions_run_eagerly() or _recording()
            or in_stateless_scope() or global_state.get_global_attribute("current_call_ctx") is not None):
        return None
    try:
        bound = inspect.signature(model.call).bind(*args, **kwargs)
    except TypeError:  # the eager call raises its own error
        return None
    arguments = {k: v for k, v in bound.arguments.items() if v is not None}
    if arguments.pop("training", False):
        return None
    use_cache = arguments.pop("use_cache", None)
    config = model.config
    labels = [k for k in model.label_names if k in arguments]
    if (config.is_decoder and "use_cache" in inspect.signature(model.call).parameters and not labels
            and (config.use_cache if use_cache is None else use_cache)):
        return None  # the caller wants the decoder cache
    flags = ("output_hidden_states", "output_attentions", "return_dict")
    if set(arguments) - set(_COMPILED_INPUTS[:4]) - set(labels) - set(flags) or "input_ids" not in arguments:
        return None
    if any(is_symbolic(arguments[k]) for k in _COMPILED_INPUTS[:4] if k in arguments):
        return None
    ids = arguments["input_ids"]
    if (not all(_integral(arguments[k]) for k in ("input_ids", "token_type_ids", "position_ids") if k in arguments)
            or np.size(ids) == 0 or np.ndim(ids) < 2):
        return None
    mask = arguments.get("attention_mask")
    if mask is not None and np.ndim(mask) not in (np.ndim(ids), np.ndim(ids) + 1):
        return None
    return arguments


#: Arguments that keep the padded path: the rule covers encoder self-attention without per-head options.
_PADDED_PATH_ARGS = ("head_mask", "encoder_hidden_states", "encoder_attention_mask", "past_key_values")


@tf.autograph.experimental.do_not_convert  # host-side Python, never part of a graph
def unpad_mode(model, arguments: Mapping[str, Any], inference: bool) -> UnpadPlan | bool:
    """How an eager call with ``arguments`` (by name) follows the inference rule of :mod:`bert_core.unpad`.

    ``False``: the padded path (``transformers``' values at masked positions); ``True``: zeros at masked
    positions; an :class:`~bert_core.unpad.UnpadPlan`: zeros there and the dense layers on the real tokens
    only. ``inference`` says the call is eager inference (:func:`compilable_arguments`); with
    ``set_unpadding(None)`` (the default) only those calls follow the rule, with ``True`` every eager call.
    """
    enabled = model._unpad_inputs
    if enabled is False or (enabled is None and (not inference or reads_padding())):
        return False
    config = model.config
    output_attentions = arguments.get("output_attentions")
    output_attentions = config.output_attentions if output_attentions is None else output_attentions
    mask = arguments.get("attention_mask")
    source = arguments.get("input_ids")
    rank = np.ndim(source) if source is not None else np.ndim(arguments.get("inputs_embeds")) - 1
    if (mask is None or is_symbolic(mask) or config.is_decoder or output_attentions or np.ndim(mask) != rank
            or any(arguments.get(k) is not None for k in _PADDED_PATH_ARGS)):
        return False
    labelled = any(arguments.get(k) is not None for k in model.label_names)
    if enabled is None and model.head.loss_reads_padding and labelled:
        return False
    mask = np.asarray(mask)
    mask = mask.reshape(-1, mask.shape[-1]) != 0  # multiple choice: (batch * choices, seq), as the encoder sees it
    if mask.all():
        return False  # nothing masked
    return UnpadPlan.from_mask(mask) or True


def bucket_dataset(dataset: tf.data.Dataset, batch_size: int, *, buckets: Sequence[int] = DEFAULT_BUCKETS,
                   pad_token_id: int = 0, drop_remainder: bool = False) -> tf.data.Dataset:
    """Batch unbatched ``(features, label)`` examples, each batch padded exactly to a bucket length.

    ``features`` is a dict of rank-1 integer tensors (``input_ids`` and optionally ``attention_mask`` /
    ``token_type_ids``); ``label`` a scalar. With ``model.compile(jit_compile=True)`` XLA then
    compiles one program per bucket (and batch size), not one per batch. Examples longer than
    the largest bucket raise. ``drop_remainder`` drops each bucket's last partial batch, so
    the batch size is fixed too (one XLA program per bucket).
    """
    features_spec, label_spec = dataset.element_spec
    padding = ({k: tf.constant(pad_token_id if k == "input_ids" else 0, spec.dtype)
                for k, spec in features_spec.items()}, tf.constant(0, label_spec.dtype))
    # pad_to_bucket_boundary pads to (boundary - 1): boundaries one past each bucket give the bucket itself.
    buckets = sorted(buckets)
    return dataset.bucket_by_sequence_length(
        lambda features, label: tf.shape(features["input_ids"])[0],
        bucket_boundaries=[b + 1 for b in buckets], bucket_batch_sizes=[batch_size] * (len(buckets) + 1),
        padding_values=padding, pad_to_bucket_boundary=True, drop_remainder=drop_remainder)
