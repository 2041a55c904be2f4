"""Every backend's ``pipeline()`` gives what `transformers`' pipeline gives on the same weights.

The post-processing is shared (and checked against `transformers` in
test_pipelines_core.py); here each framework's forward pass is put behind it:
scores within 1e-4, identical tokens, labels and spans; sentence embeddings
equal to `sentence-transformers` within 1e-5. Heads the real checkpoint lacks
are added with seeded random weights and saved, so both sides load one file.
"""

from __future__ import annotations

import functools
import importlib
import json
import subprocess
import sys

import numpy as np
import pytest
import transformers

from test_pipelines_core import LABELS, NER_TEXTS, SENTENCES, assert_same
from tribert.parity import head_checkpoint

FRAMEWORKS = ("torch", "tf", "flax")
QA = [{"question": "Who described photosynthesis?", "context": "Photosynthesis was first described by Jan Ingenhousz in 1779. " * 8},
      {"question": "When?", "context": "It happened in Paris in 1889, during the exhibition."}]  # fmt: skip


def backend(framework):
    return importlib.import_module(f"bert_{framework}")


@functools.cache
def cached(framework, task, directory, **options):
    """One pipeline per backend, task and checkpoint for the module: TF and Flax compile once, not per test."""
    return backend(framework).pipeline(task, model=directory, **options)


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
    ours = cached(framework, "fill-mask", heads["masked-lm"], batch_size=3)
    theirs = reference("fill-mask", heads["masked-lm"])
    assert_same(ours(SENTENCES), [theirs(s) for s in SENTENCES])
    assert_same(ours(SENTENCES[1], top_k=2, targets=["paris", "rome"]), theirs(SENTENCES[1], top_k=2, targets=["paris", "rome"]))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sentence_embeddings_equal_sentence_transformers(framework, real_model_dir):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    texts = NER_TEXTS + [SENTENCES[2], "word " * 300]
    ours = cached(framework, "sentence-embeddings", real_model_dir)(texts)
    expected = sentence_transformers.SentenceTransformer(str(real_model_dir), device="cpu").encode(texts)
    assert np.abs(ours - expected).max() <= 1e-5


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_feature_extraction(framework, real_model_dir):
    ours = cached(framework, "feature-extraction", real_model_dir)(NER_TEXTS)
    theirs = reference("feature-extraction", real_model_dir)(NER_TEXTS)
    for mine, ref in zip(ours, theirs):
        assert np.asarray(mine).shape == np.asarray(ref).shape and np.abs(np.asarray(mine) - np.asarray(ref)).max() <= 1e-4


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_text_classification(framework, heads):
    ours = cached(framework, "sentiment-analysis", heads["sequence-classification"])
    theirs = reference("text-classification", heads["sequence-classification"])
    assert_same(ours(NER_TEXTS), theirs(NER_TEXTS))
    assert_same(ours(NER_TEXTS, top_k=None), theirs(NER_TEXTS, top_k=None))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification(framework, strategy, heads):
    ours = cached(framework, "ner", heads["token-classification"])
    theirs = reference("token-classification", heads["token-classification"], aggregation_strategy=strategy)
    expected = theirs(NER_TEXTS)
    assert sum(map(len, expected)) > 3
    assert_same(ours(NER_TEXTS, aggregation_strategy=strategy), expected)


@pytest.mark.parametrize("framework", [f for f in FRAMEWORKS if f != "torch"])
def test_question_answering_equals_torch(framework, heads):
    """`transformers` 5.x has no QA pipeline; the torch pipeline is checked against 4.57.6 in test_pipelines_core."""
    torch_qa = cached("torch", "question-answering", heads["question-answering"])
    ours = cached(framework, "question-answering", heads["question-answering"])
    for options in ({}, {"top_k": 3, "max_answer_len": 5, "doc_stride": 16, "max_seq_len": 48}):
        assert_same(ours(QA, **options), torch_qa(QA, **options))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_tribert_run_fill_mask_from_stdin(framework, heads):
    lines = "Plants create [MASK] through a process known as photosynthesis.\nno mask on this line\nThe capital of France is [MASK].\n"
    proc = subprocess.run(
        [sys.executable, "-m", "tribert", "run", "--task", "fill-mask", "--model", str(heads["masked-lm"]), "--framework", framework],
        input=lines, capture_output=True, text=True, timeout=300,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == 3 and proc.returncode == 1  # one bad line, the stream went on
    assert len(results[0]) == 5 and {"score", "token", "token_str", "sequence"} <= set(results[0][0])
    assert results[1] == {"error": results[1]["error"], "line": 2} and "no [MASK]" in results[1]["error"]
    expected = reference("fill-mask", heads["masked-lm"])("The capital of France is [MASK].")
    assert [r["token"] for r in results[2]] == [r["token"] for r in expected]
    assert "line 2" in proc.stderr


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory, real_model_dir):
    """Tiny random models the real tokenizer does not fit: a 1000-id vocabulary (the tokenizer's words are
    ids >= 999), one token type, 16 positions. Each directory holds the real model's tokenizer files."""
    from bert_core import BertConfig
    from conversion.layout import canonical_shapes
    from conversion.safetensors_io import save_checkpoint
    from harness import tiny_config_dict

    models = {"small-vocab": ("masked-lm", {"vocab_size": 1000}),
              "one-token-type": ("sequence-classification", {"vocab_size": 30522, "type_vocab_size": 1}),
              "short-positions": ("masked-lm", {"vocab_size": 30522, "max_position_embeddings": 16})}
    out = {}
    for name, (head, changes) in models.items():
        directory = tmp_path_factory.mktemp(name)
        config = BertConfig(**tiny_config_dict(**changes))
        rng = np.random.default_rng(0)
        save_checkpoint({k: (rng.standard_normal(s) * 0.2).astype(np.float32) for k, s in canonical_shapes(config, head).items()},
                        directory)  # fmt: skip
        config.save_pretrained(directory)
        for file in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (directory / file).write_bytes((real_model_dir / file).read_bytes())
        out[name] = directory
    return out


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_inputs_the_model_cannot_take_raise_input_error_before_the_forward(framework, mismatched):
    """The engine checks each host batch (bert_core.validate_inputs): never a silent clamp inside a compiled call."""
    from bert_core import InputError

    with pytest.raises(InputError, match=r"input_ids holds \d+, outside \[0, 1000\) \(vocab_size=1000\)"):
        cached(framework, "fill-mask", mismatched["small-vocab"])("The capital of France is [MASK].")
    pair = {"text": "Is it raining?", "text_pair": "The sky is clear today."}  # the second segment is token type 1
    with pytest.raises(InputError, match=r"token_type_ids holds 1, outside \[0, 1\) \(type_vocab_size=1\)"):
        cached(framework, "text-classification", mismatched["one-token-type"])(pair)
    assert set(cached(framework, "text-classification", mismatched["one-token-type"])("Is it raining?")) == {"label", "score"}
    with pytest.raises(InputError, match=r"max_position_embeddings=16"):
        cached(framework, "fill-mask", mismatched["short-positions"])("a rather long sentence " * 5 + "[MASK].")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_tribert_run_reports_an_input_error_per_line_and_goes_on(framework, mismatched):
    import io

    from tribert.run import jsonable, run_lines

    pipe = cached(framework, "fill-mask", mismatched["short-positions"])
    lines = ["Paris is [MASK].", "a rather long sentence " * 5 + "[MASK].", "Rome is [MASK]."]
    out = io.StringIO()
    assert run_lines(pipe, "fill-mask", lines, out) == 1
    first, error, last = map(json.loads, out.getvalue().splitlines())
    assert error["line"] == 2 and "max_position_embeddings=16" in error["error"] and set(error) == {"error", "line"}
    assert first == jsonable(pipe(lines[0])) and last == jsonable(pipe(lines[2]))


def test_tf_pipeline_traces_once_for_a_stream_of_inputs(real_model_dir):
    """The TF forward is one compiled tf.function: inputs of varied lengths and counts reuse its one trace."""
    pipe = backend("tf").pipeline("sentence-embeddings", model=real_model_dir, batch_size=4, jit_compile=False)
    stream = ["short", "a somewhat longer sentence about plants and light", "word " * 20, NER_TEXTS[0], NER_TEXTS[1]]
    one_by_one = np.stack([pipe(text) for text in stream])
    assert np.abs(pipe(stream) - one_by_one).max() <= 1e-5  # rows padded to a power of two change nothing
    assert pipe.compiled.traced_count() == 1
    xla = cached("tf", "sentence-embeddings", real_model_dir)
    assert np.abs(xla(stream) - one_by_one).max() <= 1e-5 and xla.compiled.jit_compile


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_tf_pipeline_dtype_names_and_tf_dtypes(dtype, real_model_dir):
    import tensorflow as tf

    by_dtype = backend("tf").pipeline("sentence-embeddings", model=real_model_dir, dtype=getattr(tf, dtype), jit_compile=False)
    assert by_dtype.compiled.model.compute_dtype == dtype
    low = by_dtype(NER_TEXTS)
    assert low.dtype == np.float32 and np.isfinite(low).all()
    # Normalised embeddings: the low-precision ones stay within the dtype's rounding of float32's.
    reference_embeddings = cached("tf", "sentence-embeddings", real_model_dir)(NER_TEXTS)
    assert 0 < np.abs(low - reference_embeddings).max() <= {"bfloat16": 3e-2, "float16": 5e-3}[dtype]


def test_tf_pipeline_device_places_the_weights(real_model_dir):
    pipe = backend("tf").pipeline("feature-extraction", model=real_model_dir, device="cpu", jit_compile=False)
    assert all("CPU" in w.value.device for w in pipe.compiled.model.weights)
    expected = cached("tf", "feature-extraction", real_model_dir)(NER_TEXTS[0])
    assert np.abs(np.asarray(pipe(NER_TEXTS[0])) - np.asarray(expected)).max() <= 1e-5


def test_tf_pipeline_rejects_an_unknown_dtype_before_loading(tmp_path):
    from bert_core.errors import ConfigError

    with pytest.raises(ConfigError, match="float8"):
        backend("tf").pipeline("fill-mask", model=tmp_path / "missing", dtype="float8")


def test_tf_pipeline_reads_a_converted_keras_directory(real_model_dir, tmp_path):
    """`tribert convert --to keras` output (model.keras + side files) runs in the TF pipeline, as the demo does."""
    from bert_pipelines import PipelineError
    from tribert.convert import convert

    sentence_transformers = pytest.importorskip("sentence_transformers")
    convert(real_model_dir, "keras", tmp_path / "keras", head="base")
    assert not (tmp_path / "keras" / "model.safetensors").exists()
    ours = backend("tf").pipeline("sentence-embeddings", model=tmp_path / "keras", jit_compile=False)(NER_TEXTS)
    expected = sentence_transformers.SentenceTransformer(str(real_model_dir), device="cpu").encode(NER_TEXTS)
    assert np.abs(ours - expected).max() <= 1e-5
    with pytest.raises(PipelineError, match="holds a TFBertModel.*--head masked-lm"):
        backend("tf").pipeline("fill-mask", model=tmp_path / "keras")
