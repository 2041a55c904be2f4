"""BertConfig: the same fields, defaults and files as `transformers`' BertConfig."""

from __future__ import annotations

import json

import pytest
import transformers

from bert_core import BertConfig, ConfigError
from harness import tiny_config_dict

# Fields transformers' BertConfig carries that BERT models read.
MODEL_FIELDS = [
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
    "initializer_range", "layer_norm_eps", "pad_token_id", "use_cache", "classifier_dropout", "is_decoder",
    "add_cross_attention", "tie_word_embeddings", "problem_type", "architectures", "output_attentions",
    "output_hidden_states", "num_labels", "id2label", "label2id",
]


def _hf_value(hf, name):
    value = getattr(hf, name)
    return {int(k): v for k, v in value.items()} if name == "id2label" else value


def test_defaults_equal_transformers():
    ours, ref = BertConfig(), transformers.BertConfig()
    for name in MODEL_FIELDS:
        # transformers 5.x keeps position_embedding_type out of the class but accepts it.
        assert getattr(ours, name) == _hf_value(ref, name), name
    assert ours.position_embedding_type == "absolute"


@pytest.mark.parametrize("overrides", [
    {"num_labels": 5},
    {"id2label": {"0": "NEG", "1": "POS"}, "label2id": {"NEG": 0, "POS": 1}},
    {"is_decoder": True, "add_cross_attention": True, "hidden_act": "gelu_new", "classifier_dropout": 0.3},
    {"problem_type": "multi_label_classification", "architectures": ["BertForSequenceClassification"]},
])
def test_config_json_round_trips_through_transformers(tmp_path, overrides):
    ours = BertConfig(**overrides)
    ours.save_pretrained(tmp_path)
    ref = transformers.BertConfig.from_pretrained(tmp_path)
    for name in MODEL_FIELDS:
        assert getattr(ours, name) == _hf_value(ref, name), name
    ref_dir = tmp_path / "hf"
    ref.save_pretrained(ref_dir)
    assert BertConfig.from_pretrained(ref_dir) == ours


def test_unknown_keys_are_kept(tmp_path):
    data = BertConfig().to_dict() | {"custom_field": [1, 2], "gradient_checkpointing": False}
    (tmp_path / "config.json").write_text(json.dumps(data))
    config = BertConfig.from_pretrained(tmp_path)
    assert config.custom_field == [1, 2]
    config.added_later = "x"
    written = json.loads(config.to_json_string())
    assert written["custom_field"] == [1, 2] and written["added_later"] == "x"
    assert written["gradient_checkpointing"] is False


def test_real_checkpoint_config(real_model_dir):
    config = BertConfig.from_pretrained(real_model_dir)
    ref = transformers.BertConfig.from_pretrained(real_model_dir)
    for name in MODEL_FIELDS:
        assert getattr(config, name) == _hf_value(ref, name), name
    assert (config.num_hidden_layers, config.hidden_size) == (6, 384)


def test_google_bert_config_json(tmp_path):
    google = {
        "attention_probs_dropout_prob": 0.1, "directionality": "bidi", "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
        "max_position_embeddings": 512, "num_attention_heads": 12, "num_hidden_layers": 12,
        "pooler_fc_size": 768, "type_vocab_size": 2, "vocab_size": 21128,
    }
    (tmp_path / "bert_config.json").write_text(json.dumps(google))
    config = BertConfig.from_pretrained(tmp_path)
    assert config.vocab_size == 21128 and config.directionality == "bidi"
    assert BertConfig.from_json_file(tmp_path / "bert_config.json") == config


@pytest.mark.parametrize("field, value, fragment", [
    ("hidden_size", 100, "divisible by num_attention_heads"),
    ("hidden_act", "gelu_tanh_magic", "hidden_act"),
    ("position_embedding_type", "rotary", "position_embedding_type"),
    ("num_hidden_layers", 0, "num_hidden_layers"),
    ("vocab_size", -3, "vocab_size"),
    ("intermediate_size", 2.5, "intermediate_size"),
    ("hidden_dropout_prob", 1.5, "hidden_dropout_prob"),
    ("attention_probs_dropout_prob", -0.1, "attention_probs_dropout_prob"),
    ("classifier_dropout", 2, "classifier_dropout"),
    ("problem_type", "ranking", "problem_type"),
    ("num_labels", 0, "num_labels"),
])
def test_invalid_field_names_the_field(field, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        BertConfig(**{field: value})


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh"])
def test_issue_activations_accepted(act):
    assert BertConfig(hidden_act=act).hidden_act == act


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"model_type": "gpt2"}', "model_type"),
    ('{"hidden_size": 10, "num_attention_heads": 3}', "divisible"),
])
def test_bad_config_file_names_the_file(tmp_path, content, fragment):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=fragment) as info:
        BertConfig.from_json_file(path)
    assert "config.json" in str(info.value) or fragment == "model_type"


def test_missing_config_names_the_directory(tmp_path):
    with pytest.raises(ConfigError, match=str(tmp_path)):
        BertConfig.from_pretrained(tmp_path)


def test_num_labels_regenerates_label_maps():
    config = BertConfig()
    config.num_labels = 4
    assert config.id2label == {i: f"LABEL_{i}" for i in range(4)}
    assert config.label2id == {f"LABEL_{i}": i for i in range(4)}
    assert config.copy(num_labels=3).num_labels == 3


def test_save_pretrained_is_atomic_and_rejects_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        BertConfig().save_pretrained(target)
    BertConfig().save_pretrained(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json"]


@pytest.mark.parametrize("backend", ["torch", "tf", "flax"])
@pytest.mark.parametrize("field, value", [("hidden_size", -32), ("num_hidden_layers", 10**6), ("hidden_act", "nope")])
def test_a_config_edited_after_construction_is_refused_by_every_model(backend, field, value):
    """Attributes are plain Python: a value set after ``BertConfig(...)`` is checked when a model is built."""
    import importlib

    config = BertConfig(**tiny_config_dict())
    setattr(config, field, value)
    module = importlib.import_module(f"bert_{backend}")
    name = {"torch": "BertModel", "tf": "TFBertModel", "flax": "FlaxBertModel"}[backend]
    with pytest.raises(ConfigError, match=field):
        getattr(module, name)(config)
