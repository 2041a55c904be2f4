"""The three backends behind one small interface, through their public API only (for ``test_matrix.py``).

Each backend: ``load`` a head class from a canonical checkpoint (``from_pretrained``), ``call`` it on numpy
inputs, ``loss_grads`` (the output with its loss, and the loss's gradients by canonical checkpoint key), ``decode`` (a prefix, then
one token per call through the backend's cache) and ``set_attn``. Gradients leave TF and Flax by the
public ``save_pretrained``: the gradient tree is written as if it were the weights, so the canonical names
come from the backend's own naming rules, which are what is being tested, and no internal name is read here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bert_core import HEADS
from conversion import SafetensorsFile


def _read_weights(directory: Path) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float64) for k, v in SafetensorsFile(directory / "model.safetensors").items()}


def set_attn(model, name: str) -> None:
    """``model.set_attn_implementation(name)``; a backend without the setter fails the cell, by name."""
    setter = getattr(model, "set_attn_implementation", None)
    if setter is None:
        raise AssertionError(f"{type(model).__name__} has no set_attn_implementation (docs/architecture.md: "
                             f"every model has it)")
    setter(name)


class Torch:
    """bert_torch."""

    name = "torch"

    def __init__(self):
        import torch

        import bert_torch

        self.torch, self.package = torch, bert_torch

    def load(self, head: str, directory: Path, dtype: str = "float32"):
        cls = getattr(self.package, HEADS[head].class_name)
        return cls.from_pretrained(directory, dtype=getattr(self.torch, dtype)).eval()

    def _tensors(self, inputs: dict) -> dict:
        return {k: self.torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}

    def call(self, model, inputs: dict, **flags):
        with self.torch.no_grad():
            return model(**self._tensors(inputs), **flags)

    def loss_grads(self, model, inputs: dict) -> tuple[object, dict[str, np.ndarray]]:
        model.train()  # dropout is 0: the training path must compute the same numbers
        try:
            output = model(**self._tensors(inputs))
            grads = self.torch.autograd.grad(output.loss, [p for _, p in model.named_parameters()], allow_unused=True)
        finally:
            model.eval()
        named = {k: g.numpy().astype(np.float64) for (k, _), g in zip(model.named_parameters(), grads) if g is not None}
        return output, named

    def decode(self, model, inputs: dict, prefix: int):
        return decode_with_past(self, model, inputs, prefix)


class TF:
    """bert_tf (Keras 3)."""

    name = "tf"

    def __init__(self):
        import tensorflow as tf

        import bert_tf

        self.tf, self.package = tf, bert_tf

    def load(self, head: str, directory: Path, dtype: str = "float32"):
        return getattr(self.package, HEADS[head].tf_class_name).from_pretrained(directory, dtype=dtype)

    def call(self, model, inputs: dict, training: bool = False, **flags):
        tensors = {k: self.tf.constant(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
        return model(**tensors, training=training, **flags)

    def loss_grads(self, model, inputs: dict) -> tuple[object, dict[str, np.ndarray]]:
        variables = model.trainable_variables
        with self.tf.GradientTape() as tape:
            output = self.call(model, inputs, training=True)
        grads = tape.gradient(output.loss, variables)
        saved = [v.numpy() for v in variables]
        try:
            for variable, grad in zip(variables, grads):
                variable.assign(np.zeros(variable.shape, variable.dtype) if grad is None
                                else self.tf.convert_to_tensor(grad))
            with tempfile.TemporaryDirectory() as tmp:
                model.save_pretrained(tmp)
                named = _read_weights(Path(tmp))
        finally:
            for variable, value in zip(variables, saved):
                variable.assign(value)
        return output, named

    def decode(self, model, inputs: dict, prefix: int):
        return decode_with_past(self, model, inputs, prefix)


class Flax:
    """bert_flax (linen modules behind the stateful wrapper)."""

    name = "flax"

    def __init__(self):
        import jax

        import bert_flax

        self.jax, self.package = jax, bert_flax

    def load(self, head: str, directory: Path, dtype: str = "float32"):
        return getattr(self.package, HEADS[head].flax_name).from_pretrained(directory, dtype=dtype)

    def call(self, model, inputs: dict, **flags):
        return model(**inputs, **flags)

    def loss_grads(self, model, inputs: dict) -> tuple[object, dict[str, np.ndarray]]:
        def loss_fn(params):
            output = model(**inputs, params=params, train=True)
            return output.loss, output

        # One compile of forward and backward together (the wrapper's call runs under an outer jit too).
        (_, output), grads = self.jax.jit(self.jax.value_and_grad(loss_fn, has_aux=True))(model.params)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp, params=grads)
            return output, _read_weights(Path(tmp))

    def decode(self, model, inputs: dict, prefix: int):
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        cross, types = _split(inputs)
        kwargs = model.prepare_inputs_for_generation(ids[:, :prefix], ids.shape[1], mask[:, :prefix], **cross)
        out = model(ids[:, :prefix], token_type_ids=types[:, :prefix], **kwargs)
        steps = [_main(out)]
        for t in range(prefix, ids.shape[1]):
            kwargs = model.update_inputs_for_generation(out, kwargs)
            out = model(ids[:, t:t + 1], token_type_ids=types[:, t:t + 1], **kwargs)
            steps.append(_main(out))
        return np.concatenate([np.asarray(s, np.float64) for s in steps], axis=1)


def decode_with_past(backend, model, inputs: dict, prefix: int) -> np.ndarray:
    """torch and TF: ``prefix`` tokens in one call with ``use_cache=True``, then one token per call with
    ``past_key_values`` and the mask so far; the concatenated per-token outputs."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    cross, types = _split(inputs)
    out = backend.call(model, {"input_ids": ids[:, :prefix], "attention_mask": mask[:, :prefix],
                               "token_type_ids": types[:, :prefix], **cross}, use_cache=True)
    steps = [_main(out)]
    for t in range(prefix, ids.shape[1]):
        out = backend.call(model, {"input_ids": ids[:, t:t + 1], "attention_mask": mask[:, :t + 1],
                                   "token_type_ids": types[:, t:t + 1], **cross},
                           past_key_values=out.past_key_values, use_cache=True)
        steps.append(_main(out))
    return np.concatenate([np.asarray(s, np.float64) for s in steps], axis=1)


def _split(inputs: dict) -> tuple[dict, np.ndarray]:
    """(cross-attention inputs, token_type_ids or zeros)."""
    cross = {k: v for k, v in inputs.items() if k.startswith("encoder_")}
    return cross, inputs.get("token_type_ids", np.zeros_like(inputs["input_ids"]))


def _main(output):
    """The per-token output a decode step is compared on: the LM logits, or the base model's hidden state."""
    value = getattr(output, "logits", None)
    return value if value is not None else output.last_hidden_state


BACKENDS = {"torch": Torch, "tf": TF, "flax": Flax}
