"""A SavedModel from ``export_savedmodel`` serves raw strings with the numbers of the Python path.

Claim: a fresh process that only does ``import tensorflow_text`` and
``tf.saved_model.load`` (no tribert package) gets, from the
``serving_default`` / ``serving_pairs`` signatures on raw strings, the outputs
of ``tokenization.BertTokenizerFast`` + the ``bert_tf`` model within 1e-5
(float32), for the real all-MiniLM-L6-v2 encoder and a question-answering head,
at any batch size. Writing is atomic and refuses to clobber.
"""

from __future__ import annotations

import json
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


def _serve_in_subprocess(jobs: dict, tmp_path) -> dict:
    out = tmp_path / "served.npz"
    proc = subprocess.run([sys.executable, "-c", _SERVE, json.dumps(jobs), str(out)], capture_output=True, text=True,
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
