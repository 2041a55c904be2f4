"""`tribert convert`: every format to every neutral format, bit-exact, atomic, with clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import transformers

from bert_core import BertConfig, CheckpointError, ConfigError
from conversion import SafetensorsFile
from conversion.convert import MANIFEST_NAME
from conversion.layout import canonical_shapes
from tribert.convert import convert
from harness import LEGACY_FIXTURES as FIXTURES
from harness import LEGACY_HEADS as HEADS
from harness import assert_same_tensors, legacy_twin, tiny_config_dict

SOURCES = ["model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"]


@pytest.mark.parametrize("head_dir", HEADS)
@pytest.mark.parametrize("source", SOURCES)
def test_every_format_converts_to_the_pytorch_twin(tmp_path, head_dir, source):
    result = convert(FIXTURES / head_dir / source, "safetensors", tmp_path / "out")
    assert result.head == HEADS[head_dir]
    assert not result.report.missing_keys and not result.report.unexpected_keys
    assert_same_tensors(dict(SafetensorsFile(tmp_path / "out" / "model.safetensors")), legacy_twin(head_dir))
    assert (tmp_path / "out" / "config.json").is_file()


@pytest.mark.parametrize("target, filename", [("flax", "flax_model.msgpack"), ("torch", "pytorch_model.bin"),
                                              ("safetensors", "model.safetensors")])
def test_safetensors_to_any_and_back_is_bit_exact_with_equal_manifests(tmp_path, target, filename):
    first = convert(FIXTURES / "pretraining", "safetensors", tmp_path / "a")
    middle = convert(tmp_path / "a", target, tmp_path / "b")
    assert (tmp_path / "b" / filename).is_file()
    last = convert(tmp_path / "b" / filename, "safetensors", tmp_path / "c")
    assert_same_tensors(dict(SafetensorsFile(tmp_path / "c" / "model.safetensors")), legacy_twin("pretraining"))
    assert first.manifest["tensors"] == middle.manifest["tensors"] == last.manifest["tensors"]
    assert first.manifest["config_sha256"] == last.manifest["config_sha256"]


def test_google_tf1_prefix_converts_like_transformers(tmp_path):
    result = convert(FIXTURES / "google_tf1" / "bert_model.ckpt", "safetensors", tmp_path / "out")
    assert result.head == "pretraining"
    assert_same_tensors(dict(SafetensorsFile(tmp_path / "out" / "model.safetensors")),
                      dict(SafetensorsFile(FIXTURES / "google_tf1" / "expected.safetensors")))


def test_real_checkpoint_keeps_tokenizer_files_and_loads_in_transformers(tmp_path, real_model_dir):
    result = convert(real_model_dir, "safetensors", tmp_path / "out", dtype="float16")
    assert result.report.ignored_keys == ["embeddings.position_ids"]
    for name in ("vocab.txt", "tokenizer.json", "modules.json", "1_Pooling/config.json"):
        assert (tmp_path / "out" / name).read_bytes() == (real_model_dir / name).read_bytes()
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert all(e["dtype"] == "float16" for e in manifest["tensors"].values())
    model = transformers.BertModel.from_pretrained(tmp_path / "out")
    assert model.dtype.__str__() == "torch.float16"


def test_layout_equals_transformers_state_dict_for_every_head():
    config = dict(tiny_config_dict(), is_decoder=True, add_cross_attention=True, num_labels=3)
    for head, cls in [("base", "BertModel"), ("pretraining", "BertForPreTraining"), ("causal-lm", "BertLMHeadModel"),
                      ("masked-lm", "BertForMaskedLM"), ("next-sentence", "BertForNextSentencePrediction"),
                      ("sequence-classification", "BertForSequenceClassification"),
                      ("multiple-choice", "BertForMultipleChoice"),
                      ("token-classification", "BertForTokenClassification"),
                      ("question-answering", "BertForQuestionAnswering")]:
        ref = getattr(transformers, cls)(transformers.BertConfig(**config)).state_dict()
        ours = canonical_shapes(BertConfig(**config), head)
        assert ours == {k: tuple(v.shape) for k, v in ref.items()}, head


def test_unused_head_weights_are_never_dropped_silently(tmp_path):
    with pytest.raises(CheckpointError, match=r"4 tensor\(s\) the 'masked-lm' head does not use.*pooler.*seq_relationship"):
        convert(FIXTURES / "pretraining", "safetensors", tmp_path / "out", head="masked-lm")
    assert not (tmp_path / "out").exists()
    result = convert(FIXTURES / "pretraining", "safetensors", tmp_path / "out", head="masked-lm", drop_unused=True)
    # BertForMaskedLM has no pooler and no NSP head, exactly as in transformers.
    assert sorted(result.report.unexpected_keys) == ["bert.pooler.dense.bias", "bert.pooler.dense.weight",
                                                     "cls.seq_relationship.bias", "cls.seq_relationship.weight"]


def test_conversion_alone_writes_no_backend_target(tmp_path):
    """The TF targets are bert_tf's (tribert.convert looks them up); conversion never reaches up for them."""
    from conversion.convert import convert as core_convert

    with pytest.raises(ConfigError, match=r"--to 'keras' is not supported here.*tribert.convert"):
        core_convert(FIXTURES / "pretraining", "keras", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _cli(*args):
    exe = Path(sys.executable).parent / "tribert"
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=300)


def _corrupt(tmp_path, kind):
    src = tmp_path / "src"
    shutil.copytree(FIXTURES / "sequence_classification", src)
    for name in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"):
        (src / name).unlink()
    weights = src / "model.safetensors"
    if kind == "truncated":
        weights.write_bytes(weights.read_bytes()[:-100])
        return src, "is truncated: tensor"
    if kind == "pickle":
        shutil.copy(FIXTURES / "sequence_classification" / "pytorch_model.bin", weights)
        return src, "not a valid safetensors file"
    if kind == "config-mismatch":
        config = json.loads((src / "config.json").read_text()) | {"hidden_size": 64}
        (src / "config.json").write_text(json.dumps(config))
        return src, "checkpoint (99, 32) vs model (99, 64)"
    if kind == "unknown-format":
        weird = tmp_path / "weights.onnx"
        weird.write_bytes(b"x")
        return weird, "cannot tell the format"
    if kind == "missing-config":
        (src / "config.json").unlink()
        return src, "no config.json or bert_config.json"
    if kind == "missing":
        return tmp_path / "nowhere" / "model", "neither an existing directory nor a valid hub repo id"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated", "pickle", "config-mismatch", "unknown-format", "missing-config",
                                  "missing"])
def test_bad_input_one_line_nonzero_nothing_written(tmp_path, kind):
    src, fragment = _corrupt(tmp_path, kind)
    out = tmp_path / "out"
    result = _cli("convert", src, "--to", "safetensors", "--out", out)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("tribert")]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_verbose_shows_the_traceback(tmp_path):
    src, _ = _corrupt(tmp_path, "truncated")
    result = _cli("--verbose", "convert", src, "--to", "safetensors", "--out", tmp_path / "out")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="already exists"):
        convert(FIXTURES / "pretraining", "safetensors", out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(CheckpointError, match="not a tribert output"):  # --overwrite replaces only a tribert output
        convert(FIXTURES / "pretraining", "safetensors", out, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    convert(FIXTURES / "pretraining", "safetensors", out, overwrite=True, force=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
