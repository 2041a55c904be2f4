"""Packed sequences (bert_core.packing) compute what the padded batch computes, in every backend.

Claims:
- first-fit decreasing places every sequence once, without overlap, and unpacking
  returns exactly what was packed;
- a packed batch (block-diagonal 3-D ``attention_mask``, per-sequence ``position_ids``)
  gives, at every real token, what `transformers` gives on the padded batch, within
  float32 parity (1e-5), in torch, TF and Flax, for the encoder and the per-token heads;
- pipelines give the same results with and without packing;
- a packing Flax pipeline compiles a handful of shapes, then none.
"""

from __future__ import annotations

import functools
import importlib
import json
import shutil

import numpy as np
import pytest
import torch
import transformers

from bert_core import BertConfig, get_head
from bert_core.packing import PackingError, block_diagonal_mask, pack_sequences, plan_packing
from harness import TOL, max_abs_diff, tiny_config_dict
from test_pipelines_core import LABELS, NER_TEXTS, SENTENCES, assert_same

FRAMEWORKS = ("torch", "tf", "flax")
# Weights ~N(0, 0.2): at the harness's 0.5 TF's *padded* path is already 1.03e-5 from transformers on
# these inputs (packing adds 0.0 there), which would test TF parity, not packing.
INIT_RANGE = 0.2
LENGTHS = [5, 16, 3, 12, 7, 1, 9, 4, 11, 2]


# --- packing itself -------------------------------------------------------------------------------


def random_sequences(lengths, seed=0, vocab=99):
    rng = np.random.default_rng(seed)
    return [{"input_ids": rng.integers(1, vocab, n).tolist(), "token_type_ids": (np.arange(n) >= n // 2).astype(int).tolist()}
            for n in lengths]  # fmt: skip


@pytest.mark.parametrize("seed", range(5))
def test_first_fit_decreasing_places_every_sequence_once(seed):
    lengths = np.random.default_rng(seed).integers(1, 33, size=40)
    plan = plan_packing(lengths, 32)
    occupied = np.zeros((plan.num_rows, 32), dtype=int)
    for r, o, n in zip(plan.row, plan.offset, plan.length):
        occupied[r, o : o + n] += 1
    assert occupied.max() == 1 and occupied.sum() == lengths.sum()
    # First-fit decreasing never needs more than 11/9 OPT + 1 rows; OPT >= total / row_length.
    assert plan.num_rows <= 11 / 9 * np.ceil(lengths.sum() / 32) + 1


def test_pack_then_unpack_round_trips():
    sequences = random_sequences(LENGTHS)
    batch, packing = pack_sequences(sequences, 16, pad_token_id=0)
    assert batch["input_ids"].shape == (packing.num_rows, 16) and batch["attention_mask"].shape == (packing.num_rows, 16, 16)
    for key in ("input_ids", "token_type_ids"):
        assert [p.tolist() for p in packing.unpack(batch[key])] == [s[key] for s in sequences]
    assert [p.tolist() for p in packing.unpack(batch["position_ids"])] == [list(range(n)) for n in LENGTHS]
    flat = batch["input_ids"].reshape(-1)
    assert all(flat[packing.token_index(i)].tolist() == s["input_ids"] for i, s in enumerate(sequences))
    assert np.all(batch["input_ids"][batch["segment_ids"] == 0] == 0)


def test_mask_is_block_diagonal():
    batch, packing = pack_sequences(random_sequences(LENGTHS), 16)
    segments = batch["segment_ids"]
    for r in range(packing.num_rows):
        for q in range(16):
            for k in range(16):
                expected = segments[r, q] > 0 and segments[r, q] == segments[r, k]
                assert batch["attention_mask"][r, q, k] == expected
    assert block_diagonal_mask(np.array([[1, 1, 2, 0]])).tolist() == [[[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]]


def test_select_rows_and_padding_rows():
    plan = plan_packing(LENGTHS, 16)
    seen = []
    for start in range(0, plan.num_rows, 2):
        indices, part = plan.select_rows(start, min(start + 2, plan.num_rows), num_rows=2)
        assert part.num_rows == 2 and set(part.row.tolist()) <= {0, 1}
        seen += indices.tolist()
    assert sorted(seen) == list(range(len(LENGTHS)))
    assert plan_packing([3, 3], 8, num_rows=4).num_rows == 4


def test_errors_name_the_sequence_and_shapes():
    with pytest.raises(PackingError, match="sequence 1 has 20 tokens"):
        plan_packing([3, 20], 16)
    with pytest.raises(PackingError, match="num_rows=1 is too few"):
        plan_packing([10, 10], 16, num_rows=1)
    _, packing = pack_sequences(random_sequences([3, 4]), 8)
    with pytest.raises(PackingError, match=r"expects \(1, 8, ...\)"):
        packing.unpack(np.zeros((2, 8)))


# --- packed == padded in every backend ------------------------------------------------------------


def to_framework(framework, batch):
    if framework in ("torch", "hf"):
        return {k: torch.from_numpy(v) for k, v in batch.items()}
    if framework == "tf":
        import tensorflow as tf

        return {k: tf.constant(v) for k, v in batch.items()}
    import jax.numpy as jnp

    return {k: jnp.asarray(v) for k, v in batch.items()}


def run(framework, model, batch, fields):
    kwargs = {"training": False} if framework == "tf" else {}
    with torch.no_grad():
        out = model(**to_framework(framework, batch), **kwargs)
    return {f: np.asarray(out[f].detach() if framework in ("torch", "hf") else out[f], dtype=np.float64) for f in fields}


@functools.cache
def tiny_checkpoint(root, head, position_embedding_type="absolute"):
    """A tiny random checkpoint of ``head`` written once (by bert_torch), read by every backend and transformers."""
    config = BertConfig(**tiny_config_dict(num_labels=2 if head == "question-answering" else 3, position_embedding_type=position_embedding_type, initializer_range=INIT_RANGE))
    torch.manual_seed(0)
    directory = root / f"{head}-{position_embedding_type}"
    getattr(importlib.import_module("bert_torch"), get_head(head).class_name)(config).save_pretrained(directory)
    return directory


def padded(sequences):
    seq = max(len(s["input_ids"]) for s in sequences)
    batch = {k: np.zeros((len(sequences), seq), dtype=np.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
    for i, s in enumerate(sequences):
        n = len(s["input_ids"])
        batch["input_ids"][i, :n], batch["token_type_ids"][i, :n], batch["attention_mask"][i, :n] = s["input_ids"], s["token_type_ids"], 1
    return batch


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("head, position_embedding_type", [
    ("base", "absolute"), ("base", "relative_key_query"), ("masked-lm", "absolute"),
    ("token-classification", "absolute"), ("question-answering", "absolute"),
])  # fmt: skip
def test_packed_equals_padded_transformers(framework, head, position_embedding_type, tmp_path_factory):
    """Packed == transformers' padded batch; relative positions (gone from transformers 5.x) == our padded path."""
    directory = tiny_checkpoint(tmp_path_factory.getbasetemp(), head, position_embedding_type)
    cls = get_head(head)
    fields = [f for f in cls.logits if f != "pooler_output"]
    sequences = random_sequences(LENGTHS)
    batch = padded(sequences)
    backend = importlib.import_module(f"bert_{framework}")
    model = getattr(backend, cls.class_name).from_pretrained(directory)
    if framework == "torch":
        model.eval().set_unpadding(True)  # a 3-D mask must bypass the 2-D unpadding path
    references = [run(framework, model, batch, fields)]
    if position_embedding_type == "absolute":
        hf = getattr(transformers, cls.class_name).from_pretrained(directory, attn_implementation="eager").eval()
        references.append(run("hf", hf, batch, fields))

    inputs, packing = pack_sequences(sequences, 16)
    del inputs["segment_ids"]
    assert packing.num_rows < len(sequences)  # several sequences share a row
    packed = run(framework, model, inputs, fields)
    for field in fields:
        for i, piece in enumerate(packing.unpack(packed[field])):
            for reference in references:
                assert max_abs_diff(piece, reference[field][i, : LENGTHS[i]]) <= TOL["float32"], (field, i)


# --- pipelines with and without packing -----------------------------------------------------------

TEXTS = NER_TEXTS + SENTENCES[1:3] + ["word " * 150, "a", "The quick brown fox jumps over the lazy dog. " * 6]
POOLINGS = {"mean": {"pooling_mode_mean_tokens": True}, "cls": {"pooling_mode_cls_token": True},
            "max": {"pooling_mode_max_tokens": True}}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_pipeline_dirs(tmp_path_factory, real_model_dir):
    """Tiny random checkpoints with the real tokenizer (vocabulary 30522), one per task head, and three poolings."""
    root = tmp_path_factory.mktemp("packing-pipelines")
    config = dict(tiny_config_dict(), vocab_size=30522, max_position_embeddings=512, num_labels=len(LABELS),
                  id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})  # fmt: skip
    out = {}
    import bert_torch

    for head in ("base", "masked-lm", "token-classification", "question-answering"):
        torch.manual_seed(0)
        labels = {"num_labels": 2, "id2label": {0: "start", 1: "end"}, "label2id": {"start": 0, "end": 1}}
        head_config = BertConfig(**{**config, **(labels if head == "question-answering" else {})})
        getattr(bert_torch, get_head(head).class_name)(head_config).save_pretrained(root / head)
        for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(real_model_dir / name, root / head / name)
        out[head] = root / head
    for mode, flags in POOLINGS.items():
        shutil.copytree(root / "base", root / f"st-{mode}")
        (root / f"st-{mode}" / "1_Pooling").mkdir()
        (root / f"st-{mode}" / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **flags}))
        (root / f"st-{mode}" / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))  # fmt: skip
        out[f"st-{mode}"] = root / f"st-{mode}"
    return out


CASES = [
    ("feature-extraction", "base", TEXTS, {}),
    ("sentence-embeddings", "st-mean", TEXTS, {}),
    ("sentence-embeddings", "st-cls", TEXTS, {}),
    ("sentence-embeddings", "st-max", TEXTS, {}),
    ("fill-mask", "masked-lm", SENTENCES, {"top_k": 3}),
    ("token-classification", "token-classification", NER_TEXTS, {"aggregation_strategy": "simple"}),
    ("question-answering", "question-answering",
     [{"question": "Who?", "context": "Jan Ingenhousz described it in 1779. " * 30}, {"question": "Where?", "context": "In Paris."}], {}),
]  # fmt: skip


def compare(mine, theirs):
    if isinstance(theirs, np.ndarray):
        assert mine.shape == theirs.shape and np.abs(mine - theirs).max() <= TOL["float32"]
    else:
        assert_same(mine, theirs, tol=TOL["float32"])


@functools.cache
def backend_pipeline(framework, task, directory):
    """Each backend's own ``pipeline()``, built once per task and checkpoint (TF and Flax compile once)."""
    return importlib.import_module(f"bert_{framework}").pipeline(task, model=directory, batch_size=4)


# Pooling is framework-neutral post-processing: cls and max run in Flax (which packs by default) only.
GRID = [(framework, *case) for case in CASES for framework in FRAMEWORKS if case[1] in ("st-mean",) or
        not case[1].startswith("st-") or framework == "flax"]  # fmt: skip


@pytest.mark.parametrize("framework, task, head, inputs, options", GRID, ids=[f"{g[0]}-{g[1]}-{g[2]}" for g in GRID])
def test_pipeline_results_equal_with_and_without_packing(framework, task, head, inputs, options, tiny_pipeline_dirs):
    pipe = backend_pipeline(framework, task, tiny_pipeline_dirs[head])
    forward, shapes = pipe.forward, []

    def recording(batch):
        shapes.append(batch["attention_mask"].shape)
        return forward(batch)

    pipe.forward = recording
    try:
        pipe.pack = True
        packed = pipe(inputs, **options)
        assert shapes and all(len(shape) == 3 for shape in shapes)  # the packed path ran
        packed_rows, shapes[:] = sum(shape[0] for shape in shapes), []
        pipe.pack = False
        plain = pipe(inputs, **options)
        assert shapes and all(len(shape) == 2 for shape in shapes)
        assert packed_rows <= sum(shape[0] for shape in shapes)
    finally:
        pipe.forward = forward
    compare(packed, plain)


@pytest.mark.parametrize("framework", ["tf", "flax"])
def test_compiled_backends_pack_by_default(framework, tiny_pipeline_dirs):
    backend = importlib.import_module(f"bert_{framework}")
    assert backend.pipeline("feature-extraction", model=tiny_pipeline_dirs["base"]).pack
    assert not backend.pipeline("feature-extraction", model=tiny_pipeline_dirs["base"], pack=False).pack


def varied_calls():
    rng = np.random.default_rng(0)
    return [[" ".join(["word"] * int(n)) for n in rng.integers(1, 100, size=size)] for size in (1, 2, 3, 5, 8, 13, 21, 40)]


def test_tf_packing_traces_once(tiny_pipeline_dirs):
    """However varied the calls, the packed TF pipeline traces one graph (the 3-D mask signature)."""
    import bert_tf

    pipe = bert_tf.pipeline("feature-extraction", model=tiny_pipeline_dirs["base"], batch_size=8)
    for texts in varied_calls():
        pipe(texts)
    assert pipe.compiled.traced_count() == 1


def test_flax_packing_compiles_few_shapes(tiny_pipeline_dirs):
    """Calls of 1..40 inputs of varied lengths compile a handful of (rows, length) shapes; repeats compile none."""
    import bert_flax
    from bert_flax._apply import compiled_apply

    pipe = bert_flax.pipeline("feature-extraction", model=tiny_pipeline_dirs["base"], batch_size=8)
    calls = varied_calls()
    before = compiled_apply._cache_size()
    for texts in calls:
        pipe(texts)
    compiled = compiled_apply._cache_size() - before
    # Row lengths 16..128 for small calls, 128 for larger ones; row counts 1, 2, 4, 8.
    assert compiled <= 8, compiled
    for texts in calls:
        pipe(texts)
    assert compiled_apply._cache_size() - before == compiled
