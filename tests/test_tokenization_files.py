"""Tokenizer files, tensors and errors: what users rely on beyond the ids."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import transformers

from bert_core import TokenizerError
from harness import make_hub_cache
from tokenization import AutoTokenizer, BatchEncoding, BertTokenizer, BertTokenizerFast
from tokenizer_corpus import CORPUS, PAIRS

TEXTS = CORPUS[:12] + [p[0] for p in PAIRS]
CLASSES = {"slow": BertTokenizer, "fast": BertTokenizerFast}
REFERENCES = {"slow": transformers.BertTokenizerLegacy, "fast": transformers.BertTokenizer}


def _ids(tokenizer, texts=TEXTS):
    return [tokenizer(t, verbose=False)["input_ids"] for t in texts]


@pytest.mark.parametrize("engine", CLASSES)
def test_save_then_transformers_loads_the_same_tokenizer(engine, real_model_dir, tmp_path):
    ours = CLASSES[engine].from_pretrained(real_model_dir)
    ours.add_tokens(["newword"])
    ours.add_special_tokens({"additional_special_tokens": ["<ent>"]})
    saved = ours.save_pretrained(tmp_path)
    assert {p.split("/")[-1] for p in saved} >= {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}
    theirs = REFERENCES[engine].from_pretrained(tmp_path)
    texts = TEXTS + ["a newword <ent> here"]
    assert _ids(ours, texts) == _ids(theirs, texts)
    assert theirs.model_max_length == ours.model_max_length == 512
    again = CLASSES[engine].from_pretrained(tmp_path)
    assert _ids(again, texts) == _ids(ours, texts) and again.get_vocab() == ours.get_vocab()


@pytest.mark.parametrize("engine", CLASSES)
def test_load_what_transformers_saved(engine, real_model_dir, tmp_path):
    theirs = REFERENCES[engine].from_pretrained(real_model_dir, do_lower_case=True)
    theirs.add_tokens(["newword"])
    theirs.save_pretrained(tmp_path)
    ours = CLASSES[engine].from_pretrained(tmp_path)
    texts = TEXTS + ["newword inside"]
    assert _ids(ours, texts) == _ids(theirs, texts)


def test_fast_from_vocab_equals_fast_from_tokenizer_json(real_model_dir, tmp_path):
    shutil.copy(real_model_dir / "vocab.txt", tmp_path / "vocab.txt")
    from_json = BertTokenizerFast.from_pretrained(real_model_dir / "tokenizer.json")
    from_vocab = BertTokenizerFast.from_pretrained(tmp_path)
    assert _ids(from_json, CORPUS) == _ids(from_vocab, CORPUS)
    # tokenizer.json's own fixed padding/truncation (128) must not leak into calls
    assert len(from_json("word " * 200, verbose=False)["input_ids"]) == 202


def test_auto_tokenizer_picks_fast_and_reads_the_hub_cache(real_model_dir, tmp_path):
    files = {n: real_model_dir / n for n in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")}
    make_hub_cache(tmp_path, "sentence-transformers/all-MiniLM-L6-v2", files)
    fast = AutoTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2", cache_dir=tmp_path, local_files_only=True)
    slow = AutoTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2", cache_dir=tmp_path, use_fast=False)
    assert isinstance(fast, BertTokenizerFast) and isinstance(slow, BertTokenizer)
    assert _ids(fast) == _ids(slow) == _ids(transformers.AutoTokenizer.from_pretrained(real_model_dir))


@pytest.mark.parametrize("engine", CLASSES)
@pytest.mark.parametrize("framework", ["np", "pt", "tf", "jax"])
def test_return_tensors(engine, framework, real_model_dir):
    tokenizer = CLASSES[engine].from_pretrained(real_model_dir)
    expected = transformers.BertTokenizer.from_pretrained(real_model_dir)(TEXTS[:4], padding=True, return_tensors="np")
    batch = tokenizer(TEXTS[:4], padding=True, return_tensors=framework)
    assert isinstance(batch, BatchEncoding)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        value = np.asarray(batch[key])
        assert value.shape == expected[key].shape and value.dtype == np.int64 or framework == "jax"
        np.testing.assert_array_equal(value, expected[key])
    single = tokenizer(TEXTS[0], return_tensors=framework)
    assert tuple(single["input_ids"].shape) == (1, len(expected["input_ids"][0][expected["attention_mask"][0] == 1]))


def test_batch_encoding_attribute_access_and_to_device(real_model_dir):
    torch = pytest.importorskip("torch")
    batch = BertTokenizerFast.from_pretrained(real_model_dir)(TEXTS[:2], padding=True, return_tensors="pt")
    assert batch.input_ids is batch["input_ids"]
    moved = batch.to("cpu")
    assert moved is batch and batch.input_ids.device == torch.device("cpu")
    with pytest.raises(AttributeError, match="no field 'labels'"):
        batch.labels
    with pytest.raises(TokenizerError, match="device"):
        batch.to(3.5)


def test_ragged_tensors_ask_for_padding(real_model_dir):
    with pytest.raises(TokenizerError, match="padding=True"):
        BertTokenizer.from_pretrained(real_model_dir)(TEXTS[:3], return_tensors="np")


@pytest.mark.parametrize("engine", CLASSES)
def test_long_input_warns_like_transformers(engine, real_model_dir, caplog):
    tokenizer = CLASSES[engine].from_pretrained(real_model_dir)
    with caplog.at_level(logging.WARNING, logger="tokenization"):
        tokenizer("word " * 600)
    assert "Token indices sequence length is longer than the specified maximum sequence length for this model (602 > 512)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tokenization"):
        assert len(tokenizer("word " * 600, truncation=True)["input_ids"]) == 512
    assert "longer than" not in caplog.text


@pytest.mark.parametrize("engine", CLASSES)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(padding="maximum"), "padding must be"),
        (dict(truncation="only_third"), "truncation must be"),
        (dict(max_length=-3), "max_length must be a positive int"),
        (dict(return_tensors="torch"), "return_tensors must be one of"),
        (dict(padding_side="middle"), "padding_side"),
        (dict(padding=True, truncation=True, max_length=10, pad_to_multiple_of=8), "not a multiple of pad_to_multiple_of"),
    ],
)
def test_bad_arguments_name_the_argument(engine, real_model_dir, kwargs, message):
    with pytest.raises(TokenizerError, match=message):
        CLASSES[engine].from_pretrained(real_model_dir)("some text", **kwargs)


@pytest.mark.parametrize("engine", CLASSES)
@pytest.mark.parametrize("text, message", [(42, "text must be"), ([1, 2], r"text\[0\] must be a string"), (["a", None], r"text\[1\]")])
def test_bad_text_types_name_the_argument(engine, real_model_dir, text, message):
    with pytest.raises(TokenizerError, match=message):
        CLASSES[engine].from_pretrained(real_model_dir)(text)


@pytest.mark.parametrize("engine", CLASSES)
def test_missing_and_corrupt_files_are_named(engine, tmp_path, real_model_dir):
    with pytest.raises(TokenizerError, match="no vocab.txt or tokenizer.json"):
        CLASSES[engine].from_pretrained(tmp_path)
    shutil.copy(real_model_dir / "vocab.txt", tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="tokenizer_config.json is not valid JSON"):
        CLASSES[engine].from_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("[1, 2]")
    with pytest.raises(TokenizerError, match="tokenizer_config.json must hold a JSON object"):
        CLASSES[engine].from_pretrained(tmp_path)
    with pytest.raises(TokenizerError, match="vocabulary file .*nope.txt does not exist"):
        CLASSES[engine](tmp_path / "nope.txt")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(TokenizerError, match="bad.txt is not UTF-8"):
        CLASSES[engine](tmp_path / "bad.txt")


def test_corrupt_tokenizer_json_is_named(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "Nope"}}))
    with pytest.raises(TokenizerError, match="tokenizer.json is not a valid tokenizer.json"):
        BertTokenizerFast.from_pretrained(tmp_path)


def test_save_overwrites_atomically(real_model_dir, tmp_path):
    tokenizer = BertTokenizerFast.from_pretrained(real_model_dir)
    tokenizer.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(TokenizerError, match="is a file"):
        tokenizer.save_pretrained(tmp_path / "vocab.txt")


def test_core_packages_import_no_framework():
    code = (
        "import sys, bert_core, tokenization, conversion, bert_pipelines, tribert.cli\n"
        "heavy = sorted(m for m in ('torch', 'tensorflow', 'jax', 'flax', 'keras') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
