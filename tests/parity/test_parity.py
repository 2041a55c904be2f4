"""Three-way parity: every head, every pair of frameworks and `transformers`, one padded batch.

Each head's checkpoint is written once in canonical safetensors and loaded
through each backend's public ``from_pretrained`` (conversion rules included);
outputs are compared on real positions (a partly padded, a [CLS]-only and a
fully padded row are in the batch). The same code backs ``tribert parity``.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from bert_core import HEADS, BertConfig
from conversion.layout import canonical_shapes
from conversion.safetensors_io import save_checkpoint
from harness import real_checkpoint_dir, tiny_config_dict
from tribert.parity import REFERENCE, RTOL, TOLERANCE, compare, head_checkpoint, make_inputs, run_framework

FRAMEWORKS = ("torch", "tf", "flax")
PAIRS = [*itertools.combinations(FRAMEWORKS, 2), *((f, REFERENCE) for f in FRAMEWORKS)]
#: On CPU, tiny random weights are the parity matrix's (tests/parity/test_matrix.py); here they run on GPU.
GPU = [pytest.param("gpu", id="gpu", marks=pytest.mark.gpu)]
_WORK = Path(tempfile.mkdtemp(prefix="tribert-parity-tests-"))
atexit.register(shutil.rmtree, _WORK, True)


@functools.cache
def source(name: str) -> Path:
    """``tiny``: a random small BERT; ``real``: all-MiniLM-L6-v2 (heads on top seeded random)."""
    if name == "real":
        return real_checkpoint_dir()
    directory = _WORK / "tiny-source"
    config = BertConfig(**tiny_config_dict(initializer_range=0.2))
    rng = np.random.default_rng(1)
    save_checkpoint({k: (rng.standard_normal(s) * 0.2).astype(np.float32) for k, s in canonical_shapes(config, "base").items()}, directory)
    config.save_pretrained(directory)
    return directory


@functools.cache
def outputs(name: str, head: str, framework: str, dtype: str, device: str) -> dict[str, np.ndarray]:
    directory = _WORK / name / head
    if not (directory / "config.json").exists():
        head_checkpoint(source(name), head, directory)
    config = BertConfig.from_pretrained(directory)
    return run_framework(framework, directory, head, make_inputs(config, head), dtype, device)


def check(name, head, pair, dtype, device, what="all"):
    results = {f: outputs(name, head, f, dtype, device) for f in pair}
    config = BertConfig.from_pretrained(_WORK / name / head)
    rows = compare(results, head, make_inputs(config, head)["attention_mask"], TOLERANCE[dtype], what, RTOL[dtype])
    assert rows, f"{pair} produced no common outputs for {head}"
    bad = [f"{r.output}: {r.max_abs_diff:.2e}" for r in rows if not r.ok]
    assert not bad, (f"{head} {pair[0]} vs {pair[1]} ({dtype}, {device}) above {TOLERANCE[dtype]} + "
                     f"{RTOL[dtype]} * magnitude: {bad}")


@pytest.mark.parametrize("device", GPU)
@pytest.mark.parametrize("pair", PAIRS, ids="-".join)
@pytest.mark.parametrize("head", HEADS)
def test_float32_parity_on_random_weights(head, pair, device):
    check("tiny", head, pair, "float32", device)


@pytest.mark.slow
@pytest.mark.parametrize("pair", PAIRS, ids="-".join)
@pytest.mark.parametrize("head", HEADS)
def test_float32_parity_on_the_real_checkpoint(head, pair):
    check("real", head, pair, "float32", "cpu")


@pytest.mark.parametrize("device", GPU)
@pytest.mark.parametrize("pair", list(itertools.combinations(FRAMEWORKS, 2)), ids="-".join)
@pytest.mark.parametrize("head", ["base", "masked-lm", "sequence-classification"])
def test_bfloat16_parity_is_bounded(head, pair, device):
    """bfloat16 on both sides: within the dtype's tolerance of each other (the bound is TOLERANCE['bfloat16'])."""
    check("tiny", head, pair, "bfloat16", device, what="logits")
