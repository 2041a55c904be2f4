"""Training with optax: AdamW with a weight-decay mask, gradient clipping, and one jitted train step.

    model = FlaxBertForMaskedLM.from_pretrained(path)
    state = TrainState.create(apply_fn=model.module.apply, params=model.params,
                              tx=create_optimizer(5e-5, weight_decay=0.01, max_grad_norm=1.0))
    train_step = make_train_step(model, loss="masked-lm")
    for batch in batches:                      # dicts of (batch, seq) arrays incl. "labels"
        state, metrics = train_step(state, batch, dropout_rng)
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util
from flax.training import train_state

from bert_core.errors import ConfigError

__all__ = ["TrainState", "create_optimizer", "decay_mask", "make_train_step", "mask_tokens", "TRAIN_LOSSES"]

#: Losses ``make_train_step`` knows, with the head each needs.
TRAIN_LOSSES = {"masked-lm": "masked-lm", "sequence-classification": "sequence-classification"}


class TrainState(train_state.TrainState):
    """``flax.training.train_state.TrainState``: ``step``, ``params``, ``tx``, ``opt_state``, ``apply_fn``."""


def decay_mask(params) -> Any:
    """Same tree as ``params``: ``True`` where weight decay applies (kernels, embeddings), ``False`` for
    biases and LayerNorm scales/biases, as BERT's original optimizer and transformers' examples do."""
    flat = traverse_util.flatten_dict(params)
    mask = {path: path[-1] != "bias" and "LayerNorm" not in path for path in flat}
    return traverse_util.unflatten_dict(mask)


def create_optimizer(learning_rate: float | Callable, weight_decay: float = 0.0, max_grad_norm: float | None = 1.0,
                     *, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, warmup_steps: int = 0,
                     total_steps: int | None = None) -> optax.GradientTransformation:
    """AdamW with decoupled weight decay on kernels/embeddings only, after global-norm gradient clipping.

    Args:
        learning_rate: a float or an optax schedule. With ``total_steps`` (and optional
            ``warmup_steps``) a float becomes a linear warm-up then linear decay to 0, like transformers.
        weight_decay: decoupled decay rate (masked by :func:`decay_mask`).
        max_grad_norm: clip the global gradient norm to this (``None``: no clipping).
        b1, b2, eps: Adam moments.

    Returns:
        An ``optax.GradientTransformation``.
    """
    schedule = learning_rate
    if total_steps is not None and not callable(learning_rate):
        warmup = optax.linear_schedule(0.0, learning_rate, max(warmup_steps, 1))
        decay = optax.linear_schedule(learning_rate, 0.0, max(total_steps - warmup_steps, 1))
        schedule = optax.join_schedules([warmup, decay], [warmup_steps]) if warmup_steps else decay
    parts = [] if max_grad_norm is None else [optax.clip_by_global_norm(max_grad_norm)]
    parts.append(optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask))
    return optax.chain(*parts)


def make_train_step(model, loss: str = "masked-lm", *, donate_state: bool = False) -> Callable:
    """One jitted training step ``(state, batch, dropout_rng) -> (state, metrics)``.

    Args:
        model: the wrapper whose head computes ``loss`` (``FlaxBertForMaskedLM`` for ``"masked-lm"``,
            ``FlaxBertForSequenceClassification`` for ``"sequence-classification"``).
        loss: ``"masked-lm"`` or ``"sequence-classification"``.
        donate_state: let XLA reuse the input state's buffers (halves peak memory); the state
            passed in, and any array it shares such as ``model.params``, is then deleted.

    The batch is a dict of model inputs plus ``labels``. Dropout is on; the step derives its
    dropout key from ``dropout_rng`` and ``state.step`` (``fold_in``), so one base key serves a
    whole run and every step still draws fresh masks.

    Returns:
        The jitted step; ``metrics`` holds ``loss`` and ``grad_norm`` (before clipping).
    """
    if loss not in TRAIN_LOSSES:
        raise ConfigError(f"loss={loss!r}: choose one of {sorted(TRAIN_LOSSES)}")
    if model.head.name != TRAIN_LOSSES[loss]:
        raise ConfigError(f"loss={loss!r} needs a {TRAIN_LOSSES[loss]!r} model, got {type(model).__name__}")

    def train_step(state: TrainState, batch: dict, dropout_rng):
        step_rng = jax.random.fold_in(dropout_rng, state.step)

        def loss_fn(params):
            return model(**batch, params=params, dropout_rng=step_rng, train=True).loss

        value, grads = jax.value_and_grad(loss_fn)(state.params)
        metrics = {"loss": value, "grad_norm": optax.tree.norm(grads)}
        return state.apply_gradients(grads=grads), metrics

    return jax.jit(train_step, donate_argnums=(0,) if donate_state else ())


def mask_tokens(rng, input_ids, *, mask_token_id: int, vocab_size: int, special_tokens_mask=None,
                mlm_probability: float = 0.15):
    """BERT's MLM corruption: pick ``mlm_probability`` of the tokens; 80% -> [MASK], 10% random, 10% kept.

    Args:
        rng: PRNG key.
        input_ids: ``(batch, seq)`` ids.
        special_tokens_mask: ``(batch, seq)``, 1 where a token may never be picked (padding, [CLS], [SEP]).

    Returns:
        ``(corrupted input_ids, labels)`` with labels -100 where nothing was picked.
    """
    input_ids = jnp.asarray(input_ids)
    pick_rng, mask_rng, random_rng, token_rng = jax.random.split(rng, 4)
    picked = jax.random.bernoulli(pick_rng, mlm_probability, input_ids.shape)
    if special_tokens_mask is not None:
        picked = picked & ~jnp.asarray(special_tokens_mask, bool)
    labels = jnp.where(picked, input_ids, -100)
    to_mask = picked & jax.random.bernoulli(mask_rng, 0.8, input_ids.shape)
    to_random = picked & ~to_mask & jax.random.bernoulli(random_rng, 0.5, input_ids.shape)
    random_ids = jax.random.randint(token_rng, input_ids.shape, 0, vocab_size, dtype=input_ids.dtype)
    corrupted = jnp.where(to_mask, mask_token_id, jnp.where(to_random, random_ids, input_ids))
    return corrupted, labels
