"""The references of the parity matrix: transformers 5.x PyTorch, and transformers 4.57.6's fixtures.

``hf5_checkpoint`` builds the transformers 5.x model of a head with random weights (every tensor
random, biases and LayerNorm included, so a dropped bias shows), saves it with transformers' own
``save_pretrained`` (the canonical checkpoint every backend loads) and keeps the model to compute the
expected numbers. ``fixture_checkpoint`` / ``fixture_arrays`` serve what 5.x dropped (relative position
embeddings, ``head_mask``) from ``tests/fixtures/relative`` (written by 4.57.6, see its make_fixtures.py).
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bert_core import HEADS, BertConfig
from conversion import SafetensorsFile, save_checkpoint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "relative"
WORK = Path(tempfile.mkdtemp(prefix="tribert-matrix-"))
atexit.register(shutil.rmtree, WORK, True)
#: Weight scale of the random checkpoints: the legacy fixtures' 0.2 keeps logits O(1), where float32
#: rounding is ~1e-7 (at 0.5 logits reach ~10 and rounding alone nears the 1e-5 bound).
SCALE = 0.2


@functools.cache
def hf5_checkpoint(config_items: tuple, head: str):
    """(transformers 5.x model in eval mode with eager attention, its checkpoint directory)."""
    import torch
    import transformers

    config = transformers.BertConfig(**dict(config_items), architectures=[HEADS[head].class_name])
    config._attn_implementation = "eager"  # the plain math; it also returns the attention probabilities
    model = getattr(transformers, HEADS[head].class_name)(config).eval()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for name, param in model.named_parameters():  # tied tensors are listed once
            base = 1.0 if name.endswith("LayerNorm.weight") else 0.0
            param.copy_(torch.from_numpy(base + SCALE * rng.standard_normal(tuple(param.shape))))
    directory = WORK / f"hf5-{len(list(WORK.iterdir()))}"
    model.save_pretrained(directory)
    return model, directory


@functools.cache
def fixture_meta() -> dict:
    return json.loads((FIXTURES / "fixtures.json").read_text())


@functools.cache
def fixture_arrays() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "reference.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@functools.cache
def fixture_checkpoint(position_type: str, head: str) -> Path:
    """The fixture weights of ``head`` with ``position_type``, written as the canonical checkpoint."""
    meta = fixture_meta()
    class_name = HEADS[head].class_name
    keys = meta["absolute_keys"] if position_type == "absolute" else meta["keys"][class_name]
    union = dict(SafetensorsFile(FIXTURES / "weights.safetensors"))
    prefix = "bert." if class_name == "BertModel" else ""  # transformers saves BertModel without the prefix
    directory = WORK / f"fixture-{position_type}-{head}"
    save_checkpoint({k: np.asarray(union[prefix + k]) for k in keys}, directory)
    BertConfig.from_dict(meta["configs"][position_type][class_name]).save_pretrained(directory)
    return directory


def fixture_inputs(head: str) -> dict[str, np.ndarray]:
    """The fixture's input batch for ``head`` (the decoder batch, with cross-attention inputs, for the causal LM)."""
    kind = "decoder" if head == "causal-lm" else "encoder"
    arrays = fixture_arrays()
    return {k.rsplit("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"inputs/{kind}/")}


def fixture_labels(head: str) -> dict[str, np.ndarray]:
    key = f"inputs/{head}/labels"
    return {"labels": fixture_arrays()[key]}


def fixture_expected(position_type: str, head: str, prefix: str) -> dict[str, np.ndarray]:
    """``{field: array}`` stored under ``<position type>/<head>/<prefix>``, numbered sequences as ``name/i``."""
    start = f"{position_type}/{head}/{prefix}"
    return {k[len(start):]: v for k, v in fixture_arrays().items() if k.startswith(start)}
