"""Stateful wrappers: a linen module plus its ``params``, called like transformers 4.x Flax models.

``model(**inputs, params=None, dropout_rng=None, train=False)`` runs a jitted
``module.apply`` (compiled once per input shapes and switches), is
differentiable with respect to ``params`` and returns the ``bert_core`` output
classes (registered pytrees).
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
from bert_core.heads import HEADS, Head

from . import loading
from ._apply import ModuleKey, compiled_apply
from .generation import FlaxGenerationMixin, cache_length
from .models import (FlaxBertForCausalLMModule, FlaxBertForMaskedLMModule, FlaxBertForMultipleChoiceModule,
                     FlaxBertForNextSentencePredictionModule, FlaxBertForPreTrainingModule,
                     FlaxBertForQuestionAnsweringModule, FlaxBertForSequenceClassificationModule,
                     FlaxBertForTokenClassificationModule, FlaxBertModule)
from .scan import scan_to_unscanned_params, unscanned_to_scan_params

__all__ = [
    "FlaxBertPreTrainedModel",
    "FlaxBertModel",
    "FlaxBertForPreTraining",
    "FlaxBertForCausalLM",
    "FlaxBertForMaskedLM",
    "FlaxBertForNextSentencePrediction",
    "FlaxBertForSequenceClassification",
    "FlaxBertForMultipleChoice",
    "FlaxBertForTokenClassification",
    "FlaxBertForQuestionAnswering",
]

# Array inputs a module may take (besides input_ids), in the order of the module signatures.
_ARRAY_INPUTS = ("attention_mask", "token_type_ids", "position_ids", "head_mask", "inputs_embeds",
                 "encoder_hidden_states", "encoder_attention_mask", "labels", "next_sentence_label",
                 "start_positions", "end_positions")


class FlaxBertPreTrainedModel:
    """Base of the wrappers: holds ``module``, ``params``, ``config`` and ``dtype``.

    Args:
        config: the model config.
        input_shape: dummy input shape used to initialise the parameters.
        seed: PRNG seed of the initial parameters.
        dtype: compute dtype (``jnp.float32`` or ``jnp.bfloat16``; LayerNorm and softmax stay float32).
        param_dtype: dtype of newly initialised parameters.
        gradient_checkpointing: ``nn.remat`` every layer.
        scan_layers: ``nn.scan`` over the layers; ``params`` then hold stacked layers.
        _do_init: initialise parameters now (``False`` leaves ``params`` unset until assigned).
    """

    module_class: type = FlaxBertModule
    head: Head = HEADS["base"]
    default_input_shape: tuple[int, ...] = (1, 1)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        base_call = FlaxBertPreTrainedModel.__call__

        def __call__(self, *args, **kwargs):
            return base_call(self, *args, **kwargs)

        # Publish the head's real inputs (labels, start_positions, past_key_values...) in the signature,
        # so help(), IDEs and the cross-backend drift test see them instead of **head_inputs.
        signature = inspect.signature(base_call)
        params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        accepted = inspect.signature(cls.module_class.__call__).parameters
        extra = [n for n in _ARRAY_INPUTS[5:] if n in accepted]
        if hasattr(cls, "init_cache"):
            extra.append("past_key_values")
        params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in extra]
        __call__.__signature__ = signature.replace(parameters=params)
        __call__.__doc__ = base_call.__doc__
        cls.__call__ = __call__

    def __init__(self, config: BertConfig, input_shape: tuple[int, ...] | None = None, seed: int = 0,
                 dtype: Any = jnp.float32, param_dtype: Any = jnp.float32, *, gradient_checkpointing: bool = False,
                 scan_layers: bool = False, _do_init: bool = True, **module_kwargs: Any) -> None:
        if not isinstance(config, BertConfig):
            raise ConfigError(f"{type(self).__name__} needs a BertConfig, got {type(config).__name__}")
        self.config = config
        self.dtype = jnp.dtype(dtype or jnp.float32)  # accepts jnp.bfloat16, "bfloat16" or None
        self.param_dtype = jnp.dtype(param_dtype or jnp.float32)
        self.input_shape = tuple(input_shape or self.default_input_shape)
        self._module_kwargs = dict(module_kwargs)
        self._params = None
        self._build(gradient_checkpointing=gradient_checkpointing, scan_layers=scan_layers)
        if _do_init:
            self.params = self.init_weights(jax.random.PRNGKey(seed), self.input_shape)

    # -- module and compiled apply -------------------------------------------

    def _build(self, *, gradient_checkpointing: bool, scan_layers: bool) -> None:
        self.module = self.module_class(self.config, dtype=self.dtype, param_dtype=self.param_dtype,
                                        gradient_checkpointing=gradient_checkpointing, scan_layers=scan_layers,
                                        **self._module_kwargs)
        accepted = inspect.signature(self.module_class.__call__).parameters
        self._accepted_inputs = tuple(n for n in _ARRAY_INPUTS if n in accepted)
        shapes = jax.eval_shape(lambda rng: self.init_weights(rng, self.input_shape), jax.random.PRNGKey(0))
        self._param_shapes = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes, sep=".").items()}

    @property
    def scan_layers(self) -> bool:
        return self.module.scan_layers

    @property
    def gradient_checkpointing(self) -> bool:
        return self.module.gradient_checkpointing

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each layer in the backward pass (``nn.remat``); outputs and gradients are unchanged."""
        self._build(gradient_checkpointing=True, scan_layers=self.scan_layers)

    def enable_scan_layers(self) -> None:
        """Switch to ``nn.scan`` over the layers, converting ``params`` to the stacked layout."""
        params = self._params
        self._build(gradient_checkpointing=self.gradient_checkpointing, scan_layers=True)
        if params is not None:
            self.params = unscanned_to_scan_params(params)

    def disable_scan_layers(self) -> None:
        """Back to one module per layer, converting ``params`` to ``encoder/layer/<i>``."""
        params = self._params
        self._build(gradient_checkpointing=self.gradient_checkpointing, scan_layers=False)
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
        if self.config.add_cross_attention and "encoder_hidden_states" in self._accepted_inputs:
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

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, *, params=None, dropout_rng=None, train: bool = False,
                 output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                 return_dict: bool | None = None, **head_inputs):
        """Run the model.

        Args:
            input_ids: ``(batch, seq)`` token ids (``(batch, choices, seq)`` for multiple choice).
            attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds: as transformers 4.x.
            params: parameters to use instead of ``self.params`` (differentiate with respect to these).
            dropout_rng: PRNG key for dropout; needed when ``train=True`` and dropout is non-zero.
            train: enable dropout.
            output_attentions / output_hidden_states / return_dict: default to the config's values.
            **head_inputs: head-specific inputs: ``labels``, ``next_sentence_label``,
                ``start_positions``/``end_positions``, ``encoder_hidden_states``/``encoder_attention_mask``,
                ``past_key_values`` (causal LM).

        Returns:
            The head's ``bert_core`` output class, or its tuple when ``return_dict=False``.
        """
        c = self.config
        output_attentions = c.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = c.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = c.return_dict if return_dict is None else return_dict
        cache = head_inputs.pop("past_key_values", None)
        unknown = sorted(k for k in head_inputs if k not in self._accepted_inputs)
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected input(s) {unknown}; "
                            f"it accepts {list(self._accepted_inputs)}")
        given = dict(attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
                     head_mask=head_mask, inputs_embeds=inputs_embeds, **head_inputs)
        inputs = {k: jnp.asarray(v) for k, v in given.items() if v is not None}
        if input_ids is not None:
            inputs["input_ids"] = jnp.asarray(input_ids)
        elif inputs_embeds is None:
            raise ValueError("pass input_ids or inputs_embeds")
        if cache is not None:
            batch = (input_ids if input_ids is not None else inputs_embeds).shape[0]
            inputs.setdefault("attention_mask", jnp.ones((batch, cache_length(cache)), dtype="i4"))
            if inputs["attention_mask"].shape[-1] != cache_length(cache):
                raise ValueError(f"with past_key_values the attention_mask covers the whole cache: expected "
                                 f"(batch, {cache_length(cache)}), got {tuple(inputs['attention_mask'].shape)}; "
                                 f"build it with prepare_inputs_for_generation")
        dropout_active = max(c.hidden_dropout_prob, c.attention_probs_dropout_prob, c.classifier_dropout or 0) > 0
        if train and dropout_active and dropout_rng is None:
            raise ValueError("train=True applies dropout: pass dropout_rng=jax.random.PRNGKey(...)")
        output = compiled_apply(self.params if params is None else params, inputs, dropout_rng, cache,
                                module_key=ModuleKey(self.module), train=bool(train),
                                output_attentions=bool(output_attentions),
                                output_hidden_states=bool(output_hidden_states))
        return output if return_dict else output.to_tuple()

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


class FlaxBertModel(FlaxBertPreTrainedModel):
    """The bare encoder: ``last_hidden_state (batch, seq, hidden)`` and ``pooler_output (batch, hidden)``.

    Pass ``add_pooling_layer=False`` to build it without the pooler.
    """

    module_class = FlaxBertModule
    head = HEADS["base"]


class FlaxBertForPreTraining(FlaxBertPreTrainedModel):
    """MLM + NSP heads (``prediction_logits``, ``seq_relationship_logits``)."""

    module_class = FlaxBertForPreTrainingModule
    head = HEADS["pretraining"]


class FlaxBertForCausalLM(FlaxGenerationMixin, FlaxBertPreTrainedModel):
    """Decoder LM (``config.is_decoder=True``), with ``init_cache`` and cached decoding."""

    module_class = FlaxBertForCausalLMModule
    head = HEADS["causal-lm"]


class FlaxBertForMaskedLM(FlaxBertPreTrainedModel):
    """Masked LM; the decoder is tied to the word embeddings."""

    module_class = FlaxBertForMaskedLMModule
    head = HEADS["masked-lm"]


class FlaxBertForNextSentencePrediction(FlaxBertPreTrainedModel):
    """Next-sentence prediction, logits ``(batch, 2)``."""

    module_class = FlaxBertForNextSentencePredictionModule
    head = HEADS["next-sentence"]


class FlaxBertForSequenceClassification(FlaxBertPreTrainedModel):
    """Sequence classification / regression, logits ``(batch, num_labels)``."""

    module_class = FlaxBertForSequenceClassificationModule
    head = HEADS["sequence-classification"]


class FlaxBertForMultipleChoice(FlaxBertPreTrainedModel):
    """Multiple choice: inputs ``(batch, num_choices, seq)``, logits ``(batch, num_choices)``."""

    module_class = FlaxBertForMultipleChoiceModule
    head = HEADS["multiple-choice"]
    default_input_shape = (1, 1, 1)


class FlaxBertForTokenClassification(FlaxBertPreTrainedModel):
    """Per-token classification, logits ``(batch, seq, num_labels)``."""

    module_class = FlaxBertForTokenClassificationModule
    head = HEADS["token-classification"]


class FlaxBertForQuestionAnswering(FlaxBertPreTrainedModel):
    """Extractive QA: ``start_logits`` and ``end_logits`` ``(batch, seq)``."""

    module_class = FlaxBertForQuestionAnsweringModule
    head = HEADS["question-answering"]
