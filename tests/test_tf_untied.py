"""``tie_word_embeddings=False``: the LM head's own ``decoder`` (kernel and bias) against transformers 5.x, saved and read back."""

from __future__ import annotations

import tempfile

import keras
import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file, save_file

import bert_tf
from harness import assert_close
from test_tf_helpers import head_inputs, keep_mask, parity_config, to_torch

LM_HEADS = ["BertForMaskedLM", "BertForPreTraining", "BertLMHeadModel"]


def _untied_hf(class_name: str):
    """A transformers 5.x head with untied decoder and every parameter random, biases included.

    Zero-initialised biases would hide a decoder that adds ``cls.predictions.bias`` instead of its own bias.
    """
    cfg = parity_config(tie_word_embeddings=False, **({"is_decoder": True} if class_name == "BertLMHeadModel" else {}))
    torch.manual_seed(0)
    hf_config = transformers.BertConfig(**cfg)
    hf_config._attn_implementation = "eager"
    hf = getattr(transformers, class_name)(hf_config).eval()
    with torch.no_grad():
        for parameter in hf.parameters():
            parameter.normal_(0.0, 0.2)
    assert hf.cls.predictions.decoder.weight.data_ptr() != hf.bert.embeddings.word_embeddings.weight.data_ptr()
    return hf, cfg


def _logits(output, class_name: str):
    return output["prediction_logits" if class_name == "BertForPreTraining" else "logits"]


def _assert_matches(ours, hf, class_name: str, cfg: dict) -> None:
    inputs = head_inputs(class_name, cfg)
    with torch.no_grad():
        ref = _logits(hf(**to_torch(inputs)), class_name)
    value = _logits(ours(**inputs), class_name).numpy()
    assert_close(value, ref, mask=keep_mask(value.shape, inputs["attention_mask"]))


@pytest.mark.parametrize("class_name", LM_HEADS)
def test_untied_decoder_matches_transformers_and_survives_save_and_load(class_name, tmp_path):
    hf, cfg = _untied_hf(class_name)
    hf.save_pretrained(tmp_path / "hf")
    ours, info = getattr(bert_tf, "TF" + class_name).from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["tied_keys"], info
    assert {"cls.predictions.decoder.kernel", "cls.predictions.decoder.bias"} <= set(ours.named_weights())
    _assert_matches(ours, hf, class_name, cfg)

    ours.save_pretrained(tmp_path / "ours")
    saved = load_file(tmp_path / "ours" / "model.safetensors")
    for key in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"):
        np.testing.assert_array_equal(saved[key], hf.state_dict()[key].numpy(), err_msg=key)
    _assert_matches(getattr(bert_tf, "TF" + class_name).from_pretrained(tmp_path / "ours"), hf, class_name, cfg)
    again = getattr(transformers, class_name).from_pretrained(tmp_path / "ours", attn_implementation="eager").eval()
    _assert_matches(ours, again, class_name, cfg)

    ours.save(tmp_path / "model.keras")
    _assert_matches(keras.models.load_model(tmp_path / "model.keras"), hf, class_name, cfg)


def test_a_4x_checkpoint_without_the_decoder_bias_reads_the_shared_bias(tmp_path):
    # transformers 4.x shared one tensor between cls.predictions.bias and the decoder bias, tied or not,
    # so its untied checkpoints may carry only cls.predictions.bias.
    hf, cfg = _untied_hf("BertForMaskedLM")
    with torch.no_grad():
        hf.cls.predictions.decoder.bias.copy_(hf.cls.predictions.bias)
    hf.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    tensors = load_file(path)
    del tensors["cls.predictions.decoder.bias"]
    save_file(tensors, path, metadata={"format": "pt"})
    ours, info = bert_tf.TFBertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"], info
    _assert_matches(ours, hf, "BertForMaskedLM", cfg)


def test_tied_decoder_still_reads_the_word_embeddings():
    config = bert_tf.BertConfig(**parity_config())
    model = bert_tf.TFBertForMaskedLM(config)
    assert not any(key.startswith("cls.predictions.decoder") for key in model.named_weights())
    assert model.tied_keys() == {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
                                 "cls.predictions.decoder.bias": "cls.predictions.bias"}
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        assert not any(key.startswith("cls.predictions.decoder") for key in load_file(f"{tmp}/model.safetensors"))
