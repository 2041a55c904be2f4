"""Helpers shared by the ``test_tf_*`` files (no tests here): HF reference models loaded into bert_tf."""

from __future__ import annotations

import tempfile

import numpy as np
import torch
import transformers

import bert_tf
from bert_core import HEADS
from harness import padded_batch, tiny_config_dict

CLASS_NAMES = [head.class_name for head in HEADS.values()]
#: Weights of std 0.2 (as the sibling backends use): at the harness default 0.5 logits reach ~10 and float32
#: rounding alone moves them by ~1e-5 in *either* framework (test_hot_weights_stay_as_close_to_float64_as_torch).
PARITY_INIT = {"initializer_range": 0.2}


def parity_config(**overrides) -> dict:
    """The tiny config of the parity tests."""
    return tiny_config_dict(**{**PARITY_INIT, **overrides})
HEAD_OF_CLASS = {head.class_name: head for head in HEADS.values()}


def tf_pair(class_name: str, seed: int = 0, **overrides):
    """(ours, HF) of the same class: HF's random weights saved by transformers and read by ``from_pretrained``."""
    cfg = parity_config(**overrides)
    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(**cfg)
    hf_config._attn_implementation = "eager"
    hf = getattr(transformers, class_name)(hf_config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours, info = getattr(bert_tf, "TF" + class_name).from_pretrained(tmp, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    return ours, hf


def head_inputs(class_name: str, config: dict, *, seed: int = 0, fully_padded_row: bool = True) -> dict:
    """A right-padded numpy batch shaped for the head (multiple choice gets a choices axis)."""
    batch = padded_batch(config["vocab_size"], batch=4, seq=9, seed=seed, fully_padded_row=fully_padded_row)
    if class_name == "BertForMultipleChoice":
        batch = {k: v.reshape(2, 2, -1) for k, v in batch.items()}
    return batch


def head_labels(class_name: str, inputs: dict, config: dict, problem_type: str | None = None) -> dict:
    """Numpy labels as a user passes them, with -100 on padding where the head ignores positions."""
    rng = np.random.default_rng(1)
    mask = inputs["attention_mask"]
    tokens = np.where(mask == 1, rng.integers(0, config["vocab_size"], mask.shape), -100)
    batch = mask.shape[0]
    num_labels = config.get("num_labels", 2)
    if class_name == "BertForPreTraining":
        return {"labels": tokens, "next_sentence_label": rng.integers(0, 2, (batch,))}
    if class_name in ("BertForMaskedLM", "BertLMHeadModel"):
        return {"labels": tokens}
    if class_name == "BertForNextSentencePrediction":
        return {"labels": rng.integers(0, 2, (batch,))}
    if class_name == "BertForSequenceClassification":
        if problem_type == "regression":
            return {"labels": rng.standard_normal(batch).astype(np.float32)}
        if problem_type == "multi_label_classification":
            return {"labels": rng.integers(0, 2, (batch, num_labels)).astype(np.float32)}
        return {"labels": rng.integers(0, num_labels, (batch,))}
    if class_name == "BertForMultipleChoice":
        return {"labels": rng.integers(0, mask.shape[1], (batch,))}
    if class_name == "BertForTokenClassification":
        return {"labels": np.where(mask == 1, rng.integers(0, num_labels, mask.shape), -100)}
    if class_name == "BertForQuestionAnswering":
        # The last start position lies past the sequence: clamped and ignored, as in transformers.
        return {"start_positions": np.array([0, 3, 5, 40]), "end_positions": np.array([2, 4, 8, 1])}
    return {}


def to_torch(inputs: dict) -> dict:
    return {k: torch.tensor(v) for k, v in inputs.items()}


def keep_mask(output_shape: tuple, attention_mask: np.ndarray) -> np.ndarray:
    """Keep-mask for comparing with HF: real tokens, or rows with at least one real token."""
    mask = attention_mask.reshape(-1, attention_mask.shape[-1]).astype(bool)
    if len(output_shape) >= 2 and tuple(output_shape[:2]) == mask.shape:
        return mask
    rows = mask.any(-1)
    return rows.reshape(output_shape[0], -1).all(-1) if output_shape[0] != rows.shape[0] else rows


def head_config(class_name: str, problem_type: str | None = None) -> dict:
    """Config overrides a head needs (decoder mode for the causal LM, label counts)."""
    overrides: dict = {"is_decoder": True} if class_name == "BertLMHeadModel" else {}
    if problem_type == "regression":
        overrides["num_labels"] = 1
    elif class_name in ("BertForSequenceClassification", "BertForTokenClassification"):
        overrides["num_labels"] = 3
    return overrides
