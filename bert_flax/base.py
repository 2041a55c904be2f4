"""``FlaxBertPreTrainedModel``: the stateful wrapper every public Flax model is built on.

A wrapper holds a linen module and its ``params``, and is called like the
transformers 4.x Flax models: ``model(**inputs, params=None, dropout_rng=None,
train=False)`` checks the inputs on the host (:func:`check_inputs`), then runs
one jitted ``module.apply`` (compiled once per input shapes and switches); it
is differentiable with respect to ``params`` and returns the ``bert_core``
output classes (registered pytrees). An inference call follows the rule of
:mod:`bert_core.unpad` (zeros at masked positions, the real tokens packed where
it pays off; ``set_unpadding``). It also holds the attention switch
(``set_attn_implementation``), scan/remat switches, precision casts and
``from_pretrained`` / ``save_pretrained``.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from flax.core import unfreeze

from bert_core.config import BertConfig
from bert_core.errors import CheckpointError, ConfigError
from bert_core.heads import FLAG_ARGS, HEADS, Head
from bert_core.hub import PushToHubMixin
from bert_core.inputs import validate_inputs
from bert_core.unpad import check_unpadding, reads_padding

from . import loading
from ._apply import ModuleKey, compiled_apply
from .attention import ATTN_IMPLEMENTATIONS
from .generation import cache_index, cache_length
from .scan import scan_to_unscanned_params, unscanned_to_scan_params
from .unpad import packing_indices

__all__ = ["FlaxBertPreTrainedModel", "check_inputs"]


def _concrete(x):
    return None if x is None or isinstance(x, jax.core.Tracer) else x


def _first_leaf(tree):
    while isinstance(tree, Mapping):
        tree = next(iter(tree.values()))
    return tree


def check_inputs(config: BertConfig, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                 past_key_values_length=0) -> None:
    """:func:`bert_core.inputs.validate_inputs` on the concrete inputs (traced ones are skipped: under
    ``jit`` there are no values to check; the wrapper checks before its compiled call).

    Raises:
        InputError: an id, token type or position outside its table, or a sequence longer than
            ``max_position_embeddings``.
    """
    ref = input_ids if input_ids is not None else inputs_embeds
    past = _concrete(past_key_values_length)
    seq_length = None
    if ref is not None and past is not None:
        seq_length = ref.shape[-1] if input_ids is not None else ref.shape[-2]
    validate_inputs(config, input_ids=_concrete(input_ids), token_type_ids=_concrete(token_type_ids),
                    position_ids=_concrete(position_ids), seq_length=seq_length,
                    past_key_values_length=int(past or 0))


def _call_signature(head: Head) -> inspect.Signature:
    """``(self, <head.forward_args>, *, params, dropout_rng, train)``; Flax caches through ``init_cache``
    and the ``cache`` collection, so ``use_cache`` is left out and ``past_key_values`` is the cache."""
    P = inspect.Parameter
    names = [n for n in head.forward_args if n != "use_cache" and (n != "past_key_values" or head.decoder)]
    params = [P("self", P.POSITIONAL_OR_KEYWORD)] + [P(n, P.POSITIONAL_OR_KEYWORD, default=None) for n in names]
    params += [P("params", P.KEYWORD_ONLY, default=None), P("dropout_rng", P.KEYWORD_ONLY, default=None),
               P("train", P.KEYWORD_ONLY, default=False)]
    return inspect.Signature(params)


class FlaxBertPreTrainedModel(PushToHubMixin):
    """Base of the wrappers: holds ``module``, ``params``, ``config`` and ``dtype``.

    Args:
        config: the model config.
        input_shape: dummy input shape used to initialise the parameters.
        seed: PRNG seed of the initial parameters.
        dtype: compute dtype (``jnp.float32`` or ``jnp.bfloat16``; LayerNorm and softmax stay float32).
        param_dtype: dtype of newly initialised parameters.
        gradient_checkpointing: ``nn.remat`` every layer.
        scan_layers: ``nn.scan`` over the layers; ``params`` then hold stacked layers.
        attn_implementation: ``"sdpa"`` (``jax.nn.dot_product_attention``) or ``"eager"`` (the plain math).
        _do_init: initialise parameters now (``False`` leaves ``params`` unset until assigned).
    """

    module_class: type = None  # the linen module class (set per head in bert_flax.models)
    head: Head = HEADS["base"]
    default_input_shape: tuple[int, ...] = (1, 1)
    #: The argument that carries the main input, as ``transformers`` names it.
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True  # enable_gradient_checkpointing: nn.remat per layer

    @classmethod
    def can_generate(cls) -> bool:
        """True only for the causal decoder head (``FlaxBertForCausalLM``), as in ``transformers``."""
        return cls.head.loss == "causal_lm"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        base_call = FlaxBertPreTrainedModel.__call__

        def __call__(self, *args, **kwargs):
            return base_call(self, *args, **kwargs)

        # Publish the head's real arguments (labels, start_positions, past_key_values...) in the
        # transformers 4.x order, so help(), IDEs and the cross-backend drift test see them.
        cls._signature = _call_signature(cls.head)
        cls._keyword_names = frozenset(cls._signature.parameters) - {"self", "params", "dropout_rng", "train"}
        __call__.__signature__ = cls._signature
        __call__.__doc__ = base_call.__doc__
        cls.__call__ = __call__

    def __init__(self, config: BertConfig, input_shape: tuple[int, ...] | None = None, seed: int = 0,
                 dtype: Any = jnp.float32, param_dtype: Any = jnp.float32, *, gradient_checkpointing: bool = False,
                 scan_layers: bool = False, attn_implementation: str = "sdpa", _do_init: bool = True,
                 **module_kwargs: Any) -> None:
        if not isinstance(config, BertConfig):
            raise ConfigError(f"{type(self).__name__} needs a BertConfig, got {type(config).__name__}")
        config.validate()  # a config edited after construction must not reach the allocators
        self.config = config
        self.dtype = jnp.dtype(dtype or jnp.float32)  # accepts jnp.bfloat16, "bfloat16" or None
        self.param_dtype = jnp.dtype(param_dtype or jnp.float32)
        self.input_shape = tuple(input_shape or self.default_input_shape)
        self._module_kwargs = dict(module_kwargs)
        self._params = None
        self._module_key = None
        self._unpad_inputs: bool | None = None  # set_unpadding's choice
        self._check_attn_implementation(attn_implementation)
        self._build(gradient_checkpointing=gradient_checkpointing, scan_layers=scan_layers,
                    attn_implementation=attn_implementation)
        if _do_init:
            self.params = self.init_weights(jax.random.PRNGKey(seed), self.input_shape)

    # -- module and compiled apply -------------------------------------------

    def _build(self, **options: Any) -> None:
        """(Re)build ``module`` with ``options`` changed (gradient_checkpointing, scan_layers, attn_implementation)."""
        current = {} if not hasattr(self, "module") else {
            "gradient_checkpointing": self.module.gradient_checkpointing, "scan_layers": self.module.scan_layers,
            "attn_implementation": self.module.attn_implementation}
        self.module = self.module_class(self.config, dtype=self.dtype, param_dtype=self.param_dtype,
                                        **{**current, **options}, **self._module_kwargs)
        shapes = jax.eval_shape(lambda rng: self.init_weights(rng, self.input_shape), jax.random.PRNGKey(0))
        self._param_shapes = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes, sep=".").items()}

    @staticmethod
    def _check_attn_implementation(name: str) -> None:
        if name not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(f"attn_implementation={name!r}: choose one of {list(ATTN_IMPLEMENTATIONS)}")

    @property
    def attn_implementation(self) -> str:
        """``"sdpa"`` (``jax.nn.dot_product_attention``) or ``"eager"``; probabilities, a head mask or
        attention dropout always take the eager path."""
        return self.module.attn_implementation

    def set_attn_implementation(self, attn_implementation: str) -> None:
        """Switch the attention path (``"sdpa"`` | ``"eager"``); parameters and outputs are unchanged."""
        self._check_attn_implementation(attn_implementation)
        self._build(attn_implementation=attn_implementation)

    def set_unpadding(self, enabled: bool | None = True) -> None:
        """Choose which calls follow the inference rule of :mod:`bert_core.unpad`.

        Those calls return zeros at the masked positions of ``last_hidden_state`` and ``hidden_states``
        and, on a right-padded batch with at least 10% padding, run the dense layers on the real tokens
        only (:mod:`bert_flax.unpad`). Real positions, the pooled output and the heads keep their values
        (to float rounding); losses over padded positions (question answering's softmax over the
        sequence) change.

        Args:
            enabled: ``None`` (the default of a new model): inference calls only, i.e. ``train=False``,
                parameters and inputs not traced (not under your ``jax.grad`` / ``jax.jit``), no labels
                of a per-token head, no :func:`~bert_core.unpad.padding_read`; ``True``: every call whose
                inputs are concrete, training and ``jax.grad`` with respect to ``params`` included
                (gradients equal the padded path's; leave it off when training on a loss over padded
                positions); ``False``: never (``transformers``' values at every position). Traced
                inputs (your ``jax.jit``, ``jax-export``, ``jax2tf``) always keep the padded path.

        Raises:
            ConfigError: ``enabled`` is not ``True``, ``False`` or ``None``.
        """
        self._unpad_inputs = check_unpadding(enabled)

    @property
    def scan_layers(self) -> bool:
        return self.module.scan_layers

    @property
    def gradient_checkpointing(self) -> bool:
        return self.module.gradient_checkpointing

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each layer in the backward pass (``nn.remat``); outputs and gradients are unchanged."""
        self._build(gradient_checkpointing=True)

    def enable_scan_layers(self) -> None:
        """Switch to ``nn.scan`` over the layers, converting ``params`` to the stacked layout."""
        params = self._params
        self._build(scan_layers=True)
        if params is not None:
            self.params = unscanned_to_scan_params(params)

    def disable_scan_layers(self) -> None:
        """Back to one module per layer, converting ``params`` to ``encoder/layer/<i>``."""
        params = self._params
        self._build(scan_layers=False)
        if params is not None:
            self.params = scan_to_unscanned_params(params)

    # -- parameters ----------------------------------------------------------

    @property
    def params(self) -> dict:
        """The parameter tree; assigning checks every path and shape against the module."""
        if self._params is None:
            raise ValueError(f"{type(self).__name__} was built with _do_init=False and has no params yet; "
                             f"assign model.params or call model.init_weights(rng, input_shape)")
        return self._params

    @params.setter
    def params(self, params: Mapping) -> None:
        params = unfreeze(params)
        flat = {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(params, sep=".").items()}
        missing = sorted(set(self._param_shapes) - set(flat))
        unexpected = sorted(set(flat) - set(self._param_shapes))
        wrong = [f"{k}: given {flat[k]} vs model {self._param_shapes[k]}"
                 for k in sorted(set(flat) & set(self._param_shapes)) if flat[k] != self._param_shapes[k]]
        if missing or unexpected or wrong:
            raise CheckpointError(
                f"params do not fit {type(self).__name__}: missing {missing}, unexpected {unexpected}, "
                f"wrong shapes {wrong}")
        self._params = params

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{dotted param path: shape}`` of this model's parameter tree."""
        return dict(self._param_shapes)

    def _dummy_inputs(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        input_ids = jnp.zeros(input_shape, dtype="i4")
        inputs = {"input_ids": input_ids, "attention_mask": jnp.ones_like(input_ids)}
        if self.config.add_cross_attention and self.head.cross_attention:
            inputs["encoder_hidden_states"] = jnp.zeros(input_shape + (self.config.hidden_size,), self.dtype)
            inputs["encoder_attention_mask"] = jnp.ones_like(input_ids)
        return inputs

    def init_weights(self, rng, input_shape: tuple[int, ...], params: Mapping | None = None) -> dict:
        """Random parameters as transformers initialises them, seeded by ``rng``.

        With ``params``, only the keys missing from it are filled (what loading a
        partial checkpoint needs). Returns the parameter tree.
        """
        params_rng, dropout_rng = jax.random.split(rng)
        variables = self.module.init({"params": params_rng, "dropout": dropout_rng},
                                     **self._dummy_inputs(tuple(input_shape)))
        random_params = unfreeze(variables["params"])
        if params is None:
            return random_params
        flat_random = traverse_util.flatten_dict(random_params)
        flat_random.update(traverse_util.flatten_dict(unfreeze(params)))
        return traverse_util.unflatten_dict(flat_random)

    # -- precision -----------------------------------------------------------

    @staticmethod
    def _cast_floating(params, dtype, mask=None):
        def cast(x, keep=True):
            return x.astype(dtype) if keep and jnp.issubdtype(x.dtype, jnp.floating) else x

        if mask is None:
            return jax.tree_util.tree_map(cast, params)
        return jax.tree_util.tree_map(cast, params, mask)

    def to_bf16(self, params=None, mask=None) -> dict:
        """Return ``params`` (default: ``self.params``) cast to bfloat16.

        ``mask`` (a tree like ``params`` of booleans) limits the cast to the ``True`` leaves.
        """
        return self._cast_floating(self.params if params is None else params, jnp.bfloat16, mask)

    def to_fp16(self, params=None, mask=None) -> dict:
        """Return ``params`` cast to float16 (see :meth:`to_bf16`)."""
        return self._cast_floating(self.params if params is None else params, jnp.float16, mask)

    def to_fp32(self, params=None, mask=None) -> dict:
        """Return ``params`` cast to float32 (see :meth:`to_bf16`)."""
        return self._cast_floating(self.params if params is None else params, jnp.float32, mask)

    # -- the call ------------------------------------------------------------

    def __call__(self, *args, params=None, dropout_rng=None, train: bool = False, **kwargs):
        """Run the model: ``model(**inputs, params=None, dropout_rng=None, train=False)``.

        Args:
            *args / **kwargs: the transformers 4.x arguments of this head, in its order
                (``input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds``,
                then ``encoder_hidden_states`` / ``encoder_attention_mask``, the labels,
                ``past_key_values`` (a cache from ``init_cache``), ``output_attentions``,
                ``output_hidden_states``, ``return_dict``); ``(batch, choices, seq)`` for multiple choice.
            params: parameters to use instead of ``self.params`` (differentiate with respect to these).
            dropout_rng: PRNG key for dropout; needed when ``train=True`` and dropout is non-zero.
            train: enable dropout.

        Returns:
            The head's ``bert_core`` output class, or its tuple when ``return_dict=False``. An inference
            call returns zeros at the masked positions of ``last_hidden_state`` / ``hidden_states``
            (see :meth:`set_unpadding`).

        Raises:
            InputError: ids, token types or positions outside their tables (checked on the host first).
        """
        c = self.config
        if not args and kwargs.keys() <= self._keyword_names:
            given = kwargs  # the usual model(**inputs): what bind() would return, without its cost
        else:
            given = self._signature.bind(self, *args, **kwargs).arguments
            given.pop("self")
        flags = {n: given.pop(n, None) for n in FLAG_ARGS}
        flags = {n: getattr(c, n) if v is None else bool(v) for n, v in flags.items()}
        cache = given.pop("past_key_values", None)
        if given.get("input_ids") is None and given.get("inputs_embeds") is None:
            raise ValueError("pass input_ids or inputs_embeds")
        # numpy and jax arrays go to the jitted call as they are (its C++ dispatch converts them on the
        # way in); anything else (lists, other frameworks' tensors) becomes numpy once, here.
        inputs = {k: v if isinstance(v, (np.ndarray, jax.Array)) else np.asarray(v)
                  for k, v in given.items() if v is not None}
        past = 0 if cache is None else _concrete(cache_index(cache))  # None under an outer jit
        check_inputs(c, inputs.get("input_ids"), inputs.get("token_type_ids"), inputs.get("position_ids"),
                     inputs.get("inputs_embeds"), past)
        if cache is not None:
            ref = inputs.get("input_ids", inputs.get("inputs_embeds"))
            inputs.setdefault("attention_mask", jnp.ones((ref.shape[0], cache_length(cache)), dtype="i4"))
            if inputs["attention_mask"].shape[-1] != cache_length(cache):
                raise ValueError(f"with past_key_values the attention_mask covers the whole cache: expected "
                                 f"(batch, {cache_length(cache)}), got {tuple(inputs['attention_mask'].shape)}; "
                                 f"build it with prepare_inputs_for_generation")
        dropout_active = max(c.hidden_dropout_prob, c.attention_probs_dropout_prob, c.classifier_dropout or 0) > 0
        if train and dropout_active and dropout_rng is None:
            raise ValueError("train=True applies dropout: pass dropout_rng=jax.random.PRNGKey(...)")
        zero_padding, packing = self._padding_rule(inputs, params, bool(train), flags["output_attentions"])
        output = compiled_apply(self.params if params is None else params, inputs, dropout_rng, cache, packing,
                                module_key=self._current_module_key(), train=bool(train),
                                output_attentions=flags["output_attentions"],
                                output_hidden_states=flags["output_hidden_states"], zero_padding=zero_padding)
        return output if flags["return_dict"] else output.to_tuple()

    def _padding_rule(self, inputs: dict, params, train: bool, output_attentions: bool):
        """``(zero_padding, packing)`` for this call, decided on the host (:mod:`bert_core.unpad`).

        ``zero_padding``: the call returns zeros at masked positions; ``packing``: the ``(indices,
        slots)`` of :func:`bert_flax.unpad.packing_indices` where packing pays off, else ``None``.
        """
        enabled, head = self._unpad_inputs, self.head
        mask = inputs.get("attention_mask")
        if (enabled is False or mask is None or mask.ndim != (3 if head.choices else 2) or self.config.is_decoder
                or output_attentions or "head_mask" in inputs or "encoder_hidden_states" in inputs):
            return False, None
        if enabled is None and (train or reads_padding()
                                or (head.loss_reads_padding and any(n in inputs for n in head.labels))
                                or (params is not None and isinstance(_first_leaf(params), jax.core.Tracer))):
            return False, None
        if any(isinstance(x, jax.core.Tracer) for x in inputs.values()):
            return False, None  # traced inputs have no values to decide on
        mask = mask if isinstance(mask, np.ndarray) else np.asarray(mask)
        if mask.all():
            return False, None
        return True, packing_indices(mask.reshape(-1, mask.shape[-1]))

    def _current_module_key(self) -> ModuleKey:
        """The compiled-code key of ``module``, rebuilt only after ``module`` or ``config`` changed."""
        if self._module_key is None or not self._module_key.is_current(self.module):
            self._module_key = ModuleKey(self.module)
        return self._module_key

    # -- saving and loading (see bert_flax.loading) --------------------------

    from_pretrained = classmethod(loading.from_pretrained)
    save_pretrained = loading.save_pretrained
    to_bytes = loading.to_bytes
    from_bytes = loading.from_bytes
    canonical_state = loading.canonical_state

    def __repr__(self) -> str:
        n = sum(int(np.prod(s)) for s in self._param_shapes.values())
        name = type(self).__name__
        return f"{name}({n:,} params, dtype={jnp.dtype(self.dtype).name}, scan_layers={self.scan_layers})"
