"""``tribert convert --to jax-export``: the forward pass as a serialized ``jax.export`` artifact.

The artifact runs with jax and jaxlib alone (no tribert, no flax): ::

    exported = jax.export.deserialize(open("model.jax_export", "rb").read())
    outputs = exported.call(dict(np.load("weights.npz")), input_ids, attention_mask, token_type_ids)

Batch and sequence are symbolic (``batch >= 1``, ``1 <= seq <= max_position_embeddings``,
and ``choices`` for multiple choice); inputs are int32; the outputs are a dict of the head's
fields (``last_hidden_state`` and ``pooler_output`` for the encoder, ``logits`` for most heads).
It is lowered for CPU, CUDA and TPU at once, so an artifact written on a laptop serves on a GPU.

The weights are the first argument, not constants baked into the program: XLA constant-folds
baked weights into different float32 roundings (1.7e-6 off the model on the tiny test config,
where the weights-as-argument program is bit-identical), compiles 100M folded constants slowly,
and a serialized module cannot exceed flatbuffers' 2 GB. ``weights.npz`` holds them flat, keyed
by parameter path (``bert/encoder/layer/0/attention/self/query/kernel``), loadable with numpy alone
(bfloat16 weights are stored as float32, which the program casts back exactly).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from bert_core.config import BertConfig
from bert_core.errors import CheckpointError
from bert_core.heads import get_head
from conversion import match_state
from conversion.export_card import input_dims, write_export_card

from . import models
from .loading import _canonical_model_shapes, _params_from

__all__ = ["export_jax", "write_jax_export", "CONVERT_WRITERS", "JAX_EXPORT_FILE", "WEIGHTS_FILE", "PLATFORMS"]

JAX_EXPORT_FILE = "model.jax_export"
WEIGHTS_FILE = "weights.npz"
#: The platforms the artifact is lowered for (``jax.export``'s multi-platform lowering).
PLATFORMS = ("cpu", "cuda", "tpu")
_SEP = "/"

_LOAD = textwrap.dedent("""\
    import jax, numpy as np

    with open("model.jax_export", "rb") as f:
        exported = jax.export.deserialize(f.read())
    weights = dict(np.load("weights.npz"))
    outputs = exported.call(weights, input_ids.astype(np.int32), attention_mask.astype(np.int32),
                            token_type_ids.astype(np.int32))
""")
_REFUSALS = ("A shape outside the limits is refused when the call is compiled: a `ValueError` whose cause reads "
             "`Input shapes do not match the symbolic shape constraint seq <= N`. Ids are not checked inside "
             "the program (XLA clamps an out-of-range gather): check `input_ids` and `token_type_ids` against "
             "the limits before calling.")


def _stored_dtype(dtype) -> np.dtype:
    """The dtype a weight has in ``weights.npz``: its own, but float32 for bfloat16, which ``.npz`` cannot name
    (numpy reads it back as raw ``V2`` bytes); the program casts it back, exactly."""
    return np.dtype(np.float32) if dtype == jnp.bfloat16 else np.dtype(dtype)


def _build(tensors: Mapping[str, np.ndarray], config: BertConfig, head: str):
    """The Flax wrapper of ``head`` with parameters from canonical ``tensors`` (every weight required)."""
    model = getattr(models, get_head(head).flax_name)(config, _do_init=False)
    model_shapes, tied = _canonical_model_shapes(model)
    shapes = {k: tuple(np.shape(v)) for k, v in tensors.items()}
    report = match_state(shapes, model_shapes, tied=tied, source="the converted checkpoint")
    if report.missing_keys:
        raise CheckpointError(f"--to jax-export needs every weight of {head!r}; the checkpoint lacks "
                              f"{report.missing_keys}")
    return model, _params_from(tensors, report, model_shapes, tied, None)


def export_jax(model, params=None) -> jax.export.Exported:
    """``jax.export`` of ``model``'s forward, ``(weights, input_ids, attention_mask, token_type_ids) -> {field: array}``.

    ``weights`` is the flat ``{"a/b/kernel": array}`` form of the parameters (see the module docstring);
    inputs are int32 with symbolic dims (:func:`conversion.export_card.input_dims`), ``seq`` bounded by
    ``max_position_embeddings``.
    """
    params = model.params if params is None else params
    head, module = model.head, model.module
    fields = head.logits

    flat = traverse_util.flatten_dict(params, sep=_SEP)
    dtypes = {k: v.dtype for k, v in flat.items()}

    def forward(weights, input_ids, attention_mask, token_type_ids):
        tree = traverse_util.unflatten_dict({tuple(k.split(_SEP)): v.astype(dtypes[k]) for k, v in weights.items()})
        out = module.apply({"params": tree}, input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids, deterministic=True, return_dict=True)
        return {name: getattr(out, name) for name in fields}

    dims = input_dims(head.name)
    shape = jax.export.symbolic_shape(", ".join(dims),
                                      constraints=[f"seq <= {model.config.max_position_embeddings}"])
    ids = jax.ShapeDtypeStruct(shape, jnp.int32)
    weights = {k: jax.ShapeDtypeStruct(v.shape, _stored_dtype(v.dtype)) for k, v in flat.items()}
    return jax.export.export(jax.jit(forward), platforms=PLATFORMS)(weights, ids, ids, ids)


def write_jax_export(tensors: Mapping[str, np.ndarray], config: BertConfig, head: str,
                     out_dir: str | os.PathLike) -> list[Path]:
    """``tribert convert --to jax-export``: ``model.jax_export``, ``weights.npz`` and the card in ``out_dir``.

    Raises:
        CheckpointError: a weight of ``head`` missing from ``tensors``.
    """
    out_dir = Path(out_dir)
    model, params = _build(tensors, config, head)
    exported = export_jax(model, params)
    (out_dir / JAX_EXPORT_FILE).write_bytes(exported.serialize())
    flat = traverse_util.flatten_dict(params, sep=_SEP)
    np.savez(out_dir / WEIGHTS_FILE, **{k: np.asarray(jax.device_get(v), _stored_dtype(v.dtype)) for k, v in flat.items()})
    avals = jax.tree_util.tree_unflatten(exported.out_tree, exported.out_avals)
    outputs = {name: tuple(str(d) for d in avals[name].shape) for name in get_head(head).logits}
    card = write_export_card(out_dir, target="jax-export", files=[JAX_EXPORT_FILE, WEIGHTS_FILE], config=config,
                             head=head, input_dtype="int32", outputs=outputs, runtime="jax and jaxlib",
                             load=_LOAD, refusals=_REFUSALS)
    return [out_dir / JAX_EXPORT_FILE, out_dir / WEIGHTS_FILE, *card]


#: The ``tribert convert --to`` targets this backend writes (see ``bert_tf.export.CONVERT_WRITERS``).
CONVERT_WRITERS = {"jax-export": write_jax_export}
