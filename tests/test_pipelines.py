"""Every backend's ``pipeline()`` gives what `transformers`' pipeline gives on the same weights.

The post-processing is shared (and checked against `transformers` in
test_pipelines_core.py); here each framework's forward pass is put behind it:
scores within 1e-4, identical tokens, labels and spans; sentence embeddings
equal to `sentence-transformers` within 1e-5. Heads the real checkpoint lacks
are added with seeded random weights and saved, so both sides load one file.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import numpy as np
import pytest
import transformers

from conversion.parity import head_checkpoint
from test_pipelines_core import LABELS, NER_TEXTS, SENTENCES, assert_same

FRAMEWORKS = ("torch", "flax")
QA = [{"question": "Who described photosynthesis?", "context": "Photosynthesis was first described by Jan Ingenhousz in 1779. " * 8},
      {"question": "When?", "context": "It happened in Paris in 1889, during the exhibition."}]  # fmt: skip


def backend(framework):
    return importlib.import_module(f"bert_{framework}")


@pytest.fixture(scope="module")
def heads(tmp_path_factory, real_model_dir):
    """all-MiniLM-L6-v2 with seeded random heads, one directory per task (tokenizer files alongside)."""
    root = tmp_path_factory.mktemp("pipeline-heads")
    changes = {
        "masked-lm": {},
        "sequence-classification": {"num_labels": 3, "id2label": {0: "negative", 1: "neutral", 2: "positive"}},
        "token-classification": {"num_labels": len(LABELS), "id2label": dict(enumerate(LABELS)), "initializer_range": 0.8},
        "question-answering": {"initializer_range": 0.5},
    }
    out = {}
    for head, config_changes in changes.items():
        head_checkpoint(real_model_dir, head, root / head, **config_changes)
        for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (root / head / name).write_bytes((real_model_dir / name).read_bytes())
        out[head] = root / head
    return out


def reference(task, directory, **kwargs):
    return transformers.pipeline(task, model=str(directory), tokenizer=str(directory), **kwargs)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_fill_mask(framework, heads):
    ours = backend(framework).pipeline("fill-mask", model=heads["masked-lm"], batch_size=3)
    theirs = reference("fill-mask", heads["masked-lm"])
    assert_same(ours(SENTENCES), [theirs(s) for s in SENTENCES])
    assert_same(ours(SENTENCES[1], top_k=2, targets=["paris", "rome"]), theirs(SENTENCES[1], top_k=2, targets=["paris", "rome"]))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sentence_embeddings_equal_sentence_transformers(framework, real_model_dir):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    texts = NER_TEXTS + [SENTENCES[2], "word " * 300]
    ours = backend(framework).pipeline("sentence-embeddings", model=real_model_dir)(texts)
    expected = sentence_transformers.SentenceTransformer(str(real_model_dir), device="cpu").encode(texts)
    assert np.abs(ours - expected).max() <= 1e-5


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_feature_extraction(framework, real_model_dir):
    ours = backend(framework).pipeline("feature-extraction", model=real_model_dir)(NER_TEXTS)
    theirs = reference("feature-extraction", real_model_dir)(NER_TEXTS)
    for mine, ref in zip(ours, theirs):
        assert np.asarray(mine).shape == np.asarray(ref).shape and np.abs(np.asarray(mine) - np.asarray(ref)).max() <= 1e-4


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_text_classification(framework, heads):
    ours = backend(framework).pipeline("sentiment-analysis", model=heads["sequence-classification"])
    theirs = reference("text-classification", heads["sequence-classification"])
    assert_same(ours(NER_TEXTS), theirs(NER_TEXTS))
    assert_same(ours(NER_TEXTS, top_k=None), theirs(NER_TEXTS, top_k=None))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification(framework, strategy, heads):
    ours = backend(framework).pipeline("ner", model=heads["token-classification"])
    theirs = reference("token-classification", heads["token-classification"], aggregation_strategy=strategy)
    expected = theirs(NER_TEXTS)
    assert sum(map(len, expected)) > 3
    assert_same(ours(NER_TEXTS, aggregation_strategy=strategy), expected)


@pytest.mark.parametrize("framework", [f for f in FRAMEWORKS if f != "torch"])
def test_question_answering_equals_torch(framework, heads):
    """`transformers` 5.x has no QA pipeline; the torch pipeline is checked against 4.57.6 in test_pipelines_core."""
    torch_qa = backend("torch").pipeline("question-answering", model=heads["question-answering"])
    ours = backend(framework).pipeline("question-answering", model=heads["question-answering"])
    for options in ({}, {"top_k": 3, "max_answer_len": 5, "doc_stride": 16, "max_seq_len": 48}):
        assert_same(ours(QA, **options), torch_qa(QA, **options))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_tribert_run_fill_mask_from_stdin(framework, heads):
    lines = "Plants create [MASK] through a process known as photosynthesis.\nno mask on this line\nThe capital of France is [MASK].\n"
    proc = subprocess.run(
        [sys.executable, "-m", "conversion.cli", "run", "--task", "fill-mask", "--model", str(heads["masked-lm"]), "--framework", framework],
        input=lines, capture_output=True, text=True, timeout=300,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == 3 and proc.returncode == 1  # one bad line, the stream went on
    assert len(results[0]) == 5 and {"score", "token", "token_str", "sequence"} <= set(results[0][0])
    assert results[1] == {"error": results[1]["error"], "line": 2} and "no [MASK]" in results[1]["error"]
    expected = reference("fill-mask", heads["masked-lm"])("The capital of France is [MASK].")
    assert [r["token"] for r in results[2]] == [r["token"] for r in expected]
    assert "line 2" in proc.stderr
