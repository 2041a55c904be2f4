"""``transformers`` 4.x's TF optimizer helpers on Keras 3: ``create_optimizer``, ``AdamWeightDecay``, ``WarmUp``.

    optimizer, lr_schedule = create_optimizer(init_lr=5e-5, num_train_steps=1000, num_warmup_steps=100,
                                              weight_decay_rate=0.01)
    model.compile(optimizer=optimizer)
    model.fit(dataset, epochs=...)

The same names, arguments and numbers as ``transformers.optimization_tf`` (4.x):

- learning rate at update ``t`` (0-based, Keras' ``optimizer.iterations`` before the update):
  ``init_lr * t / num_warmup_steps`` while ``t < num_warmup_steps`` (a linear warm-up, whatever ``power``),
  then ``(init_lr - end) * (1 - min(t - W, D) / D) ** power + end`` with ``D = num_train_steps - W`` and
  ``end = init_lr * min_lr_ratio`` (Keras' ``PolynomialDecay``);
- Adam as Keras computes it (``epsilon`` added to ``sqrt(v)``, not to the bias-corrected ``sqrt(v_hat)``
  as PyTorch and optax do: ``torch.optim.AdamW(eps=e / sqrt(1 - beta_2 ** t))`` steps identically);
- decoupled weight decay ``var -= lr * weight_decay_rate * var`` before the Adam step (``torch.optim.AdamW``'s),
  skipped for variables whose full name (``bert/encoder/layer_0/output/LayerNorm/gamma:0``) matches a pattern
  of ``exclude_from_weight_decay`` (``create_optimizer``: ``LayerNorm``, ``layer_norm``, ``bias``) unless one
  of ``include_in_weight_decay`` matches first. ``weight_decay_rate=0`` gives a plain ``keras.optimizers.Adam``.

:func:`bert_flax.training.create_optimizer` is the optax twin (same arguments and schedule).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import keras
import tensorflow as tf

from bert_core.errors import ConfigError

__all__ = ["AdamWeightDecay", "WarmUp", "create_optimizer", "NO_DECAY_PATTERNS"]

#: What ``create_optimizer`` keeps out of weight decay (regular expressions searched in variable names).
NO_DECAY_PATTERNS = ("LayerNorm", "layer_norm", "bias")


@keras.saving.register_keras_serializable(package="tribert")
class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
    """A polynomial warm-up to ``initial_learning_rate`` over ``warmup_steps``, then
    ``decay_schedule_fn(step - warmup_steps)``.

    Args:
        initial_learning_rate: the rate reached at the end of the warm-up.
        decay_schedule_fn: the schedule after the warm-up (called with the steps since its end).
        warmup_steps: length of the warm-up.
        power: exponent of the warm-up (1: linear).
        name: name scope of the returned tensors.
    """

    def __init__(self, initial_learning_rate: float, decay_schedule_fn: Callable, warmup_steps: int,
                 power: float = 1.0, name: str | None = None) -> None:
        super().__init__()
        self.initial_learning_rate = initial_learning_rate
        self.warmup_steps = warmup_steps
        self.power = power
        self.decay_schedule_fn = decay_schedule_fn
        self.name = name

    def __call__(self, step):
        with tf.name_scope(self.name or "WarmUp"):
            step_float = tf.cast(step, tf.float32)
            warmup_float = tf.cast(self.warmup_steps, tf.float32)
            warmup_rate = self.initial_learning_rate * tf.math.pow(step_float / warmup_float, self.power)
            # Both branches are computed (tf.where): the decay at a negative step is finite and unused.
            return tf.where(step_float < warmup_float, warmup_rate,
                            tf.cast(self.decay_schedule_fn(step - self.warmup_steps), tf.float32))

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_schedule_fn": keras.saving.serialize_keras_object(self.decay_schedule_fn),
                "warmup_steps": self.warmup_steps, "power": self.power, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "WarmUp":
        config = dict(config)
        config["decay_schedule_fn"] = keras.saving.deserialize_keras_object(config["decay_schedule_fn"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="tribert")
class AdamWeightDecay(keras.optimizers.Adam):
    """Keras Adam with decoupled weight decay chosen by variable name, as ``transformers`` 4.x's ``AdamWeightDecay``.

    Args:
        learning_rate: a float or a ``LearningRateSchedule`` (e.g. :class:`WarmUp`).
        beta_1, beta_2, epsilon, amsgrad: Keras Adam's.
        weight_decay_rate: decay rate; each update first does ``var -= lr * weight_decay_rate * var``.
        include_in_weight_decay: regular expressions; a variable whose name matches one is decayed
            (it wins over ``exclude_from_weight_decay``).
        exclude_from_weight_decay: regular expressions; a variable whose name matches one is not decayed.
        name, **kwargs: Keras optimizer arguments (``clipnorm``, ``global_clipnorm``, ...).

    The name matched is the TensorFlow variable's full name (``tf_bert_for_masked_lm/cls/predictions/bias:0``,
    ``bert/embeddings/LayerNorm/gamma:0``), as 4.x matched ``var.name``.
    """

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, weight_decay_rate: float = 0.0,
                 include_in_weight_decay: Sequence[str] | None = None,
                 exclude_from_weight_decay: Sequence[str] | None = None, name: str = "AdamWeightDecay",
                 **kwargs) -> None:
        kwargs.pop("weight_decay", None)  # get_config's copy of weight_decay_rate
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay_rate or None, name=name, **kwargs)
        self.weight_decay_rate = weight_decay_rate
        self.include_in_weight_decay = list(include_in_weight_decay or [])
        # Not `_exclude_from_weight_decay`: Keras' base optimizer keeps its own variable set under that name.
        self.exclude_patterns = list(exclude_from_weight_decay or [])

    def _do_use_weight_decay(self, param_name: str) -> bool:
        """Whether ``param_name`` is decayed: 4.x's rule (rate 0: no; an include pattern: yes; an exclude one: no)."""
        if self.weight_decay_rate == 0:
            return False
        if any(re.search(pattern, param_name) for pattern in self.include_in_weight_decay):
            return True
        return not any(re.search(pattern, param_name) for pattern in self.exclude_patterns)

    def _use_weight_decay(self, variable) -> bool:
        # Keras' TensorFlow backend passes the tf.Variable (its name is the full path, ":0" included);
        # other callers a keras.Variable (its `path` is the full path, its `name` only the leaf).
        name = variable.path if isinstance(variable, keras.Variable) else variable.name
        return self._do_use_weight_decay(name)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(weight_decay_rate=self.weight_decay_rate, include_in_weight_decay=self.include_in_weight_decay,
                      exclude_from_weight_decay=self.exclude_patterns)
        return config


def create_optimizer(init_lr: float, num_train_steps: int, num_warmup_steps: int, min_lr_ratio: float = 0.0,
                     adam_beta1: float = 0.9, adam_beta2: float = 0.999, adam_epsilon: float = 1e-8,
                     adam_clipnorm: float | None = None, adam_global_clipnorm: float | None = None,
                     weight_decay_rate: float = 0.0, power: float = 1.0,
                     include_in_weight_decay: Sequence[str] | None = None):
    """Adam(W) with a linear warm-up then a polynomial (linear by default) decay: 4.x's ``create_optimizer``.

    Args:
        init_lr: the learning rate at the end of the warm-up.
        num_train_steps: total number of updates (warm-up included).
        num_warmup_steps: warm-up updates (0: none).
        min_lr_ratio: the rate at the end of the decay is ``init_lr * min_lr_ratio``.
        adam_beta1, adam_beta2, adam_epsilon: Adam's.
        adam_clipnorm: clip each gradient's norm to this.
        adam_global_clipnorm: clip the norm of all gradients together to this.
        weight_decay_rate: decoupled weight decay (> 0 gives :class:`AdamWeightDecay` without LayerNorm
            and biases; 0 a plain ``keras.optimizers.Adam``).
        power: exponent of the decay (the warm-up is linear).
        include_in_weight_decay: patterns decayed even if they match ``LayerNorm`` / ``layer_norm`` / ``bias``.

    Returns:
        ``(optimizer, lr_schedule)``.

    Raises:
        ConfigError: ``num_train_steps`` not above ``num_warmup_steps`` (the decay would divide by zero).
    """
    if num_train_steps <= num_warmup_steps:
        raise ConfigError(f"create_optimizer: num_train_steps ({num_train_steps}) must exceed "
                          f"num_warmup_steps ({num_warmup_steps})")
    lr_schedule = keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate=init_lr, decay_steps=num_train_steps - num_warmup_steps,
        end_learning_rate=init_lr * min_lr_ratio, power=power)
    if num_warmup_steps:
        lr_schedule = WarmUp(initial_learning_rate=init_lr, decay_schedule_fn=lr_schedule,
                             warmup_steps=num_warmup_steps)
    adam = dict(learning_rate=lr_schedule, beta_1=adam_beta1, beta_2=adam_beta2, epsilon=adam_epsilon,
                clipnorm=adam_clipnorm, global_clipnorm=adam_global_clipnorm)
    if weight_decay_rate > 0.0:
        optimizer = AdamWeightDecay(**adam, weight_decay_rate=weight_decay_rate,
                                    exclude_from_weight_decay=list(NO_DECAY_PATTERNS),
                                    include_in_weight_decay=include_in_weight_decay)
    else:
        optimizer = keras.optimizers.Adam(**adam)
    return optimizer, lr_schedule
