"""Loading and saving: canonical safetensors both ways with transformers, key reports, shape errors,
sharding, msgpack, the legacy 4.57.6 files, and an import that pulls in no torch or tensorflow."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import TOL, max_abs_diff, padded_batch, tiny_config_dict

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import bert_flax  # noqa: E402
from bert_core import BertConfig, CheckpointError  # noqa: E402
from bert_core.unpad import padding_read  # noqa: E402
from conversion import open_checkpoint  # noqa: E402

F32 = TOL["float32"]
LEGACY = Path(__file__).parent / "fixtures" / "legacy"


def tiny(**overrides) -> BertConfig:
    return BertConfig(**tiny_config_dict(initializer_range=0.2, **overrides))


def hf_save(cls_name: str, directory, **overrides):
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(transformers.BertConfig(**tiny_config_dict(initializer_range=0.2,
                                                                                       **overrides)))
    model.eval().save_pretrained(directory)
    return model


def torch_call(model, batch):
    with torch.no_grad():
        return model(**{k: torch.tensor(v) for k, v in batch.items()})


@pytest.mark.parametrize("cls_name,field,overrides", [
    ("BertModel", "last_hidden_state", {}),
    ("BertForPreTraining", "prediction_logits", {}),
    ("BertForMaskedLM", "logits", {}),
    ("BertForSequenceClassification", "logits", {"num_labels": 3}),
    ("BertForQuestionAnswering", "start_logits", {}),
])
def test_flax_save_loads_in_transformers_with_the_same_outputs(tmp_path, cls_name, field, overrides):
    flax_cls = getattr(bert_flax, "Flax" + cls_name)
    ours = flax_cls(tiny(**overrides), seed=3)
    ours.save_pretrained(tmp_path)
    theirs, info = getattr(transformers, cls_name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    batch = padded_batch(99, fully_padded_row=False)
    with padding_read():  # every position, masked ones included, as transformers computes them
        got = getattr(ours(**batch), field)
    assert max_abs_diff(got, getattr(torch_call(theirs.eval(), batch), field)) <= F32
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [cls_name]


def test_saved_keys_are_the_transformers_state_dict(tmp_path):
    model = bert_flax.FlaxBertForPreTraining(tiny(), seed=0)
    model.save_pretrained(tmp_path)
    ours = open_checkpoint(tmp_path)
    reference = transformers.BertForPreTraining(transformers.BertConfig(**tiny_config_dict())).state_dict()
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    assert set(ours) == set(reference) - tied
    assert all(tuple(ours.shape(k)) == tuple(reference[k].shape) for k in ours)


def test_report_of_a_base_checkpoint_loaded_into_a_classifier(tmp_path, caplog):
    hf_save("BertModel", tmp_path)  # keys without the `bert.` prefix
    with caplog.at_level(logging.WARNING, logger="bert_flax"):
        model, report = bert_flax.FlaxBertForSequenceClassification.from_pretrained(
            tmp_path, num_labels=3, output_loading_info=True)
    assert sorted(report["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    assert report["unexpected_keys"] == [] and report["mismatched_keys"] == []
    assert "classifier.weight" in caplog.text and "TRAIN this model" in caplog.text
    assert model.params["classifier"]["kernel"].shape == (32, 3)


def test_report_of_a_masked_lm_checkpoint_loaded_into_the_base_model(tmp_path):
    hf_save("BertForMaskedLM", tmp_path)
    model, report = bert_flax.FlaxBertModel.from_pretrained(tmp_path, output_loading_info=True)
    head_keys = [k for k in open_checkpoint(tmp_path) if k.startswith("cls.")]
    assert head_keys and sorted(report["unexpected_keys"]) == sorted(head_keys)
    assert sorted(report["missing_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]
    batch = padded_batch(99)
    theirs = torch_call(transformers.BertModel.from_pretrained(tmp_path).eval(), batch)
    assert max_abs_diff(model(**batch).last_hidden_state, theirs.last_hidden_state, batch["attention_mask"]) <= F32


def test_mlm_checkpoint_reports_the_decoder_as_tied(tmp_path):
    hf_save("BertForMaskedLM", tmp_path)
    _, report = bert_flax.FlaxBertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert report["missing_keys"] == [] and report["unexpected_keys"] == []
    present = set(open_checkpoint(tmp_path))
    assert set(report["tied_keys"]) == {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"} - present


def test_mismatched_shape_names_key_and_both_shapes(tmp_path):
    hf_save("BertForSequenceClassification", tmp_path, num_labels=3)
    with pytest.raises(CheckpointError, match=r"classifier\.weight: checkpoint \(3, 32\) vs model \(5, 32\)"):
        bert_flax.FlaxBertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    model, report = bert_flax.FlaxBertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True)
    assert ("classifier.weight", (3, 32), (5, 32)) in report["mismatched_keys"]
    assert model.params["classifier"]["kernel"].shape == (32, 5)


def test_sharded_save_round_trips(tmp_path):
    model = bert_flax.FlaxBertForMaskedLM(tiny(), seed=0)
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    loaded = bert_flax.FlaxBertForMaskedLM.from_pretrained(tmp_path)
    assert max_abs_diff(loaded.params, model.params) == 0


def test_scan_layers_model_saves_the_canonical_layout(tmp_path):
    model = bert_flax.FlaxBertForMaskedLM(tiny(), seed=0)
    model.enable_scan_layers()
    model.save_pretrained(tmp_path)
    assert "bert.encoder.layer.1.attention.self.query.weight" in open_checkpoint(tmp_path)
    loaded = bert_flax.FlaxBertForMaskedLM.from_pretrained(tmp_path, scan_layers=True)
    assert max_abs_diff(loaded.params, model.params) == 0


def test_msgpack_round_trips(tmp_path):
    model = bert_flax.FlaxBertForQuestionAnswering(tiny(), seed=0)
    model.save_pretrained(tmp_path, format="msgpack")
    assert (tmp_path / "flax_model.msgpack").is_file() and not (tmp_path / "model.safetensors").exists()
    assert max_abs_diff(bert_flax.FlaxBertForQuestionAnswering.from_pretrained(tmp_path).params, model.params) == 0
    assert max_abs_diff(model.from_bytes(model.to_bytes()), model.params) == 0
    with pytest.raises(CheckpointError):
        bert_flax.FlaxBertModel(tiny(), seed=0).from_bytes(model.to_bytes())


@pytest.mark.parametrize("head,cls_name", [("pretraining", "FlaxBertForPreTraining"),
                                           ("sequence_classification", "FlaxBertForSequenceClassification"),
                                           ("question_answering", "FlaxBertForQuestionAnswering")])
@pytest.mark.parametrize("weights", ["flax_model.msgpack", "model.safetensors", "pytorch_model.bin"])
def test_legacy_files_reproduce_transformers_4_flax_outputs(tmp_path, head, cls_name, weights):
    """transformers 4.57.6's own Flax classes computed reference.npz; we load each file format."""
    source = LEGACY / head
    for name in ("config.json", weights):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    reference = np.load(source / "reference.npz")
    batch = {k.split(".", 1)[1]: reference[k] for k in reference.files if k.startswith("input.")}
    with padding_read():  # every position, as transformers 4.x's Flax classes computed them
        out = getattr(bert_flax, cls_name).from_pretrained(tmp_path)(**batch)
    for key in (k for k in reference.files if k.startswith("flax.")):
        field = key.split(".", 1)[1]
        mask = batch["attention_mask"] if reference[key].ndim == 3 else None
        assert max_abs_diff(getattr(out, field), reference[key], mask) <= F32, field


def test_import_pulls_in_no_torch_or_tensorflow():
    code = ("import sys, bert_flax; bad = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
