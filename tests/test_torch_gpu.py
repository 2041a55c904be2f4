"""GPU checks (marker ``gpu``; skipped with a reason where torch sees no CUDA device).

bf16 / fp16 SDPA against the float32 reference and against transformers in the
same dtype, float32 against transformers with TF32 off, eager == SDPA on the GPU.
Bounds: ``TOL`` in tests/harness.py (bf16 6e-2, fp16 1e-2, float32 1e-5).
"""

from __future__ import annotations

import pytest
import torch
import transformers

import bert_torch
from harness import TOL, max_abs_diff, padded_batch

pytestmark = pytest.mark.gpu

HALF = [pytest.param(torch.bfloat16, "bfloat16", id="bf16"), pytest.param(torch.float16, "float16", id="fp16")]


def cuda_batch(vocab_size: int) -> dict:
    return {k: torch.tensor(v, device="cuda") for k, v in padded_batch(vocab_size, batch=4, seq=32).items()}


def load(class_name: str, path, dtype=torch.float32, attn_implementation: str = "sdpa"):
    return getattr(bert_torch, class_name).from_pretrained(path, dtype=dtype, device_map="cuda",
                                                           attn_implementation=attn_implementation)


def hf_load(class_name: str, path, dtype=torch.float32):
    model = getattr(transformers, class_name).from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    return model.cuda().eval()


@pytest.mark.parametrize("class_name", ["BertModel", "BertForMaskedLM"])
def test_float32_on_gpu_matches_transformers(class_name, real_model_dir):
    inputs = cuda_batch(30522)
    mask = inputs["attention_mask"].cpu().numpy()
    with torch.no_grad():
        mine, ref = load(class_name, real_model_dir)(**inputs), hf_load(class_name, real_model_dir)(**inputs)
    field = "last_hidden_state" if class_name == "BertModel" else "logits"
    assert max_abs_diff(mine[field], ref[field], mask) <= TOL["float32"]


@pytest.mark.parametrize("dtype,name", HALF)
def test_half_precision_sdpa_stays_within_the_dtype_bound_of_float32(dtype, name, real_model_dir):
    inputs = cuda_batch(30522)
    mask = inputs["attention_mask"].cpu().numpy()
    with torch.no_grad():
        ref = load("BertModel", real_model_dir)(**inputs)
        half = load("BertModel", real_model_dir, dtype=dtype)(**inputs)
    assert half.last_hidden_state.dtype == dtype and torch.isfinite(half.last_hidden_state).all()
    assert max_abs_diff(half.last_hidden_state, ref.last_hidden_state, mask) <= TOL[name]


@pytest.mark.parametrize("dtype,name", HALF)
def test_half_precision_matches_transformers_in_the_same_dtype(dtype, name, real_model_dir):
    inputs = cuda_batch(30522)
    mask = inputs["attention_mask"].cpu().numpy()
    with torch.no_grad():
        mine = load("BertModel", real_model_dir, dtype=dtype)(**inputs)
        ref = hf_load("BertModel", real_model_dir, dtype=dtype)(**inputs)
    assert max_abs_diff(mine.last_hidden_state, ref.last_hidden_state, mask) <= TOL[name]


@pytest.mark.parametrize("dtype,name", [pytest.param(torch.float32, "float32", id="fp32"), *HALF])
def test_eager_equals_sdpa_on_gpu(dtype, name, real_model_dir):
    inputs = cuda_batch(30522)
    with torch.no_grad():
        sdpa = load("BertModel", real_model_dir, dtype=dtype)(**inputs)
        eager = load("BertModel", real_model_dir, dtype=dtype, attn_implementation="eager")(**inputs)
    assert torch.isfinite(sdpa.last_hidden_state).all()  # the fully padded row too
    assert max_abs_diff(sdpa.last_hidden_state, eager.last_hidden_state) <= TOL[name]
