"""from_pretrained / save_pretrained: transformers interop both ways, the key variants found in the wild,
reports and errors, sharding, legacy .bin, hub cache ids, dtype and device handling."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file, save_file

import bert_torch
from bert_core import BertConfig, CheckpointError, ConfigError, HEADS
from bert_torch.unpad import padding_read
from harness import TOL, max_abs_diff, padded_batch, tiny_config_dict

CLASS_NAMES = [head.class_name for head in HEADS.values()]


def hf_model(class_name: str = "BertForPreTraining", **overrides):
    torch.manual_seed(0)
    cfg = tiny_config_dict(**overrides)
    return getattr(transformers, class_name)(transformers.BertConfig(**cfg)).eval()


def inputs_for(class_name: str) -> dict:
    inputs = {k: torch.tensor(v) for k, v in padded_batch(99, batch=4, fully_padded_row=False).items()}
    if class_name == "BertForMultipleChoice":
        inputs = {k: v.view(2, 2, -1) for k, v in inputs.items()}
    return inputs


def outputs_equal(ours, hf, class_name: str) -> float:
    inputs = inputs_for(class_name)
    head = next(h for h in HEADS.values() if h.class_name == class_name)
    # Every position, padding included, and bit for bit: the padded path (the packed default, which zeroes
    # padded positions, is compared with transformers in tests/test_torch_unpad.py and the parity matrix).
    with torch.no_grad(), padding_read():
        mine, ref = ours(**inputs), hf(**inputs)
    return max(max_abs_diff(mine[f], ref[f]) for f in head.logits)


def extra_config(class_name: str) -> dict:
    return {"is_decoder": True} if class_name == "BertLMHeadModel" else {}


@pytest.mark.parametrize("class_name", CLASS_NAMES)
def test_our_save_loads_in_transformers_without_warnings_and_matches(class_name, tmp_path):
    hf = hf_model(class_name, **extra_config(class_name))
    ours = getattr(bert_torch, class_name)(BertConfig(**tiny_config_dict(**extra_config(class_name))))
    ours.load_state_dict(hf.state_dict())
    ours.save_pretrained(tmp_path / "ours")
    hf.save_pretrained(tmp_path / "hf")
    # Exactly the keys transformers writes for this class (tied decoder left out, no bert. on BertModel).
    assert set(load_file(tmp_path / "ours" / "model.safetensors")) == \
        set(load_file(tmp_path / "hf" / "model.safetensors"))
    reloaded, info = getattr(transformers, class_name).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert outputs_equal(ours.eval(), reloaded.eval(), class_name) == 0.0


@pytest.mark.parametrize("class_name", CLASS_NAMES)
def test_transformers_save_loads_here_and_matches(class_name, tmp_path):
    hf = hf_model(class_name, **extra_config(class_name))
    hf.save_pretrained(tmp_path)
    ours, info = getattr(bert_torch, class_name).from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert not ours.training
    assert outputs_equal(ours, hf, class_name) <= TOL["float32"]


def test_tied_decoder_shares_the_word_embeddings_after_loading(tmp_path):
    hf_model("BertForMaskedLM").save_pretrained(tmp_path)
    ours, info = bert_torch.BertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert ours.cls.predictions.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    assert ours.cls.predictions.decoder.bias is ours.cls.predictions.bias
    assert sorted(info["tied_keys"]) == ["cls.predictions.decoder.bias", "cls.predictions.decoder.weight"]


def _write(tmp_path, tensors: dict, config_class: str = "BertForPreTraining"):
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, tmp_path / "model.safetensors")
    cfg = {**tiny_config_dict(), "architectures": [config_class], "model_type": "bert"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return tmp_path


def _hf_tensors(class_name: str = "BertForPreTraining") -> dict:
    return {k: v.numpy() for k, v in hf_model(class_name).state_dict().items()}


@pytest.mark.parametrize("variant", ["no-bert-prefix", "layernorm-gamma-beta", "position-ids-buffer"])
def test_checkpoint_key_variants_load_like_the_canonical_keys(variant, tmp_path):
    tensors = _hf_tensors()
    if variant == "no-bert-prefix":
        tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
    elif variant == "layernorm-gamma-beta":
        tensors = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
                   for k, v in tensors.items()}
    else:
        tensors["bert.embeddings.position_ids"] = np.arange(64)[None, :]
    ours, info = bert_torch.BertForPreTraining.from_pretrained(_write(tmp_path, tensors), output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert outputs_equal(ours, hf_model("BertForPreTraining"), "BertForPreTraining") == 0.0


def test_real_checkpoint_without_prefix_and_with_position_ids_loads_cleanly(real_model_dir):
    _, info = bert_torch.BertModel.from_pretrained(real_model_dir, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    mlm, info = bert_torch.BertForMaskedLM.from_pretrained(real_model_dir, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["cls.predictions.bias", "cls.predictions.transform.LayerNorm.bias",
                                            "cls.predictions.transform.LayerNorm.weight",
                                            "cls.predictions.transform.dense.bias",
                                            "cls.predictions.transform.dense.weight"]
    assert sorted(info["unexpected_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]  # MLM has no pooler


def test_other_heads_checkpoint_reports_missing_and_unexpected_and_initialises(tmp_path, caplog):
    path = _write(tmp_path, _hf_tensors("BertForPreTraining"))
    with caplog.at_level(logging.WARNING, logger="bert_torch"):
        model, info = bert_torch.BertForSequenceClassification.from_pretrained(path, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    assert {"cls.seq_relationship.weight", "cls.predictions.bias"} <= set(info["unexpected_keys"])
    assert "classifier.weight" in caplog.text and "newly initialized" in caplog.text
    # Missing weights are initialised as transformers does, not left as uninitialised memory.
    assert torch.equal(model.classifier.bias, torch.zeros(2))
    assert abs(float(model.classifier.weight.detach().std()) - 0.5) < 0.2


def test_mismatched_shape_is_an_error_naming_key_and_shapes_unless_ignored(tmp_path):
    hf_model("BertForSequenceClassification").save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"classifier\.weight: checkpoint \(2, 32\) vs model \(5, 32\)"):
        bert_torch.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    model, info = bert_torch.BertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True)
    assert ("classifier.weight", (2, 32), (5, 32)) in info["mismatched_keys"]
    assert model.classifier.weight.shape == (5, 32) and torch.equal(model.classifier.bias, torch.zeros(5))


def test_sharded_save_loads_here_and_in_transformers(tmp_path):
    hf = hf_model("BertForPreTraining")
    ours = bert_torch.BertForPreTraining(BertConfig(**tiny_config_dict()))
    ours.load_state_dict(hf.state_dict())
    ours.save_pretrained(tmp_path, max_shard_size="20KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1 and not (tmp_path / "model.safetensors").exists()
    assert outputs_equal(bert_torch.BertForPreTraining.from_pretrained(tmp_path), hf, "BertForPreTraining") == 0.0
    assert outputs_equal(transformers.BertForPreTraining.from_pretrained(tmp_path).eval(), hf,
                         "BertForPreTraining") == 0.0


def test_legacy_pytorch_model_bin_loads(tmp_path):
    hf = hf_model("BertForMaskedLM")
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({**tiny_config_dict(), "model_type": "bert"}))
    assert outputs_equal(bert_torch.BertForMaskedLM.from_pretrained(tmp_path), hf, "BertForMaskedLM") == 0.0


def test_save_with_safe_serialization_false_writes_a_bin_transformers_reads(tmp_path):
    hf = hf_model("BertForMaskedLM")
    ours = bert_torch.BertForMaskedLM(BertConfig(**tiny_config_dict()))
    ours.load_state_dict(hf.state_dict())
    ours.save_pretrained(tmp_path, safe_serialization=False)
    assert (tmp_path / "pytorch_model.bin").exists() and not (tmp_path / "model.safetensors").exists()
    assert outputs_equal(transformers.BertForMaskedLM.from_pretrained(tmp_path).eval(), hf, "BertForMaskedLM") == 0.0


def test_hub_id_resolves_from_a_local_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "models--acme--tiny-bert" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (tmp_path / "models--acme--tiny-bert" / "refs").mkdir()
    (tmp_path / "models--acme--tiny-bert" / "refs" / "main").write_text(revision)
    hf = hf_model("BertForMaskedLM")
    hf.save_pretrained(snapshot)
    model = bert_torch.AutoModelForMaskedLM.from_pretrained("acme/tiny-bert", cache_dir=tmp_path)
    assert isinstance(model, bert_torch.BertForMaskedLM)
    assert outputs_equal(model, hf, "BertForMaskedLM") == 0.0


@pytest.mark.parametrize("dtype,expected", [(torch.bfloat16, torch.bfloat16), ("float16", torch.float16),
                                            (None, torch.float32), ("auto", torch.bfloat16)])
def test_dtype_argument_sets_the_parameter_dtype(dtype, expected, tmp_path):
    hf = hf_model("BertForMaskedLM")
    hf.to(torch.bfloat16).save_pretrained(tmp_path)  # a bf16 checkpoint, so "auto" has something to read
    model = bert_torch.BertForMaskedLM.from_pretrained(tmp_path, dtype=dtype)
    assert model.dtype == expected
    assert all(p.dtype == expected for p in model.parameters())
    ref = hf.bert.encoder.layer[0].attention.self.query.weight
    assert torch.equal(model.bert.encoder.layer[0].attention.self.query.weight, ref.to(expected))


def test_torch_dtype_is_an_alias_and_conflicts_are_errors(tmp_path):
    hf_model("BertModel").save_pretrained(tmp_path)
    assert bert_torch.BertModel.from_pretrained(tmp_path, torch_dtype=torch.float16).dtype == torch.float16
    with pytest.raises(ConfigError, match="disagree"):
        bert_torch.BertModel.from_pretrained(tmp_path, dtype=torch.float16, torch_dtype=torch.bfloat16)
    with pytest.raises(ConfigError, match="int8"):
        bert_torch.BertModel.from_pretrained(tmp_path, dtype="int8")


@pytest.mark.parametrize("device_map", [None, "cpu", "auto", {"": "cpu"}, torch.device("cpu")])
def test_device_map_places_the_model(device_map, tmp_path):
    hf_model("BertModel").save_pretrained(tmp_path)
    model = bert_torch.BertModel.from_pretrained(tmp_path, device_map=device_map)
    expected = "cuda" if device_map == "auto" and torch.cuda.is_available() else "cpu"
    assert model.device.type == expected and all(p.device.type == expected for p in model.parameters())


def test_device_map_over_several_devices_is_refused(tmp_path):
    hf_model("BertModel").save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="FSDP"):
        bert_torch.BertModel.from_pretrained(tmp_path, device_map={"embeddings": "cpu", "encoder": "cuda:0"})


def test_attn_implementation_argument(tmp_path):
    hf_model("BertModel").save_pretrained(tmp_path)
    assert bert_torch.BertModel.from_pretrained(tmp_path).attn_implementation == "sdpa"
    assert bert_torch.BertModel.from_pretrained(tmp_path, attn_implementation="eager").attn_implementation == "eager"
    with pytest.raises(ConfigError, match="flash"):
        bert_torch.BertModel.from_pretrained(tmp_path, attn_implementation="flash")


def test_config_overrides_do_not_touch_the_callers_config(tmp_path):
    hf_model("BertForSequenceClassification").save_pretrained(tmp_path)
    config = BertConfig.from_pretrained(tmp_path)
    model = bert_torch.BertForSequenceClassification.from_pretrained(tmp_path, config=config, problem_type="regression")
    assert model.config.problem_type == "regression" and config.problem_type is None


# Peak memory of from_pretrained (one copy of the weights, every backend): tests/test_load_memory.py, which
# measures peak RSS including the memory-mapped file's pages, as benchmarks/load_memory.py does.


def test_constructor_arguments_reach_the_model_and_revisions_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "models--acme--tiny-bert"
    old, new = "1" * 40, "2" * 40
    hf_model("BertModel").save_pretrained(repo / "snapshots" / old)
    hf_model("BertModel", num_hidden_layers=1).save_pretrained(repo / "snapshots" / new)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(new)
    model = bert_torch.BertModel.from_pretrained("acme/tiny-bert", cache_dir=tmp_path, revision=old,
                                                 add_pooling_layer=False)
    assert model.pooler is None and len(model.encoder.layer) == 2  # the pinned revision, not refs/main
    assert "add_pooling_layer" not in model.config.to_dict()
    assert len(bert_torch.BertModel.from_pretrained("acme/tiny-bert", cache_dir=tmp_path).encoder.layer) == 1
