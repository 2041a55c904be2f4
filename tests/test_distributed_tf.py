"""bert_tf under TensorFlow's own engine: on 2 logical CPU devices, ``tf.distribute.MirroredStrategy`` runs
``bert_tf.distributed.make_train_step`` with the same loss, gradients and updated weights as one device on the
same global batch (sequence classification; masked LM with a different number of masked tokens per replica),
Keras ``model.fit`` under the strategy equals ``fit`` on one device, the chief's ``save_pretrained`` writes
the canonical checkpoint, and ``keras.distribution.DataParallel`` is shown to distribute nothing on Keras'
TensorFlow backend (which is why the strategy is the way). Across processes: 2 workers joined by
``MultiWorkerMirroredStrategy`` (``TF_CONFIG``, loopback ports) take the masked-LM steps one process takes on
the same global batch, within 1e-6, and only the chief writes the checkpoint.

The 2-device runs happen in a subprocess (this file run as a script): logical devices must be configured
before TensorFlow initialises, and the main pytest process has already initialised it. The 2 workers are
this file run as a script too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import TOL, free_ports, max_abs_diff, padded_batch, run_processes, tiny_config_dict

HEADS = {"sequence-classification": "TFBertForSequenceClassification", "masked-lm": "TFBertForMaskedLM"}
QUANTITIES = ("loss", "grad_norm", "gradients", "params", "logits", "saved")
STEPS = 2
#: Small enough that clipping is active on every step (the test checks it), so clipping is compared too.
MAX_GRAD_NORM = 0.05


def tiny_config():
    from bert_core import BertConfig

    # Dropout off: each replica would draw its own masks, so no run could equal the one-device run.
    return BertConfig(**tiny_config_dict(num_labels=3, initializer_range=0.02))


def global_batch(head, vocab_size):
    """8 rows (4 per replica); the MLM labels mask 30% of the real tokens plus position 1, so the two
    halves hold different numbers of labelled tokens (the test asserts it)."""
    batch = padded_batch(vocab_size, batch=8, seq=10, seed=3, fully_padded_row=False)
    if head == "sequence-classification":
        batch["labels"] = np.arange(8) % 3
    else:
        masked = (np.random.default_rng(0).random(batch["input_ids"].shape) < 0.3) & (batch["attention_mask"] == 1)
        masked[:, 1] = True
        batch["labels"] = np.where(masked, batch["input_ids"], -100)
    return batch


# -- one device, in this process -------------------------------------------------------------------

tf = pytest.importorskip("tensorflow")


def test_the_one_device_step_is_the_plain_adamw_step():
    """Without a strategy, make_train_step is an ordinary GradientTape + AdamW step (dense gradients)."""
    import keras

    import bert_tf
    from bert_tf.distributed import make_train_step

    batch = global_batch("masked-lm", 99)
    models = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        models.append(bert_tf.TFBertForMaskedLM(tiny_config()))
    ours, plain = models
    step = make_train_step(ours, keras.optimizers.AdamW(1e-3, weight_decay=0.01))
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.01)
    for _ in range(STEPS):
        metrics = step({k: tf.constant(v) for k, v in batch.items()})
        with tf.GradientTape() as tape:
            loss = plain(**batch, training=True).loss
        grads = tape.gradient(loss, plain.trainable_weights)
        optimizer.apply_gradients(zip([tf.convert_to_tensor(g) for g in grads], plain.trainable_weights))
        assert abs(float(metrics["loss"]) - float(loss)) <= TOL["float32"]
        assert set(metrics) == {"loss"}  # no extra all-reduce without clipping or gradients asked for
    assert max_abs_diff(dict(ours.named_weights()), dict(plain.named_weights())) <= TOL["float32"]


def test_shard_batch_needs_one_batch_axis():
    from bert_core import ConfigError
    from bert_tf.distributed import shard_batch

    with pytest.raises(ConfigError, match=r"one leading batch axis.*'input_ids': \(4, 3\).*'labels': \(2,\)"):
        shard_batch(tf.distribute.get_strategy(), {"input_ids": np.zeros((4, 3)), "labels": np.zeros(2)})


def test_is_chief_reads_the_cluster_from_tf_config(monkeypatch):
    from bert_tf.distributed import is_chief

    class Strategy:  # what MultiWorkerMirroredStrategy exposes: its cluster resolver
        cluster_resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()

    cluster = {"worker": ["localhost:1", "localhost:2"]}
    for task, chief in [({"type": "worker", "index": 0}, True), ({"type": "worker", "index": 1}, False)]:
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        assert is_chief(Strategy()) is chief
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {**cluster, "chief": ["localhost:0"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert not is_chief(Strategy())
    assert is_chief()  # no cluster: the one process writes


# -- 2 logical devices, in a subprocess -------------------------------------------------------------

#: ~35 s of CPU (TensorFlow traces 7 train steps), hence slow.
@pytest.fixture(scope="module")
def two_device_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed_tf")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(root)], env=env, capture_output=True,
                          text=True, timeout=400, cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("head", list(HEADS))
def test_mirrored_step_equals_one_device_step(two_device_results, head):
    result = two_device_results[head]
    assert result["replicas"] == 2 and result["mirrored_copies"] == 2
    diffs = {q: result[q] for q in QUANTITIES}
    assert max(diffs.values()) <= TOL["float32"], diffs
    assert min(result["grad_norms"]) > MAX_GRAD_NORM  # clipping was active on every step
    if head == "masked-lm":  # the loss weighting is what makes this case equal
        first, second = result["labels_per_replica"]
        assert first != second


@pytest.mark.distributed
@pytest.mark.slow
def test_fit_under_mirrored_strategy_equals_fit_on_one_device(two_device_results):
    result = two_device_results["fit"]
    assert result["replicas"] == 2
    assert max(result["loss"], result["params"]) <= TOL["float32"], result


@pytest.mark.distributed
@pytest.mark.slow
def test_keras_distribution_data_parallel_distributes_nothing_on_the_tensorflow_backend(two_device_results):
    """What Keras 3 does with ``keras.distribution`` on its TensorFlow backend (docs/scaling.md): the
    backend has no ``initialize``, and under ``set_distribution(DataParallel(...))`` over both devices
    the variables are plain single-device variables and ``fit`` runs one replica."""
    facts = two_device_results["keras_distribution"]
    assert facts["devices"] == ["cpu:0", "cpu:1"]
    assert facts["initialize"].startswith("AttributeError") and "has no attribute 'initialize'" in facts["initialize"]
    assert facts["variable_type"] == "ResourceVariable"
    assert facts["fit_replicas"] == 1


@pytest.mark.distributed
@pytest.mark.slow
def test_misuse_under_two_replicas_is_refused(two_device_results):
    errors = two_device_results["errors"]
    assert "batch['input_ids'] of shape (7, 10)" in errors["indivisible_batch"] and "2 replicas" in errors[
        "indivisible_batch"]
    assert "global_clipnorm" in errors["clipping_optimizer"] and "max_grad_norm" in errors["clipping_optimizer"]
    assert "outside strategy.run" in errors["save_in_replica_context"]


# -- 2 worker processes, MultiWorkerMirroredStrategy ------------------------------------------------------

WORKERS = 2
#: The multi-process contract (docs/scaling.md): a step over worker processes is the one-process step.
WORKER_TOL = 1e-6


@pytest.fixture(scope="module")
def two_worker_results(tmp_path_factory):
    """The masked-LM steps in this process on the whole batch (no strategy), and the records of 2 worker
    processes that each run them under ``MultiWorkerMirroredStrategy``, the cluster given by ``TF_CONFIG``."""
    import keras

    import bert_tf

    root = tmp_path_factory.mktemp("distributed_tf_workers")
    keras.utils.set_random_seed(0)
    bert_tf.TFBertForMaskedLM(tiny_config()).save_pretrained(root / "init-masked-lm")
    reference = _run_step("masked-lm", root, tf.distribute.get_strategy())
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(WORKERS)]}
    envs = [dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3",
                 TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
            for i in range(WORKERS)]
    outputs = run_processes([[str(Path(__file__).resolve()), "worker", str(root)]] * WORKERS, timeout=180, env=envs)
    records = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    params = [dict(np.load(root / f"params-{i}.npz")) for i in range(WORKERS)]
    return root, records, params, reference


@pytest.mark.distributed
def test_two_worker_step_equals_one_process_step(two_worker_results):
    _, records, params, reference = two_worker_results
    for i, record in enumerate(records):
        assert (record["index"], record["replicas"]) == (i, WORKERS)
        assert max_abs_diff(record["loss"], reference["loss"]) <= WORKER_TOL
        assert max_abs_diff(record["grad_norm"], reference["grad_norm"]) <= WORKER_TOL
        assert max_abs_diff(params[i], reference["params"]) <= WORKER_TOL
    assert min(records[0]["grad_norm"]) > MAX_GRAD_NORM  # clipping by the cross-worker norm was active
    first, second = (int((half != -100).sum()) for half in np.split(global_batch("masked-lm", 99)["labels"], 2))
    assert first != second  # the loss weighting across workers is what makes this equal


@pytest.mark.distributed
def test_only_the_chief_worker_writes_the_checkpoint(two_worker_results):
    """Each worker was given its own directory, as on two hosts: only the chief's (worker 0) exists, and it
    loads back with the weights the one-process run reached."""
    import bert_tf

    root, records, _, reference = two_worker_results
    assert [record["wrote"] for record in records] == [True, False]
    assert (root / "saved-0" / "model.safetensors").is_file() and not (root / "saved-1").exists()
    loaded = bert_tf.TFBertForMaskedLM.from_pretrained(root / "saved-0")
    assert max_abs_diff(_weights(loaded), reference["params"]) <= WORKER_TOL


# -- the subprocesses ---------------------------------------------------------------------------------

def _weights(model):
    return {k: v.numpy() for k, v in model.named_weights().items()}


def _run_step(head, root, strategy):
    import keras

    import bert_tf
    from bert_tf.distributed import from_pretrained, make_train_step, shard_batch

    cls = getattr(bert_tf, HEADS[head])
    model = from_pretrained(cls, root / f"init-{head}", strategy=strategy)
    with strategy.scope():
        optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.01)
    step = make_train_step(model, optimizer, strategy, max_grad_norm=MAX_GRAD_NORM, return_gradients=True)
    batch = global_batch(head, model.config.vocab_size)
    losses, norms, gradients = [], [], None
    for _ in range(STEPS):
        metrics = step(shard_batch(strategy, batch))
        losses.append(float(metrics["loss"]))
        norms.append(float(metrics["grad_norm"]))
        if gradients is None:
            gradients = {k: v.numpy() for k, v in metrics["gradients"].items()}
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return {"model": model, "loss": losses, "grad_norm": norms, "gradients": gradients,
            "params": _weights(model), "logits": model(**inputs).logits.numpy()}


def _run_fit(root, strategy):
    import keras

    import bert_tf
    from bert_tf.distributed import from_pretrained

    model = from_pretrained(bert_tf.TFBertForSequenceClassification, root / "init-sequence-classification",
                            strategy=strategy)
    with strategy.scope():
        # Adam: the model's train_step sums the embedding gradients' rows into dense tensors, so the
        # update does not depend on how the rows are split over replicas (Keras' own step squares each row).
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = global_batch("sequence-classification", model.config.vocab_size)
    history = model.fit(tf.data.Dataset.from_tensor_slices(batch).repeat(STEPS).batch(8), verbose=0)
    return {"loss": history.history["loss"], "params": _weights(model)}


def _keras_distribution_facts():
    import keras

    import bert_tf

    facts = {"devices": keras.distribution.list_devices("cpu")}
    try:
        keras.distribution.initialize()
        facts["initialize"] = "ok"
    except Exception as error:  # noqa: BLE001 - recorded for the test to read
        facts["initialize"] = f"{type(error).__name__}: {error}"
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=facts["devices"]))
    try:
        model = bert_tf.TFBertForSequenceClassification(tiny_config())
        facts["variable_type"] = type(model.trainable_weights[0].value).__name__
        model.compile(optimizer="sgd")
        batch = global_batch("sequence-classification", model.config.vocab_size)
        model.fit(batch, batch_size=8, epochs=1, verbose=0)
        facts["fit_replicas"] = model.distribute_strategy.num_replicas_in_sync
    finally:
        keras.distribution.set_distribution(None)
    return facts


def _errors(root, strategy):
    import keras

    import bert_tf
    from bert_core import ConfigError
    from bert_tf.distributed import make_train_step, save_pretrained, shard_batch

    errors = {}
    model = bert_tf.distributed.from_pretrained(bert_tf.TFBertForSequenceClassification,
                                                root / "init-sequence-classification", strategy=strategy)
    attempts = {
        "indivisible_batch": lambda: shard_batch(strategy, global_batch("sequence-classification", 99) | {
            "input_ids": np.zeros((7, 10), np.int64), "attention_mask": np.zeros((7, 10), np.int64),
            "token_type_ids": np.zeros((7, 10), np.int64), "labels": np.zeros(7, np.int64)}),
        "clipping_optimizer": lambda: make_train_step(model, keras.optimizers.AdamW(global_clipnorm=1.0), strategy),
        "save_in_replica_context": lambda: strategy.run(lambda: save_pretrained(model, root / "never", strategy)),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
            errors[name] = ""
        except ConfigError as error:
            errors[name] = str(error)
    return errors


def _main(root: Path):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    import bert_tf
    from bert_tf.distributed import save_pretrained

    results = {"keras_distribution": _keras_distribution_facts()}
    for head, class_name in HEADS.items():
        keras.utils.set_random_seed(0)
        getattr(bert_tf, class_name)(tiny_config()).save_pretrained(root / f"init-{head}")

    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for head, class_name in HEADS.items():
        reference, ours = _run_step(head, root, one), _run_step(head, root, mirrored)
        assert save_pretrained(ours["model"], root / f"saved-{head}", mirrored)
        loaded = _weights(getattr(bert_tf, class_name).from_pretrained(root / f"saved-{head}"))
        variable = ours["model"].trainable_weights[0].value
        labels = global_batch(head, 99)["labels"]
        results[head] = dict({q: max_abs_diff(ours[q], reference[q]) for q in QUANTITIES if q != "saved"},
                             saved=max_abs_diff(loaded, reference["params"]), grad_norms=ours["grad_norm"],
                             replicas=mirrored.num_replicas_in_sync,
                             mirrored_copies=len(getattr(variable, "values", ())),
                             labels_per_replica=[int((half != -100).sum()) for half in np.split(labels, 2)])
    reference, ours = _run_fit(root, one), _run_fit(root, mirrored)
    results["fit"] = {"loss": max_abs_diff(ours["loss"], reference["loss"]),
                      "params": max_abs_diff(ours["params"], reference["params"]),
                      "replicas": mirrored.num_replicas_in_sync}
    results["errors"] = _errors(root, mirrored)
    print(json.dumps(results))


def _worker_main(root: Path):
    """One worker of the MultiWorkerMirroredStrategy cluster in ``TF_CONFIG``: the masked-LM steps on the
    global batch (shard_batch takes this worker's replica's rows), then the chief-only save."""
    from bert_tf.distributed import save_pretrained

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    index = strategy.cluster_resolver.task_id
    result = _run_step("masked-lm", root, strategy)
    wrote = save_pretrained(result["model"], root / f"saved-{index}", strategy)
    np.savez(root / f"params-{index}.npz", **result["params"])
    print(json.dumps({"index": index, "replicas": strategy.num_replicas_in_sync, "wrote": wrote,
                      "loss": result["loss"], "grad_norm": result["grad_norm"]}))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if sys.argv[1:2] == ["worker"]:
        _worker_main(Path(sys.argv[2]))
    else:
        _main(Path(sys.argv[1]))
