"""``TFBertPreTrainedModel``: what every public model shares (config, parameter paths, loading, Keras plumbing).

Parameters are named by walking the layers' attribute names, never Keras'
auto-generated variable paths: ``named_weights()`` returns keys such as
``bert.encoder.layer.0.attention.self.query.kernel``, which
``conversion.rules`` maps to the canonical checkpoint keys.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Mapping

import keras
import tensorflow as tf
from keras.src.backend.common import global_state

from bert_core.config import BertConfig
from bert_core.errors import ConfigError
from bert_core.heads import HEADS, Head
from bert_core.hub import PushToHubMixin
from bert_core.inputs import InputError, validate_inputs
from bert_core.outputs import ModelOutput
from bert_core.unpad import UnpadPlan, check_unpadding
from conversion.rules import TIED_KEYS, from_framework_key

from ._common import is_symbolic
from .attention import ATTN_IMPLEMENTATIONS, TFBertSelfAttention
from .compiled import CompiledCall, Unpadding, compilable_arguments, packing_inputs, unpad_mode, unpadding_scope

__all__ = ["TFBertPreTrainedModel", "named_weights", "dense_gradients", "check_inputs"]

#: Keras' own layers and the leaf names under which their variables are exposed.
_LEAF_VARIABLES = {
    keras.layers.Dense: ("kernel", "bias"),
    keras.layers.LayerNormalization: ("gamma", "beta"),
    keras.layers.Embedding: ("embeddings",),
}


def _walk(layer: keras.layers.Layer, prefix: str, out: dict[str, keras.Variable]) -> None:
    for leaf_type, leaves in _LEAF_VARIABLES.items():
        if isinstance(layer, leaf_type):
            for leaf in leaves:
                variable = getattr(layer, leaf, None)
                if variable is not None:
                    out[prefix + leaf] = variable
            return
    for name, value in vars(layer).items():
        if name.startswith("_"):
            continue
        if isinstance(value, keras.Variable):
            out[prefix + name] = value
        elif isinstance(value, keras.layers.Layer):
            _walk(value, f"{prefix}{name}.", out)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, keras.layers.Layer) for v in value):
            for i, sub in enumerate(value):
                _walk(sub, f"{prefix}{name}.{i}.", out)


def named_weights(layer: keras.layers.Layer) -> dict[str, keras.Variable]:
    """``{"bert.encoder.layer.0.attention.self.query.kernel": variable, ...}`` in construction order.

    Paths are the attribute names of the layers (the HF PyTorch module paths) and
    the Keras leaf names of :mod:`conversion.rules` (``kernel``, ``bias``, ``gamma``,
    ``beta``, ``embeddings``). The MLM decoder shares the word-embedding variable,
    so it has no entry of its own.
    """
    out: dict[str, keras.Variable] = {}
    _walk(layer, "", out)
    return out


def _extrema(values) -> tuple[int, int] | None:
    """``(min, max)`` of an integer tensor as Python ints, reduced by TensorFlow (one scalar each to the host)."""
    values = tf.convert_to_tensor(values)
    if values.shape.num_elements() == 0:
        return None
    return int(tf.reduce_min(values)), int(tf.reduce_max(values))


def check_inputs(config: BertConfig, *, input_ids=None, token_type_ids=None, position_ids=None,
                 seq_length: int | None = None, past_key_values_length=0) -> None:
    """:func:`bert_core.validate_inputs` on concrete inputs; skipped while TensorFlow traces (symbolic inputs).

    An out-of-range id would otherwise wrap (negative ids) or clamp (XLA, GPU gathers) silently.
    Inside ``tf.function`` / Keras functional construction the values are not known; compiled calls
    (:class:`bert_tf.compiled.CompiledCall`) check them on the host before the graph runs.

    Raises:
        InputError: an id, token type or position outside its table, or a sequence too long.
    """
    values = (input_ids, token_type_ids, position_ids, seq_length, past_key_values_length)
    if not tf.executing_eagerly() or any(is_symbolic(v) for v in values if v is not None):
        return
    validate_inputs(config, input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
                    seq_length=None if seq_length is None else int(seq_length),
                    past_key_values_length=int(past_key_values_length), extrema=_extrema)


def _is_input_list(value) -> bool:
    """Whether ``value`` is a list / tuple of input tensors (each with a shape, or None), not nested Python ids."""
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(v is None or hasattr(v, "shape") for v in value)
            and any(v is not None for v in value))


def dense_gradients(gradients):
    """The gradients with every ``tf.IndexedSlices`` summed into a dense tensor (others, ``None`` too, as given).

    An embedding lookup's gradient holds one row per token occurrence. Keras' Adam (and AdamW, and
    every optimizer that squares the gradient) squares those rows one by one, so a token seen ``k``
    times gets the sum of ``k`` squares as its second moment instead of the square of the summed
    gradient: two equal rows move the weight ``sqrt(2)`` times too far. The dense sum is what PyTorch's
    ``nn.Embedding`` gives. It costs little: Keras' Adam densifies the slices anyway (its moments are dense),
    and on a 30522 x 768 table with 8 x 128 tokens the dense step measured faster than the sparse one
    (0.41 s vs 0.51 s on 2 CPU cores).
    """
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]


class TFBertPreTrainedModel(PushToHubMixin, keras.Model):
    """Base of the public models: holds the config, builds every weight at construction.

    Subclasses define ``build`` (creating all weights from the config), ``call`` and,
    for heads, ``label_names`` and ``compute_head_loss``.
    """

    head: Head = HEADS["base"]
    #: Keyword arguments of ``call`` that carry labels.
    label_names: tuple[str, ...] = ()
    #: The argument that carries the main input, as ``transformers`` names it.
    main_input_name = "input_ids"
    #: No activation recomputation in the Keras backend (transformers 4.x TF had none either).
    supports_gradient_checkpointing = False
    #: The output fields a Keras compiled loss / metric sees (the first one set).
    logits_names: tuple[str, ...] = ("logits",)
    #: :meth:`set_unpadding`'s choice (None: eager inference calls only); a plain attribute, never a Keras one.
    _unpad_inputs: bool | None = None

    def __init__(self, config: BertConfig, **kwargs) -> None:
        if not isinstance(config, BertConfig):
            raise ConfigError(f"{type(self).__name__} needs a BertConfig, got {type(config).__name__}")
        super().__init__(**kwargs)
        config.validate()
        self.config = config
        self._called_eagerly = False  # inference takes the graph once the model has had an eager call

    @classmethod
    def can_generate(cls) -> bool:
        """True only for the causal decoder head (``TFBertLMHeadModel``), as in ``transformers``."""
        return cls.head.loss == "causal_lm"

    # -- Keras plumbing -----------------------------------------------------

    def _finish_init(self) -> None:
        self.build(None)

    def build_from_config(self, config) -> None:
        # Every weight is created in __init__ from the BertConfig; nothing is left to build.
        return None

    def get_build_config(self):
        return None

    def _constructor_config(self) -> dict[str, Any]:
        return {}

    def get_config(self) -> dict[str, Any]:
        """``{"config": BertConfig.to_dict(), name, trainable, dtype, constructor args}``."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "config": self.config.to_dict(),
            **self._constructor_config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        config = dict(config)
        bert_config = BertConfig.from_dict(config.pop("config"))
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(bert_config, **config)

    def __call__(self, *args, **kwargs):
        # Keras' fit/evaluate/predict pass the whole input dict as the first argument; the functional
        # habit of transformers 4.x passes a list / tuple of tensors in the call's argument order.
        if args and isinstance(args[0], Mapping):
            kwargs = {**args[0], **kwargs}
            args = args[1:]
        elif args and _is_input_list(args[0]):
            kwargs = {**self._inputs_by_position(args[0], kwargs), **kwargs}
            args = args[1:]
        # Eager inference runs the cached graph (same outputs) once the model has been called eagerly: the
        # first call builds it, and a model called once would pay a trace (~30 eager calls) for nothing.
        # Training, tapes and tracing stay eager Keras calls. Both eager paths follow bert_core.unpad's rule.
        if tf.executing_eagerly():
            arguments = compilable_arguments(self, args, kwargs)
            if arguments is not None and self._called_eagerly:
                return self._compiled(jit_compile=False)(**arguments, unpad=unpad_mode(self, arguments, True))
            self._called_eagerly = True
            unpad = self._eager_unpad_mode(args, kwargs, arguments)
            if unpad is not False:
                packing = ({k: tf.constant(v) for k, v in packing_inputs(unpad).items()}
                           if isinstance(unpad, UnpadPlan) else None)
                with unpadding_scope(Unpadding(packing)):
                    return super().__call__(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def _eager_unpad_mode(self, args, kwargs, arguments: dict | None) -> UnpadPlan | bool:
        """:func:`~bert_tf.compiled.unpad_mode` of an eager Keras call; one nested in a layer's keeps its caller's."""
        if global_state.get_global_attribute("current_call_ctx") is not None:
            return False
        if arguments is not None:  # eager inference (the model's first call)
            return unpad_mode(self, arguments, inference=True)
        if self._unpad_inputs is not True:
            return False
        try:
            bound = inspect.signature(self.call).bind(*args, **kwargs).arguments
        except TypeError:  # the eager call raises its own error
            return False
        return unpad_mode(self, {k: v for k, v in bound.items() if v is not None}, inference=False)

    def _inputs_by_position(self, values, kwargs) -> dict[str, Any]:
        """``{argument: tensor}`` of a list / tuple of inputs, in the order of :meth:`call`'s arguments."""
        names = [n for n in inspect.signature(self.call).parameters if n != "training"]
        if len(values) > len(names):
            raise InputError(f"{type(self).__name__} got {len(values)} inputs in a list; it takes at most "
                             f"{len(names)}, in this order: {names}")
        given = dict(zip(names, values))
        twice = sorted(set(given) & set(kwargs))
        if twice:
            raise InputError(f"{twice} given both in the input list and as keywords")
        return given

    def _main_logits(self, outputs):
        if isinstance(outputs, ModelOutput):
            for name in self.logits_names:
                if getattr(outputs, name, None) is not None:
                    return getattr(outputs, name)
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The loss ``fit`` minimises.

        With ``compile(loss=...)`` that loss is applied to the main logits; otherwise
        the model's own label loss (labels inside ``x`` or given as ``y``), reduced as
        PyTorch reduces it.
        """
        if self._compile_loss is not None:
            return super().compute_loss(x, y, self._main_logits(y_pred), sample_weight, training)
        loss = getattr(y_pred, "loss", None)
        if loss is None:
            if y is None:
                raise ConfigError(f"{type(self).__name__}.fit needs labels: put {list(self.label_names)} in the inputs, "
                                  f"pass them as y, or compile(loss=...)")
            labels = dict(y) if isinstance(y, Mapping) else {self.label_names[0]: y}
            loss = self.compute_head_loss(y_pred, **labels)
        for extra in self.losses:
            loss = loss + tf.cast(extra, loss.dtype)
        # Under a tf.distribute strategy Keras sums the replicas' gradients, and its own losses divide by
        # the replica count (keras.losses.Loss does) so that the sum is a mean: the model's loss must too.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return loss / replicas if replicas > 1 else loss

    def train_step(self, data):
        """One ``fit`` step: Keras' own TensorFlow step, with embedding gradients made dense.

        The same forward, loss, loss tracking, loss scaling and ``optimizer.apply_gradients`` as
        ``keras.Model.train_step``; the only change is :func:`dense_gradients` between the tape and
        the optimizer, so Adam / AdamW train the embeddings as ``torch.optim`` does (on one device
        and under a ``tf.distribute`` strategy alike).
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            # The tracker reports the global batch's loss: undo the division by the replica count.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            rows = tf.shape(next(t for t in tf.nest.flatten(x) if t is not None))[0]
            self._loss_tracker.update_state(loss * replicas if replicas > 1 else loss, sample_weight=rows)
            loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_weights
        if variables:
            gradients = dense_gradients(tape.gradient(loss, variables))
            self.optimizer.apply_gradients(zip(gradients, variables))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if y is None and isinstance(x, Mapping) and self.label_names and self.label_names[0] in x:
            y = x[self.label_names[0]]
        return super().compute_metrics(x, y, self._main_logits(y_pred), sample_weight)

    def compute_head_loss(self, outputs: ModelOutput, **labels) -> tf.Tensor:
        """The loss of this head for ``outputs`` and the label tensors (keywords of :attr:`label_names`)."""
        raise ConfigError(f"{type(self).__name__} has no label loss")

    def compiled_call(self, **inputs):
        """The forward pass compiled with XLA over bucket-padded inputs; see :class:`bert_tf.compiled.CompiledCall`.

        Same arguments and outputs as calling the model (no decoder cache or cross-attention inputs).
        """
        return self._compiled(jit_compile=True)(**inputs)

    def _compiled(self, jit_compile: bool) -> CompiledCall:
        """The model's :class:`CompiledCall` (XLA, or the plain graph eager inference runs), made on first use."""
        cache = self.__dict__.get("_compiled_calls")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_compiled_calls", cache)  # not a Keras-tracked attribute
        if jit_compile not in cache:
            cache[jit_compile] = CompiledCall(self, jit_compile=jit_compile)
        return cache[jit_compile]

    def set_unpadding(self, enabled: bool | None = True) -> None:
        """Choose which calls follow the inference rule of :mod:`bert_core.unpad`.

        Those calls return zeros at masked positions of ``last_hidden_state`` / ``hidden_states`` and,
        on a right-padded batch with enough padding, run the dense layers on the real tokens only. Real
        positions, the pooler and pooled heads keep their values (to float rounding); losses over padded
        positions (question answering's softmax over the sequence) change.

        Args:
            enabled: ``None`` (the default of a new model): eager inference calls only (``model(**inputs)``
                outside a tape, ``tf.function``, ``fit`` / ``predict``, ``training`` falsy, no labels of a
                per-token head, no :func:`~bert_core.unpad.padding_read`); ``True``: every eager call where
                it applies, training and tapes included (leave it off when training on a loss over padded
                positions); ``False``: never (``transformers``' values at every position). Tracing
                (``tf.function``, ``fit``, SavedModel and serving signatures, ``compiled_call``) always keeps
                the padded path.

        Raises:
            ConfigError: ``enabled`` is not True, False or None.
        """
        check_unpadding(enabled)
        for layer in self._flatten_layers(include_self=True):
            if isinstance(layer, TFBertPreTrainedModel):
                object.__setattr__(layer, "_unpad_inputs", enabled)  # not a Keras-tracked attribute

    # -- attention ----------------------------------------------------------

    def _attention_layers(self) -> list[TFBertSelfAttention]:
        return [layer for layer in self._flatten_layers(include_self=False) if isinstance(layer, TFBertSelfAttention)]

    @property
    def attn_implementation(self) -> str:
        """``"sdpa"`` (the fused ``keras.ops.dot_product_attention`` path, the default) or ``"eager"`` (plain math)."""
        layers = self._attention_layers()
        return layers[0].attn_implementation if layers else "sdpa"

    def set_attn_implementation(self, name: str) -> None:
        """Switch every attention layer to ``"sdpa"`` or ``"eager"``; both compute the same numbers.

        Whatever the switch, a call with ``output_attentions``, a ``head_mask`` or attention dropout in
        training runs the eager path, the only one that has the probabilities.

        Raises:
            ConfigError: an unknown name.
        """
        if name not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(f"attn_implementation {name!r} is not supported; use one of {list(ATTN_IMPLEMENTATIONS)}")
        for layer in self._attention_layers():
            layer.attn_implementation = name

    # -- parameters ---------------------------------------------------------

    def named_weights(self) -> dict[str, keras.Variable]:
        """See :func:`named_weights`."""
        return named_weights(self)

    def canonical_weights(self) -> dict[str, tuple[keras.Variable, bool]]:
        """``{canonical key: (variable, transpose)}``: the checkpoint key of every variable."""
        out = {}
        for key, variable in self.named_weights().items():
            canonical, transpose = from_framework_key(key, "keras")
            out[canonical] = (variable, transpose)
        return out

    def tied_keys(self) -> dict[str, str]:
        """Canonical keys that share storage with another weight (the MLM decoder), and what they share."""
        keys = self.canonical_weights()
        if "cls.predictions.bias" not in keys:
            return {}
        # The decoder bias is always cls.predictions.bias; the decoder weight unless tie_word_embeddings=False.
        return {k: v for k, v in TIED_KEYS.items() if k not in keys and v in keys}

    # -- checkpoints --------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Load from a directory or hub id (positional or by ``transformers``' keyword);
        see :func:`bert_tf.loading.from_pretrained`."""
        from .loading import from_pretrained

        return from_pretrained(cls, pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, saved_model: bool = False, version: int = 1,
                        signatures=None, **kwargs) -> None:
        """Write ``config.json`` + canonical safetensors; see :func:`bert_tf.loading.save_pretrained`.

        ``saved_model=True`` also writes a SavedModel in ``save_directory/saved_model/<version>`` as
        ``transformers`` 4.x did: signatures ``serving_default`` (int32 ids) and ``int64_serving``
        (``signatures=`` replaces them), see :mod:`bert_tf.serving`.
        """
        from .loading import save_pretrained

        save_pretrained(self, save_directory, **kwargs)
        if saved_model:
            from bert_core._io import atomic_directory

            from .serving import serving_signatures

            with atomic_directory(os.path.join(save_directory, "saved_model", str(version))) as tmp:
                tf.saved_model.save(self, str(tmp), signatures=signatures or serving_signatures(self))

    # -- export (bert_tf.serving) ---------------------------------------------

    @property
    def input_signature(self) -> dict[str, tf.TensorSpec]:
        """int32 ``input_ids`` / ``attention_mask`` / ``token_type_ids`` specs, as 4.x (:func:`bert_tf.serving.input_signature`)."""
        from .serving import input_signature

        return input_signature(self)

    @property
    def _default_save_signature(self):
        # What tf.saved_model.save(model, dir) serves without signatures=: Keras derives one from the
        # build shapes, which a model built from its config (not from inputs) does not have.
        from .serving import default_signature

        return default_signature(self)

    def export(self, filepath, format: str = "tf_saved_model", verbose: bool | None = None, input_signature=None,
               **kwargs):
        """Keras' ``export``; a SavedModel without ``input_signature`` gets :func:`bert_tf.serving.export_keras`'s
        int32 (``serve``, ``serving_default``) and int64 (``int64_serving``) endpoints over token ids."""
        if format == "tf_saved_model" and input_signature is None and not kwargs:
            from .serving import export_keras

            return export_keras(self, filepath, verbose=verbose)
        return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs)
