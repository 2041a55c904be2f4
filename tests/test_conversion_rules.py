"""The one table of name rules, and key matching with the reports `transformers` users know."""

from __future__ import annotations

import numpy as np
import pytest
import transformers

from bert_core import CheckpointError
from conversion import from_framework, match_state, to_framework, to_framework_key
from harness import tiny_config_dict

HF_HEADS = ["BertForPreTraining", "BertLMHeadModel", "BertForSequenceClassification", "BertForQuestionAnswering"]


def _hf_state(class_name, **overrides):
    config = transformers.BertConfig(**tiny_config_dict(**overrides))
    model = getattr(transformers, class_name)(config)
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("framework", ["keras", "flax"])
@pytest.mark.parametrize("class_name", HF_HEADS)
def test_every_transformers_key_round_trips(framework, class_name):
    state = _hf_state(class_name, is_decoder=True, add_cross_attention=True)
    converted = to_framework(state, framework)
    back = from_framework(converted, framework)
    assert set(back) == set(state)
    for key, value in state.items():
        assert np.array_equal(back[key], value), key


@pytest.mark.parametrize("key, flax, keras, transposed", [
    ("bert.encoder.layer.3.attention.self.query.weight",
     "bert.encoder.layer.3.attention.self.query.kernel", "bert.encoder.layer.3.attention.self.query.kernel", True),
    ("bert.embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.scale", "bert.embeddings.LayerNorm.gamma", False),
    ("bert.embeddings.LayerNorm.bias", "bert.embeddings.LayerNorm.bias", "bert.embeddings.LayerNorm.beta", False),
    ("bert.embeddings.word_embeddings.weight",
     "bert.embeddings.word_embeddings.embedding", "bert.embeddings.word_embeddings.embeddings", False),
    ("bert.encoder.layer.0.attention.self.distance_embedding.weight",
     "bert.encoder.layer.0.attention.self.distance_embedding.embedding",
     "bert.encoder.layer.0.attention.self.distance_embedding.embeddings", False),
    ("cls.predictions.bias", "cls.predictions.bias", "cls.predictions.bias", False),
    ("classifier.weight", "classifier.kernel", "classifier.kernel", True),
])
def test_leaf_rules(key, flax, keras, transposed):
    assert to_framework_key(key, "flax") == (flax, transposed)
    assert to_framework_key(key, "keras") == (keras, transposed)


def test_problems_are_collected_and_raised_once():
    bad = {"bert.pooler.dense.weight": np.zeros(3), "x.running_mean": np.zeros(2), "y.num_batches": np.zeros(1)}
    with pytest.raises(CheckpointError) as info:
        to_framework(bad, "flax")
    message = str(info.value)
    assert "3 key(s)" in message and "x.running_mean" in message and "y.num_batches" in message
    assert "expected a 2-D weight" in message


def _shapes(state):
    return {k: v.shape for k, v in state.items()}


def test_prefixless_checkpoint_with_buffer_into_head_model(real_model_dir):
    from conversion import open_checkpoint

    checkpoint = open_checkpoint(real_model_dir).shapes()  # no `bert.` prefix, has position_ids
    model = {"bert." + k: v for k, v in checkpoint.items() if "position_ids" not in k}
    model |= {"classifier.weight": (2, 384), "classifier.bias": (2,)}
    report = match_state(checkpoint, model)
    assert report.ignored_keys == ["embeddings.position_ids"]
    assert sorted(report.missing_keys) == ["classifier.bias", "classifier.weight"]
    assert report.unexpected_keys == []
    assert all(report.assignments[k] == k[len("bert."):] for k in report.assignments)


def test_prefixed_checkpoint_into_base_model():
    state = _hf_state("BertForPreTraining")
    base = {k[len("bert."):]: v.shape for k, v in state.items() if k.startswith("bert.")}
    report = match_state(_shapes(state), base)
    assert not report.missing_keys
    assert sorted(report.unexpected_keys) == sorted(k for k in state if k.startswith("cls."))


def test_legacy_layernorm_names():
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in _hf_state("BertForPreTraining").items()}
    report = match_state(_shapes(state), _shapes(_hf_state("BertForPreTraining")))
    assert not report.missing_keys and not report.unexpected_keys
    assert report.assignments["bert.embeddings.LayerNorm.weight"] == "bert.embeddings.LayerNorm.gamma"


def test_tied_decoder_reported_as_tied_not_missing():
    state = _hf_state("BertForPreTraining")
    checkpoint = {k: v.shape for k, v in state.items() if not k.startswith("cls.predictions.decoder")}
    report = match_state(checkpoint, _shapes(state))
    assert sorted(report.tied_keys) == ["cls.predictions.decoder.bias", "cls.predictions.decoder.weight"]
    assert report.missing_keys == []


def test_mismatched_shapes_name_key_and_both_shapes():
    model = _shapes(_hf_state("BertForSequenceClassification"))
    checkpoint = dict(model) | {"classifier.weight": (5, 32), "classifier.bias": (5,)}
    with pytest.raises(CheckpointError) as info:
        match_state(checkpoint, model, source="ckpt/model.safetensors")
    message = str(info.value)
    assert "classifier.weight: checkpoint (5, 32) vs model (2, 32)" in message
    assert "ckpt/model.safetensors" in message and "ignore_mismatched_sizes=True" in message
    report = match_state(checkpoint, model, ignore_mismatched_sizes=True)
    assert ("classifier.weight", (5, 32), (2, 32)) in report.mismatched_keys
    assert "classifier.weight" not in report.assignments
    assert "do not match" not in report.summary() and "shapes did not match" in report.summary()
