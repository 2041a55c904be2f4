"""The ``transformers`` 4.x ways of exporting a TF model give SavedModels that serve the model's numbers.

Claim: ``tf.saved_model.save(model, dir)``, Keras 3's ``model.export(dir)`` and
``model.save_pretrained(dir, saved_model=True)`` (which writes ``dir/saved_model/1`` beside the
weights, as 4.x did) each write a SavedModel that a fresh process with only TensorFlow imported
(no tribert, no torch) loads with ``tf.saved_model.load`` and runs through its ``serving_default``
signature on int32 ``input_ids`` / ``attention_mask`` / ``token_type_ids`` (4.x's
``input_signature``), and through ``int64_serving`` on int64 ids where the path writes it. The
outputs equal the Keras model's and HF ``transformers`` 5.x PyTorch's on the same checkpoint
within the float32 bound (1e-5 + 1.3e-6 * magnitude), for the bare encoder and heads, multiple
choice's ``(batch, choices, seq)`` included.
"""

from __future__ import annotations

import contextlib

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import bert_tf
from bert_core import BertConfig
from harness import assert_close, max_abs_diff, padded_batch, tiny_config_dict

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

#: class -> the export paths tried on it (all three on the encoder and a classifier; 4.x's
#: save_pretrained(saved_model=True) on the other output shapes).
CASES = {
    "BertModel": ("saved_model_save", "export", "save_pretrained"),
    "BertForSequenceClassification": ("saved_model_save", "export", "save_pretrained"),
    "BertForMultipleChoice": ("save_pretrained",),
    "BertForPreTraining": ("save_pretrained",),
    "BertForQuestionAnswering": ("export",),
}
#: The signatures each path writes (tf.saved_model.save alone can only write its default one).
SIGNATURES = {"saved_model_save": {"serving_default"},
              "export": {"serving_default", "serve", "int64_serving"},
              "save_pretrained": {"serving_default", "int64_serving"}}
DTYPES = {"serving_default": "int32", "int64_serving": "int64", "serve": "int32"}

# A fresh interpreter: TensorFlow only, nothing of tribert.
_SERVE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    jobs, inputs = json.loads(sys.argv[1]), np.load(sys.argv[2])
    results = {}
    for name, job in jobs.items():
        served = tf.saved_model.load(job["path"])
        results[name + "/signatures"] = np.array(sorted(served.signatures))
        for signature, dtype in job["signatures"].items():
            feed = {k: tf.constant(inputs[job["inputs"] + "/" + k].astype(dtype)) for k in job["names"]}
            outputs = served.signatures[signature](**feed)
            results.update({f"{name}/{signature}/{k}": v.numpy() for k, v in outputs.items()})
        if "serve" in job["signatures"]:  # Keras' endpoint, called as a method (dict in, as the Keras model)
            out = served.serve({k: tf.constant(inputs[job["inputs"] + "/" + k].astype("int32")) for k in job["names"]})
            results.update({f"{name}/serve()/{k}": v.numpy() for k, v in out.items()})
    results["modules"] = np.array(sorted(m for m in sys.modules if m.split(".")[0] in
                                         ("bert_tf", "bert_core", "tokenization", "conversion", "torch")))
    np.savez(sys.argv[3], **results)
""")


def _inputs(class_name: str) -> dict[str, np.ndarray]:
    batch = padded_batch(99, batch=4, seq=7, seed=3, fully_padded_row=False)
    if class_name == "BertForMultipleChoice":
        return {k: v.reshape(2, 2, 7) for k, v in batch.items()}  # (batch, choices, seq)
    return batch


def _export(model, path: str, directory):
    if path == "saved_model_save":
        tf.saved_model.save(model, str(directory))
        return directory
    if path == "export":
        model.export(str(directory))
        return directory
    model.save_pretrained(directory, saved_model=True)
    return directory / "saved_model" / "1"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    models, jobs, arrays = {}, {}, {}
    for class_name, paths in CASES.items():
        keras.utils.set_random_seed(0)
        model = getattr(bert_tf, "TF" + class_name)(BertConfig(**tiny_config_dict(initializer_range=0.2)))
        model.save_pretrained(root / class_name / "weights")
        models[class_name] = model
        arrays.update({f"{class_name}/{k}": v for k, v in _inputs(class_name).items()})
        for path in paths:
            directory = _export(model, path, root / class_name / path)
            jobs[f"{class_name}/{path}"] = {"path": str(directory), "inputs": class_name,
                                            "names": list(model.input_signature),
                                            "signatures": {s: DTYPES[s] for s in SIGNATURES[path]}}
    np.savez(root / "inputs.npz", **arrays)
    proc = subprocess.run([sys.executable, "-c", _SERVE, json.dumps(jobs), str(root / "inputs.npz"),
                           str(root / "served.npz")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(root / "served.npz") as data:
        return {"served": dict(data), "models": models, "jobs": jobs, "root": root}


def _expected(exported, class_name: str) -> tuple[dict, dict]:
    """The Keras model's outputs and transformers' (PyTorch) from the saved weights, as numpy dicts."""
    inputs = _inputs(class_name)
    ours = exported["models"][class_name](**inputs, training=False)
    reference = getattr(transformers, class_name).from_pretrained(exported["root"] / class_name / "weights",
                                                                  attn_implementation="eager").eval()
    with torch.no_grad():
        theirs = reference(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    keras_out = {k: np.asarray(v) for k, v in ours.items() if v is not None}
    torch_out = {k: theirs[k].numpy() for k in keras_out}
    return keras_out, torch_out


def _mask_for(field: str, value: np.ndarray, inputs: dict) -> np.ndarray | None:
    mask = inputs["attention_mask"].reshape(-1, inputs["attention_mask"].shape[-1])
    return mask if value.ndim >= 2 and value.shape[:2] == mask.shape else None


@pytest.mark.parametrize("job", [f"{c}/{p}" for c, paths in CASES.items() for p in paths])
def test_reloaded_savedmodel_serves_the_keras_and_transformers_outputs(exported, job):
    class_name, path = job.split("/")
    served = exported["served"]
    assert set(served[f"{job}/signatures"]) == SIGNATURES[path]
    keras_out, torch_out = _expected(exported, class_name)
    inputs = _inputs(class_name)
    calls = sorted(SIGNATURES[path]) + (["serve()"] if "serve" in SIGNATURES[path] else [])
    for call in calls:
        got = {k.rsplit("/", 1)[1]: v for k, v in served.items() if k.startswith(f"{job}/{call}/")}
        assert set(got) == set(keras_out), call
        for field, value in got.items():
            mask = _mask_for(field, value, inputs)  # padded positions hold different (unused) numbers
            assert_close(value, keras_out[field], mask=mask)
            assert_close(value, torch_out[field], mask=mask)


def test_serving_needs_only_tensorflow(exported):
    assert exported["served"]["modules"].size == 0  # no tribert package and no torch was imported


@contextlib.contextmanager
def _run_eagerly(model):
    model.run_eagerly = True
    try:
        yield
    finally:
        model.run_eagerly = False


def test_input_signature_is_4x_int32_and_save_pretrained_keeps_the_weights(exported):
    model = exported["models"]["BertForMultipleChoice"]
    assert {k: (v.shape.as_list(), v.dtype) for k, v in model.input_signature.items()} == {
        k: ([None, None, None], tf.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}
    directory = exported["root"] / "BertForMultipleChoice" / "save_pretrained"
    assert (directory / "config.json").is_file() and (directory / "model.safetensors").is_file()
    reloaded = bert_tf.TFBertForMultipleChoice.from_pretrained(directory)
    inputs = _inputs("BertForMultipleChoice")
    # Bit for bit through the same call path (a first call is eager, later ones the graph: ~3e-7 apart).
    with _run_eagerly(model), _run_eagerly(reloaded):
        assert max_abs_diff(reloaded(**inputs).logits, model(**inputs).logits) == 0.0
