"""Training with optax: AdamW with a weight-decay mask, gradient clipping, and one jitted train step.

    model = FlaxBertForMaskedLM.from_pretrained(path)
    optimizer, lr_schedule = create_optimizer(5e-5, num_train_steps=1000, num_warmup_steps=100,
                                              weight_decay_rate=0.01, adam_global_clipnorm=1.0)
    state = TrainState.create(apply_fn=model.module.apply, params=model.params, tx=optimizer)
    train_step = make_train_step(model, loss="masked-lm")
    for batch in batches:                      # dicts of (batch, seq) arrays incl. "labels"
        state, metrics = train_step(state, batch, dropout_rng)
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util
from flax.training import train_state

from bert_core.errors import ConfigError

__all__ = ["TrainState", "create_optimizer", "decay_mask", "make_train_step", "mask_tokens", "TRAIN_LOSSES",
           "NO_DECAY_PATTERNS"]

#: Losses ``make_train_step`` knows, with the head each needs.
TRAIN_LOSSES = {"masked-lm": "masked-lm", "sequence-classification": "sequence-classification"}


class TrainState(train_state.TrainState):
    """``flax.training.train_state.TrainState``: ``step``, ``params``, ``tx``, ``opt_state``, ``apply_fn``."""


#: What ``create_optimizer`` keeps out of weight decay (regular expressions searched in ``/``-joined parameter
#: paths), as ``transformers`` 4.x's TF ``create_optimizer`` (and :mod:`bert_tf.optimization`).
NO_DECAY_PATTERNS = ("LayerNorm", "layer_norm", "bias")


def decay_mask(params, include_in_weight_decay: Sequence[str] | None = None,
               exclude_from_weight_decay: Sequence[str] = NO_DECAY_PATTERNS) -> Any:
    """Same tree as ``params``: ``True`` where weight decay applies (kernels, embeddings), ``False`` for
    biases and LayerNorm scales/biases, as BERT's original optimizer and transformers do.

    A parameter is decayed when its ``/``-joined path (``bert/encoder/layer/0/output/LayerNorm/scale``)
    matches a pattern of ``include_in_weight_decay``, else when it matches none of ``exclude_from_weight_decay``
    (4.x's ``AdamWeightDecay._do_use_weight_decay``).
    """
    def decayed(path: tuple[str, ...]) -> bool:
        name = "/".join(map(str, path))
        if any(re.search(pattern, name) for pattern in include_in_weight_decay or ()):
            return True
        return not any(re.search(pattern, name) for pattern in exclude_from_weight_decay)

    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({path: decayed(path) for path in flat})


def _clip_each_by_norm(max_norm: float) -> optax.GradientTransformation:
    """Clip every gradient leaf to norm ``max_norm`` on its own (Keras' ``clipnorm``; optax has only a global one)."""
    def clip(gradient, _params):
        norm = jnp.sqrt(jnp.sum(jnp.square(gradient)))
        return gradient * (max_norm / jnp.maximum(norm, max_norm))

    return optax.stateless_with_tree_map(clip)


def create_optimizer(init_lr: float, num_train_steps: int, num_warmup_steps: int, min_lr_ratio: float = 0.0,
                     adam_beta1: float = 0.9, adam_beta2: float = 0.999, adam_epsilon: float = 1e-8,
                     adam_clipnorm: float | None = None, adam_global_clipnorm: float | None = None,
                     weight_decay_rate: float = 0.0, power: float = 1.0,
                     include_in_weight_decay: Sequence[str] | None = None) -> tuple[optax.GradientTransformation, Callable]:
    """The optax twin of :func:`bert_tf.create_optimizer` (``transformers`` 4.x's TF ``create_optimizer``).

    Same arguments and schedule: at update ``t`` (0-based) the rate is ``init_lr * t / num_warmup_steps``
    during the warm-up, then ``(init_lr - end) * (1 - min(t - W, D) / D) ** power + end`` with
    ``D = num_train_steps - num_warmup_steps`` and ``end = init_lr * min_lr_ratio``. Gradients are clipped
    (``adam_clipnorm`` per leaf, ``adam_global_clipnorm`` over all), then AdamW with decoupled decay
    ``param -= lr * weight_decay_rate * param`` on the parameters :func:`decay_mask` selects (not LayerNorm,
    not biases). One difference from the Keras optimizer: optax adds ``adam_epsilon`` to ``sqrt(v_hat)``
    (as ``torch.optim.AdamW``), Keras to ``sqrt(v)``; they differ only where ``sqrt(v)`` is near epsilon.

    Returns:
        ``(optimizer, lr_schedule)``: an ``optax.GradientTransformation`` (``TrainState.create(tx=...)``)
        and the schedule (``lr_schedule(step)``).

    Raises:
        ConfigError: ``num_train_steps`` not above ``num_warmup_steps``.
    """
    if num_train_steps <= num_warmup_steps:
        raise ConfigError(f"create_optimizer: num_train_steps ({num_train_steps}) must exceed "
                          f"num_warmup_steps ({num_warmup_steps})")
    schedule = optax.polynomial_schedule(init_lr, init_lr * min_lr_ratio, power, num_train_steps - num_warmup_steps)
    if num_warmup_steps:
        warmup = optax.linear_schedule(0.0, init_lr, num_warmup_steps)
        schedule = optax.join_schedules([warmup, schedule], [num_warmup_steps])
    parts = [] if adam_clipnorm is None else [_clip_each_by_norm(adam_clipnorm)]
    if adam_global_clipnorm is not None:
        parts.append(optax.clip_by_global_norm(adam_global_clipnorm))
    mask = functools.partial(decay_mask, include_in_weight_decay=include_in_weight_decay)
    parts.append(optax.adamw(schedule, b1=adam_beta1, b2=adam_beta2, eps=adam_epsilon,
                             weight_decay=weight_decay_rate, mask=mask))
    return optax.chain(*parts), schedule


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
