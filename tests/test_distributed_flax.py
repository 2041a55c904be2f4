"""bert_flax.sharding: the partition rules cover every parameter, and on 8 host CPU devices a sharded
train step (data-parallel 8x1, model-parallel 1x8, mixed 2x4) computes what the single-device step
computes: loss, gradients, updated params and forward outputs within 1e-5. bert_flax.distributed: 2
processes joined by ``jax.distributed`` (gloo on CPU), each holding half of one global batch, take the
steps one process takes on the whole batch, within 1e-6, and only process 0 writes the checkpoint.

The 8-device runs happen in a subprocess (this file run as a script), because
``--xla_force_host_platform_device_count`` must be set before jax is imported; the 2 processes are this
file run as a script too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import TOL, free_ports, max_abs_diff, padded_batch, run_processes, tiny_config_dict

LAYOUTS = [(8, 1), (1, 8), (2, 4)]
#: (loss, scan_layers, relative positions) -> the (data, model) layouts the subprocess runs it in. Each
#: layout costs two compilations of a backward pass (~10 s on a loaded 2-core CPU), hence the choice.
CASES = {("sequence-classification", False, False): LAYOUTS, ("masked-lm", True, True): [(2, 4)]}
PARAMETERS = [(*case, layout) for case, layouts in CASES.items() for layout in layouts]
QUANTITIES = ("loss", "grad_norm", "grads", "params", "outputs")


def case_name(loss, scan, relative, layout):
    return f"{loss}{'-scan' if scan else ''}{'-relative' if relative else ''}-{layout[0]}x{layout[1]}"


def tiny_config(**overrides):
    from bert_core import BertConfig

    # hidden 32 and intermediate 64 divide by 8; dropout on, so the sharded dropout masks are checked too.
    values = dict(intermediate_size=64, initializer_range=0.02, hidden_dropout_prob=0.1,
                  attention_probs_dropout_prob=0.1, num_labels=3)
    return BertConfig(**tiny_config_dict(**{**values, **overrides}))


# -- single process: the rules as data -------------------------------------------------------------

jax = pytest.importorskip("jax")


def flat_specs(model):
    from flax import traverse_util

    from bert_flax.sharding import partition_specs

    return traverse_util.flatten_dict(partition_specs(model.params), sep="/")


@pytest.mark.parametrize("name", ["FlaxBertForPreTraining", "FlaxBertForCausalLM", "FlaxBertForMaskedLM",
                                  "FlaxBertForNextSentencePrediction", "FlaxBertForSequenceClassification",
                                  "FlaxBertForMultipleChoice", "FlaxBertForTokenClassification",
                                  "FlaxBertForQuestionAnswering", "FlaxBertModel"])
def test_every_parameter_of_every_head_has_a_rule(name):
    import bert_flax
    from jax.sharding import PartitionSpec as P

    decoder = name == "FlaxBertForCausalLM"
    config = tiny_config(position_embedding_type="relative_key", is_decoder=decoder, add_cross_attention=decoder)
    specs = flat_specs(getattr(bert_flax, name)(config))
    prefix = "" if name == "FlaxBertModel" else "bert/"
    layer = f"{prefix}encoder/layer/0/"
    expected = {
        f"{prefix}embeddings/word_embeddings/embedding": P(None, "model"),
        f"{layer}attention/self/query/kernel": P(None, "model"),
        f"{layer}attention/self/value/kernel": P(None, "model"),
        f"{layer}intermediate/dense/kernel": P(None, "model"),
        f"{layer}attention/output/dense/kernel": P("model", None),
        f"{layer}output/dense/kernel": P("model", None),
        f"{layer}output/LayerNorm/scale": P(),
        f"{layer}attention/self/query/bias": P(),
        f"{layer}attention/self/distance_embedding/embedding": P(),
    }
    if decoder:
        expected[f"{layer}crossattention/self/key/kernel"] = P(None, "model")
        expected[f"{layer}crossattention/output/dense/kernel"] = P("model", None)
    assert {k: specs[k] for k in expected} == expected


def test_scanned_layers_keep_the_layer_axis_whole():
    import bert_flax
    from jax.sharding import PartitionSpec as P

    specs = flat_specs(bert_flax.FlaxBertForMaskedLM(tiny_config(), scan_layers=True))
    assert specs["bert/encoder/layer/attention/self/query/kernel"] == P(None, None, "model")
    assert specs["bert/encoder/layer/output/dense/kernel"] == P(None, "model", None)
    assert specs["bert/encoder/layer/output/dense/bias"] == P()


def test_a_parameter_no_rule_matches_is_named():
    import jax.numpy as jnp

    from bert_core import ConfigError
    from bert_flax.sharding import partition_specs

    with pytest.raises(ConfigError, match=r"adapter/down/kernel \(4, 2\)"):
        partition_specs({"adapter": {"down": {"kernel": jnp.zeros((4, 2))}}, "pooler": {"dense": {"bias": jnp.zeros(2)}}})


def test_a_mesh_larger_than_the_devices_is_refused():
    from bert_core import ConfigError
    from bert_flax.sharding import make_mesh

    with pytest.raises(ConfigError, match=r"make_mesh\(data=2, model=1\) needs data \* model <= 1 devices"):
        make_mesh(2, 1, devices=jax.devices()[:1])
    assert make_mesh(devices=jax.devices()[:1]).shape == {"data": 1, "model": 1}


# -- 8 devices, in a subprocess ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def eight_device_results():
    # LLVM optimisation level 0 halves the compile time, which dominates here; results agree all the same.
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve())], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.distributed
@pytest.mark.parametrize("loss,scan,relative,layout", PARAMETERS, ids=[case_name(*p) for p in PARAMETERS])
def test_sharded_step_equals_single_device_step(eight_device_results, loss, scan, relative, layout):
    result = eight_device_results[case_name(loss, scan, relative, layout)]
    assert result["devices"] == 8
    diffs = {q: result[q] for q in QUANTITIES}
    assert max(diffs.values()) <= TOL["float32"], diffs
    # The weights really are split: each device holds a 1/model slice of a query kernel.
    assert result["query_shard_shape"] == [32, 32 // layout[1]]


@pytest.mark.distributed
def test_a_split_the_mesh_does_not_divide_is_refused(eight_device_results):
    message = eight_device_results["indivisible_error"]
    assert "encoder/layer/0/intermediate/dense/kernel" in message and "(32, 36)" in message and "'model'" in message


@pytest.mark.distributed
def test_a_batch_the_data_axis_does_not_divide_is_refused(eight_device_results):
    message = eight_device_results["indivisible_batch_error"]
    assert "batch['input_ids'] of shape (6, 4)" in message and "'data' of size 8" in message


# -- 2 processes, jax.distributed over gloo -----------------------------------------------------------

PROCESSES = 2
PROCESS_STEPS = 3
#: The multi-process contract (docs/scaling.md): a data-parallel step over processes is the one-process step.
PROCESS_TOL = 1e-6
#: Both sides compile their step with LLVM optimisation level 0 (half the compile time of a backward pass);
#: with one level on both sides the results agree to float32 rounding.
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def process_case(root: Path):
    """Write the tiny MLM model and the 8-row global batch every process (and the reference) starts from;
    return the model, the batch and the optimizer. Dropout is on and the two halves hold different numbers
    of masked tokens (the test asserts both)."""
    import numpy as np

    import bert_flax

    config = tiny_config(num_hidden_layers=1)
    model = bert_flax.FlaxBertForMaskedLM(config, seed=0)
    batch = padded_batch(config.vocab_size, batch=8, seq=12, seed=1, fully_padded_row=False)
    masked = (np.random.default_rng(2).random(batch["input_ids"].shape) < 0.3) & (batch["attention_mask"] == 1)
    batch["labels"] = np.where(masked, batch["input_ids"], -100)
    batch["input_ids"] = np.where(masked, 3, batch["input_ids"])
    model.save_pretrained(root / "init")
    np.savez(root / "batch.npz", **batch)
    return model, batch, process_optimizer()


def process_optimizer():
    from bert_flax.training import create_optimizer

    tx, _ = create_optimizer(1e-3, num_train_steps=100, num_warmup_steps=0, weight_decay_rate=0.01,
                             adam_global_clipnorm=1.0)
    return tx


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    """The same steps taken here in one process on the whole batch, and both processes' records."""
    import numpy as np

    from bert_flax.training import TrainState, make_train_step

    root = tmp_path_factory.mktemp("distributed_flax_processes")
    model, batch, tx = process_case(root)
    state = TrainState.create(apply_fn=model.module.apply, params=model.params, tx=tx)
    rng = jax.random.PRNGKey(42)
    step, losses = make_train_step(model, loss="masked-lm").lower(state, batch, rng).compile(COMPILER_OPTIONS), []
    for _ in range(PROCESS_STEPS):
        state, metrics = step(state, batch, rng)
        losses.append(float(metrics["loss"]))
    port, = free_ports(1)
    script = str(Path(__file__).resolve())
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    outputs = run_processes([[script, "process", str(i), str(port), str(root)] for i in range(PROCESSES)],
                            timeout=180, env=env)
    records = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    params = [dict(np.load(root / f"params-{i}.npz")) for i in range(PROCESSES)]
    return root, records, params, {"losses": losses, "params": state.params, "model": model}


def _flat(params):
    from flax import traverse_util

    return traverse_util.flatten_dict(params, sep="/")


@pytest.mark.distributed
def test_two_process_steps_equal_one_process_steps(two_process_results):
    _, records, params, reference = two_process_results
    for i, record in enumerate(records):
        assert (record["process_index"], record["process_count"], record["devices"]) == (i, PROCESSES, PROCESSES)
        assert max_abs_diff(record["losses"], reference["losses"]) <= PROCESS_TOL
        # every process ends with the same, full parameters
        assert max_abs_diff(params[i], _flat(reference["params"])) <= PROCESS_TOL
    first, second = records[0]["labelled_tokens"], records[1]["labelled_tokens"]
    assert first != second  # the global mean is not the mean of the processes' means here
    assert records[0]["dropout"] > 0


@pytest.mark.distributed
def test_only_process_0_writes_the_checkpoint(two_process_results):
    """Each process was given its own directory, as on two hosts: only process 0's exists, and it loads
    back into one process with the parameters the one-process run reached."""
    import bert_flax

    root, records, _, reference = two_process_results
    assert [record["wrote"] for record in records] == [True, False]
    assert (root / "saved-0" / "model.safetensors").is_file() and not (root / "saved-1").exists()
    loaded = bert_flax.FlaxBertForMaskedLM.from_pretrained(root / "saved-0")
    assert max_abs_diff(loaded.params, reference["params"]) <= PROCESS_TOL


@pytest.mark.distributed
def test_gather_params_collects_weights_split_over_processes(two_process_results):
    """Split on a model axis spanning both processes, each process holds half of a query kernel; the
    gathered tree is the whole model again, exactly, in every process."""
    import numpy as np

    root, records, _, reference = two_process_results
    initial = _flat(reference["model"].params)
    for i, record in enumerate(records):
        assert record["split_query_shard"] == [32, 16]
        gathered = dict(np.load(root / f"gathered-{i}.npz"))
        assert gathered.keys() == initial.keys()
        assert all(np.array_equal(gathered[k], initial[k]) for k in initial)


# -- the subprocesses ---------------------------------------------------------------------------------

def _run_case(loss, scan, relative, layouts):
    import numpy as np

    import bert_flax
    from bert_flax.sharding import (batch_sharding, make_mesh, make_sharded_train_step, param_shardings,
                                    shard_batch, shard_train_state)
    from bert_flax.training import TrainState, create_optimizer, make_train_step, mask_tokens
    from jax.sharding import NamedSharding, PartitionSpec as P

    config = tiny_config(position_embedding_type="relative_key_query" if relative else "absolute")
    cls = bert_flax.FlaxBertForMaskedLM if loss == "masked-lm" else bert_flax.FlaxBertForSequenceClassification
    model = cls(config, seed=0, scan_layers=scan)
    batch = padded_batch(config.vocab_size, batch=8, seq=12, seed=1)
    if loss == "masked-lm":
        batch["input_ids"], batch["labels"] = mask_tokens(
            jax.random.PRNGKey(2), batch["input_ids"], mask_token_id=3, vocab_size=config.vocab_size,
            special_tokens_mask=batch["attention_mask"] == 0, mlm_probability=0.3)
        batch = {k: np.asarray(v) for k, v in batch.items()}
    else:
        batch["labels"] = np.random.default_rng(3).integers(0, config.num_labels, size=8)
    eval_inputs = {k: v for k, v in batch.items() if k != "labels"}
    rng = jax.random.PRNGKey(42)

    def value_and_grad(params, batch, rng):
        return jax.value_and_grad(lambda p: model(**batch, params=p, dropout_rng=rng, train=True).loss)(params)

    def run(state, step, grad_fn, put_batch):
        inputs = put_batch(batch)
        loss_value, grads = grad_fn(state.params, inputs, jax.random.fold_in(rng, 0))
        losses, norms = [], []
        for _ in range(2):
            state, metrics = step(state, inputs, rng)
            losses.append(metrics["loss"])
            norms.append(metrics["grad_norm"])
        outputs = model(**put_batch(eval_inputs), params=state.params)
        return {"loss": (loss_value, losses), "grad_norm": norms, "grads": grads, "params": state.params,
                "outputs": outputs, "state": state}

    # Adam divides by sqrt(v): a gradient near eps turns its last-bit rounding differences (a sharded sum adds
    # in another order) into update differences of up to lr, so the rate is a realistic 1e-3, not 1e-2.
    tx, _ = create_optimizer(1e-3, num_train_steps=100, num_warmup_steps=0, weight_decay_rate=0.01,
                             adam_global_clipnorm=1.0)
    state = TrainState.create(apply_fn=model.module.apply, params=model.params, tx=tx)
    reference = run(state, make_train_step(model, loss=loss), jax.jit(value_and_grad), lambda b: b)

    results = {}
    for layout in layouts:
        mesh = make_mesh(*layout)
        sharded = shard_train_state(state, mesh)
        shardings = param_shardings(state.params, mesh)
        replicated = NamedSharding(mesh, P())
        grad_fn = jax.jit(value_and_grad, in_shardings=(shardings, batch_sharding(mesh), replicated),
                          out_shardings=(replicated, shardings))
        ours = run(sharded, make_sharded_train_step(model, mesh, sharded, loss=loss), grad_fn,
                   lambda b: shard_batch(b, mesh))
        layer = "bert/encoder/layer" + ("" if scan else "/0")
        query = ours["state"].params
        for part in f"{layer}/attention/self/query/kernel".split("/"):
            query = query[part]
        shard_shape = list(query.addressable_shards[0].data.shape)[-2:]
        entry = {q: max_abs_diff(ours[q], reference[q]) for q in QUANTITIES}
        results[case_name(loss, scan, relative, layout)] = dict(entry, devices=len(jax.devices()),
                                                                query_shard_shape=shard_shape)
    return results


def _main():
    import numpy as np

    import bert_flax
    from bert_core import ConfigError
    from bert_flax.sharding import make_mesh, shard_batch, shard_params

    assert len(jax.devices()) == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
    results = {}
    for (loss, scan, relative), layouts in CASES.items():
        results.update(_run_case(loss, scan, relative, layouts))
    try:
        shard_params(bert_flax.FlaxBertModel(tiny_config(intermediate_size=36)).params, make_mesh(1, 8))
        results["indivisible_error"] = ""
    except ConfigError as error:
        results["indivisible_error"] = str(error)
    try:
        shard_batch({"input_ids": np.zeros((6, 4), np.int32)}, make_mesh(8, 1))
        results["indivisible_batch_error"] = ""
    except ConfigError as error:
        results["indivisible_batch_error"] = str(error)
    print(json.dumps(results))


def _process_main(process_id: int, port: int, root: Path):
    """One of the 2 processes: initialize, train on its half of the global batch, save (process 0 writes)."""
    import numpy as np

    import bert_flax
    from bert_flax import distributed
    from bert_flax.sharding import make_mesh, make_sharded_train_step, shard_batch, shard_params, shard_train_state
    from bert_flax.training import TrainState

    address = f"127.0.0.1:{port}"
    distributed.initialize(address, num_processes=PROCESSES, process_id=process_id,
                           coordinator_bind_address=address, initialization_timeout=60)
    model = bert_flax.FlaxBertForMaskedLM.from_pretrained(root / "init")
    rows = {k: np.split(v, PROCESSES)[process_id] for k, v in np.load(root / "batch.npz").items()}
    tx = process_optimizer()
    mesh = make_mesh()
    state = shard_train_state(TrainState.create(apply_fn=model.module.apply, params=model.params, tx=tx), mesh)
    batch, rng = shard_batch(rows, mesh), jax.random.PRNGKey(42)
    step = make_sharded_train_step(model, mesh, state, loss="masked-lm").lower(state, batch, rng).compile(
        COMPILER_OPTIONS)
    losses = []
    for _ in range(PROCESS_STEPS):
        state, metrics = step(state, batch, rng)
        losses.append(float(metrics["loss"]))
    wrote = distributed.save_pretrained(model, root / f"saved-{process_id}", state.params)
    np.savez(root / f"params-{process_id}.npz", **_flat(distributed.gather_params(state.params)))
    # The initial weights split over the processes (model axis 2): gathering them takes a collective.
    split = shard_params(model.params, make_mesh(1, PROCESSES))
    query = split["bert"]["encoder"]["layer"]["0"]["attention"]["self"]["query"]["kernel"]
    np.savez(root / f"gathered-{process_id}.npz", **_flat(distributed.gather_params(split)))
    print(json.dumps({"process_index": jax.process_index(), "process_count": jax.process_count(),
                      "devices": jax.device_count(), "losses": losses, "wrote": wrote,
                      "labelled_tokens": int((rows["labels"] != -100).sum()),
                      "split_query_shard": list(query.addressable_shards[0].data.shape),
                      "dropout": model.config.hidden_dropout_prob}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["process"]:
        _process_main(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
    else:
        _main()
