"""Building blocks shared by every ``bert_tf`` layer: the config-carrying base layer and initialisers.

Every sublayer receives its parent's dtype policy explicitly (Keras 3 does not
propagate it), so ``TFBertModel(config, dtype="mixed_bfloat16")`` runs its
matmuls in bfloat16 while LayerNorm (and, in attention, the softmax) stays in
float32.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bert_core.config import BertConfig

__all__ = ["ConfigLayer", "SavesOutputSublayer", "LayerNorm", "normal", "dense", "layer_norm", "norm_policy", "is_symbolic"]


@keras.saving.register_keras_serializable(package="tribert")
class LayerNorm(keras.layers.LayerNormalization):
    """``LayerNormalization`` over the last axis computed as ``(x - mean) * rsqrt(var + eps) * gamma + beta``.

    Keras folds the mean into a bias (``x * inv + (beta - mean * inv)``), which
    cancels catastrophically when ``|mean| >> std`` and costs several ulps against
    PyTorch; this is PyTorch's order of operations (same variables, same config),
    always in float32, the result cast to the layer's compute dtype.
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        # Statistics and affine in float32 whatever the policy (a bfloat16 variance is too coarse).
        x = tf.cast(inputs, tf.float32)
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        centered = x - mean
        variance = tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True)
        out = centered * tf.math.rsqrt(variance + self.epsilon) * tf.cast(self.gamma, tf.float32) \
            + tf.cast(self.beta, tf.float32)
        return tf.cast(out, self.compute_dtype)


def normal(config: BertConfig) -> keras.initializers.Initializer:
    """``normal(0, initializer_range)``, as ``transformers`` initialises dense and embedding weights."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=config.initializer_range)


def norm_policy(policy: keras.DTypePolicy) -> keras.DTypePolicy | str:
    """The policy of a LayerNorm under ``policy``: float32 whenever a mixed policy keeps float32 variables."""
    if policy.variable_dtype == "float32" and policy.compute_dtype != "float32":
        return "float32"
    return policy


def dense(config: BertConfig, units: int, name: str, policy, use_bias: bool = True) -> keras.layers.Dense:
    """A ``Dense`` initialised like ``transformers`` (normal kernel, zero bias)."""
    return keras.layers.Dense(units, use_bias=use_bias, kernel_initializer=normal(config), bias_initializer="zeros",
                              name=name, dtype=policy)


def layer_norm(config: BertConfig, name: str, policy) -> keras.layers.LayerNormalization:
    """``LayerNorm`` over the last axis with ``config.layer_norm_eps``; ones / zeros."""
    return LayerNorm(axis=-1, epsilon=config.layer_norm_eps, name=name,
                                           dtype=norm_policy(keras.DTypePolicy(policy) if isinstance(policy, str)
                                                             else policy))


class ConfigLayer(keras.layers.Layer):
    """A Keras layer built from a whole :class:`BertConfig`; ``get_config`` is ``config.to_dict()``."""

    def __init__(self, config: BertConfig, **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        # Keras would cast every floating argument to the compute dtype: a float32-min attention bias
        # becomes -inf in bfloat16. Each layer casts what it needs itself (Dense/LayerNorm cast their inputs).
        self._convert_input_args = False

    def get_config(self) -> dict:
        base = super().get_config()
        return {**base, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        bert_config = BertConfig.from_dict(config.pop("config"))
        return cls(bert_config, **config)


class SavesOutputSublayer(ConfigLayer):
    """A layer whose sublayer is named ``output`` (the checkpoint's name), saved by hand in ``.keras`` files.

    Keras' saver skips attributes that shadow ``Layer`` properties, ``output``
    among them, so this layer stores that sublayer's variables with its own.
    """

    def save_own_variables(self, store) -> None:
        for i, variable in enumerate(self.output.weights):
            store[f"output.{i}"] = variable

    def load_own_variables(self, store) -> None:
        variables = self.output.weights
        if len(store.keys()) != len(variables):
            raise ValueError(f"layer {self.name!r}: the file holds {len(store.keys())} variables for its output "
                             f"sublayer, the model has {len(variables)}")
        for i, variable in enumerate(variables):
            variable.assign(store[f"output.{i}"])


def is_symbolic(value) -> bool:
    """Whether ``value`` is a Keras functional input or a graph tensor (no values to read on the host)."""
    return isinstance(value, keras.KerasTensor) or (isinstance(value, tf.Tensor) and not hasattr(value, "numpy"))
