"""A SavedModel from ``export_savedmodel`` serves raw strings with the numbers of the Python path.

Claim: a fresh process that only does ``import tensorflow_text`` and
``tf.saved_model.load`` (no tribert package) gets, from the
``serving_default`` / ``serving_pairs`` signatures on raw strings, the outputs
of ``tokenization.BertTokenizerFast`` + the ``bert_tf`` model within 1e-5
(float32), for the real all-MiniLM-L6-v2 encoder and a question-answering head,
at any batch size. Writing is atomic and refuses to clobber.

The core-op SavedModel (``tribert convert --to savedmodel --tokenizer-ops core``)
holds only the core TensorFlow op types listed in ``CORE_OPS``, each registered
in a fresh process where ``import tensorflow_text`` raises ImportError (the
tensorflow-text export is shown to fail that check), and there it serves the
whole tokenizer corpus and its pairs as ``BertTokenizerFast`` + the model do.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bert_tf
import tensorflow as tf
from bert_core.errors import ConfigError
from bert_tf import TFBertTokenizer, export_savedmodel
from harness import TOL, max_abs_diff, tiny_config_dict
from tokenization import BertTokenizerFast
from tokenizer_corpus import CORPUS, PAIRS
from tribert.cli import main

TEXTS = CORPUS[:12] + ["The capital of France is [MASK].", "中文和English混合text", "x" * 300 + " short"]

# Runs in a fresh interpreter: nothing of tribert is imported, only TensorFlow and its text ops.
_SERVE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer's ops
    jobs = json.loads(sys.argv[1])
    results = {}
    for name, job in jobs.items():
        served = tf.saved_model.load(job["path"])
        signature = served.signatures[job["signature"]]
        for batch in (1, len(job["inputs"][0])):
            outputs = signature(**{k: tf.constant(np.asarray(v[:batch])) for k, v in zip(job["names"], job["inputs"])})
            results.update({f"{name}/{batch}/{k}": v.numpy() for k, v in outputs.items()})
    results["modules"] = np.array(sorted(m for m in sys.modules if m.split(".")[0] in ("bert_tf", "bert_core", "tokenization", "conversion", "torch")))
    np.savez(sys.argv[2], **results)
""")


#: Every op type of the core-op SavedModel (graph and function library): core TensorFlow, no tensorflow-text.
CORE_OPS = frozenset("""
    AddV2 All Any ArgMax Assert AssignVariableOp BatchMatMulV2 BiasAdd BroadcastTo Cast ConcatV2 Const Cumsum DenseBincount
    DisableCopyOnRead Einsum EnsureShape Equal Erf ExpandDims Fill FloorDiv FloorMod GatherNd GatherV2 Greater
    GreaterEqual Identity If Less LessEqual LogicalAnd LogicalNot LogicalOr LowerBound MatMul Max Maximum Mean
    MergeV2Checkpoints Minimum Mul NoOp OnesLike Pack Placeholder Prod RaggedGather RaggedRange RaggedTensorToTensor
    Range ReadVariableOp RealDiv Reshape RestoreV2 Rsqrt SaveV2 ScatterNd Select SelectV2 Shape ShardedFilename
    Size Softmax Square Squeeze StatefulPartitionedCall StatelessIf StatelessWhile StaticRegexFullMatch
    StaticRegexReplace StopGradient StridedSlice StringJoin StringLength StringLower StringSplitV2
    StringToHashBucketFast Sub Substr Sum Tanh TensorScatterUpdate Tile Transpose UnicodeDecode
    UnicodeDecodeWithOffsets UnicodeEncode UnsortedSegmentSum VarHandleOp VarIsInitializedOp Where ZerosLike
""".split())

# Runs in a fresh interpreter where tensorflow_text cannot be imported: lists each SavedModel's op types with
# the ones this TensorFlow has not registered, then serves the first one on raw strings.
_SERVE_CORE = textwrap.dedent("""
    import json, sys

    class NoTensorflowText:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "tensorflow_text":
                raise ImportError("tensorflow_text is blocked in this process")

    sys.meta_path.insert(0, NoTensorflowText())
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry
    try:
        import tensorflow_text  # noqa: F401
        blocked = False
    except ImportError:
        blocked = True
    paths, texts, firsts, seconds, out = json.loads(sys.argv[1])
    results = {"blocked": np.array(blocked)}
    for i, path in enumerate(paths):
        saved = saved_model_pb2.SavedModel.FromString(open(path + "/saved_model.pb", "rb").read())
        ops = {node.op for graph in saved.meta_graphs for node in graph.graph_def.node}
        ops |= {node.op for graph in saved.meta_graphs for f in graph.graph_def.library.function for node in f.node_def}
        results[f"{i}/ops"] = np.array(sorted(ops))
        results[f"{i}/unregistered"] = np.array(sorted(op for op in ops if op_def_registry.get(op) is None))
    served = tf.saved_model.load(paths[0])
    for name, args in (("single", {"text": texts}), ("pairs", {"text": firsts, "text_pair": seconds})):
        signature = served.signatures["serving_default" if name == "single" else "serving_pairs"]
        outputs = signature(**{k: tf.constant(v) for k, v in args.items()})
        results.update({f"{name}/{k}": v.numpy() for k, v in outputs.items()})
    results["modules"] = np.array(sorted(m for m in sys.modules if m.split(".")[0] in ("bert_tf", "bert_core", "tokenization", "conversion", "torch", "tensorflow_text")))
    np.savez(out, **results)
""")


def _serve_in_subprocess(jobs: dict, tmp_path, script: str = _SERVE) -> dict:
    out = tmp_path / "served.npz"
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(jobs), str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as data:
        return dict(data)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, real_model_dir):
    """The real MiniLM encoder and a tiny QA head exported with the real tokenizer, then served elsewhere."""
    root = tmp_path_factory.mktemp("serving")
    tokenizer = TFBertTokenizer.from_pretrained(real_model_dir)
    encoder = bert_tf.TFBertModel.from_pretrained(real_model_dir)
    qa = bert_tf.TFBertForQuestionAnswering(bert_tf.BertConfig(**tiny_config_dict(vocab_size=30522,
                                                                                  initializer_range=0.02)))
    export_savedmodel(encoder, tokenizer, root / "encoder")
    export_savedmodel(qa, TFBertTokenizer.from_pretrained(real_model_dir, max_length=24), root / "qa")
    first, second = map(list, zip(*PAIRS))
    jobs = {
        "encoder": {"path": str(root / "encoder"), "signature": "serving_default", "names": ["text"], "inputs": [TEXTS]},
        "qa": {"path": str(root / "qa"), "signature": "serving_pairs", "names": ["text", "text_pair"],
               "inputs": [first, second]},
    }
    return {"served": _serve_in_subprocess(jobs, root), "encoder": encoder, "qa": qa, "root": root,
            "reference": BertTokenizerFast.from_pretrained(real_model_dir)}


def _python_path(model, tokenizer, *texts, **kwargs):
    encoding = tokenizer(*texts, truncation=True, padding="longest", return_tensors="np", **kwargs)
    return encoding, model(**{k: tf.constant(v) for k, v in encoding.items()}, training=False)


@pytest.mark.parametrize("batch", [1, len(TEXTS)])
def test_serving_default_on_raw_strings_equals_tokenizer_plus_model(exported, batch):
    served = exported["served"]
    encoding, outputs = _python_path(exported["encoder"], exported["reference"], TEXTS[:batch], max_length=512)
    np.testing.assert_array_equal(served[f"encoder/{batch}/input_ids"], encoding["input_ids"])
    np.testing.assert_array_equal(served[f"encoder/{batch}/attention_mask"], encoding["attention_mask"])
    mask = encoding["attention_mask"]
    assert max_abs_diff(served[f"encoder/{batch}/last_hidden_state"], outputs.last_hidden_state, mask) <= TOL["float32"]
    assert max_abs_diff(served[f"encoder/{batch}/pooler_output"], outputs.pooler_output) <= TOL["float32"]


@pytest.mark.parametrize("batch", [1, len(PAIRS)])
def test_serving_pairs_gives_the_head_outputs(exported, batch):
    served = exported["served"]
    first, second = map(list, zip(*PAIRS[:batch]))
    encoding, outputs = _python_path(exported["qa"], exported["reference"], first, second, max_length=24)
    np.testing.assert_array_equal(served[f"qa/{batch}/input_ids"], encoding["input_ids"])
    for field in ("start_logits", "end_logits"):
        assert max_abs_diff(served[f"qa/{batch}/{field}"], getattr(outputs, field), encoding["attention_mask"]) \
            <= TOL["float32"]


def test_the_serving_process_needs_only_tensorflow_text(exported):
    assert exported["served"]["modules"].size == 0  # no tribert package (and no torch) was imported to serve


@pytest.fixture(scope="module")
def core_served(tmp_path_factory, real_model_dir, exported):
    """`tribert convert --to savedmodel --tokenizer-ops core` of a tiny classifier beside the real vocab, served
    (with the tensorflow-text export's op list beside it) in a process that cannot import tensorflow_text."""
    root = tmp_path_factory.mktemp("core")
    model = bert_tf.TFBertForSequenceClassification(bert_tf.BertConfig(
        **tiny_config_dict(vocab_size=30522, max_position_embeddings=512, initializer_range=0.02, num_labels=3)))
    model.save_pretrained(root / "src")
    shutil.copy(real_model_dir / "vocab.txt", root / "src" / "vocab.txt")
    assert main(["convert", str(root / "src"), "--to", "savedmodel", "--tokenizer-ops", "core",
                 "--out", str(root / "out")]) == 0
    first, second = map(list, zip(*PAIRS))
    job = [[str(root / "out" / "saved_model"), str(exported["root"] / "encoder")], CORPUS, first, second,
           str(root / "served.npz")]
    proc = subprocess.run([sys.executable, "-c", _SERVE_CORE, json.dumps(job)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(root / "served.npz") as data:
        served = dict(data)
    return {"served": served, "model": model, "reference": BertTokenizerFast(root / "src" / "vocab.txt"),
            "root": root}


def test_core_savedmodel_holds_only_core_ops_registered_without_tensorflow_text(core_served):
    served = core_served["served"]
    assert served["blocked"]  # `import tensorflow_text` raised in the serving process
    assert set(served["0/ops"]) <= CORE_OPS, set(served["0/ops"]) - CORE_OPS
    assert served["0/unregistered"].size == 0
    # The same check on the tensorflow-text export finds its kernels missing.
    assert {"FastWordpieceTokenizeWithOffsets", "NormalizeUTF8"} <= set(served["1/unregistered"])


@pytest.mark.parametrize("name", ["single", "pairs"])
def test_core_savedmodel_serves_the_corpus_like_the_tokenizer_plus_model(core_served, name):
    served, model, tokenizer = core_served["served"], core_served["model"], core_served["reference"]
    texts = (CORPUS,) if name == "single" else tuple(map(list, zip(*PAIRS)))
    encoding, outputs = _python_path(model, tokenizer, *texts, max_length=512)
    np.testing.assert_array_equal(served[f"{name}/input_ids"], encoding["input_ids"])
    np.testing.assert_array_equal(served[f"{name}/attention_mask"], encoding["attention_mask"])
    assert max_abs_diff(served[f"{name}/logits"], outputs.logits) <= TOL["float32"]  # token types included
    assert served["modules"].size == 0  # neither tribert nor tensorflow_text was imported to serve


def test_tokenizer_ops_with_another_target_or_value_is_refused(core_served, capsys):
    root = core_served["root"]
    assert main(["convert", str(root / "src"), "--to", "safetensors", "--tokenizer-ops", "core",
                 "--out", str(root / "st")]) == 1
    assert "--tokenizer-ops applies to --to savedmodel only" in capsys.readouterr().err
    assert not (root / "st").exists()
    with pytest.raises(ConfigError, match="tokenizer_ops must be 'text' or 'core'"):
        export_savedmodel(core_served["model"], None, root / "bad", tokenizer_ops="icu")


def test_export_is_atomic_and_refuses_to_clobber(exported, tmp_path):
    root = exported["root"]
    with pytest.raises(ConfigError, match="already exists"):
        export_savedmodel(exported["qa"], None, root / "qa")
    mc = bert_tf.TFBertForMultipleChoice(bert_tf.BertConfig(**tiny_config_dict()))
    with pytest.raises(ConfigError, match="TFBertForMultipleChoice"):
        export_savedmodel(mc, None, tmp_path / "mc")
    assert not list(tmp_path.iterdir())  # nothing half-written
    export_savedmodel(exported["qa"], None, root / "qa", overwrite=True)  # replaced whole, via a temporary sibling
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
    assert set(tf.saved_model.load(str(root / "qa")).signatures) == {"serving_default", "int64_serving"}
