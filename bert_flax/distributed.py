"""Training across processes (one per host) with JAX's own runtime: ``jax.distributed`` and one global mesh.

Every process runs the same script; :func:`initialize` comes before any other JAX call:

    distributed.initialize("hostA:1234", num_processes=2, process_id=int(os.environ["PROCESS_ID"]))
    model = FlaxBertForMaskedLM.from_pretrained(path)           # the same weights in every process
    mesh = make_mesh()                                          # over every process's devices
    state = shard_train_state(TrainState.create(apply_fn=model.module.apply, params=model.params, tx=tx), mesh)
    step = make_sharded_train_step(model, mesh, state, loss="masked-lm")
    for rows in local_batches:                                  # this process's rows of each global batch
        state, metrics = step(state, shard_batch(rows, mesh), dropout_rng)
    distributed.save_pretrained(model, "finetuned/", state.params)   # every process calls it; process 0 writes

The step is :mod:`bert_flax.sharding`'s: ``jax.jit`` sees the global batch as one array split over the
processes' devices, so the loss is the mean over the global batch's labels (not a mean of the processes'
means) and XLA inserts the cross-process all-reduce, over gloo on CPU hosts.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

__all__ = ["initialize", "is_chief", "gather_params", "save_pretrained"]


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, **kwargs: Any) -> None:
    """``jax.distributed.initialize`` with cross-process CPU collectives over gloo.

    Call it first in every process, before anything that touches a device (``jax.devices()``,
    a computation, loading a model onto a device). Process 0 also runs the coordinator at
    ``coordinator_address`` (``"host:port"``, reachable from every process). On Cloud TPU, Slurm
    and Open MPI the three arguments may be left out (JAX reads them from the environment).

    Args:
        coordinator_address: process 0's ``host:port``.
        num_processes: how many processes take part.
        process_id: this process's index, ``0 <= process_id < num_processes``.
        kwargs: passed to ``jax.distributed.initialize`` (``local_device_ids``,
            ``coordinator_bind_address``, ``initialization_timeout``, ...).
    """
    # Older JAX releases default to no collectives between CPU processes; GPU and TPU runs ignore the setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)


def is_chief() -> bool:
    """Whether this process writes checkpoints: process 0 (the only one without ``jax.distributed``)."""
    return jax.process_index() == 0


def gather_params(params) -> Any:
    """The full parameters as numpy arrays, in every process.

    A replicated array is read from this process's own copy; arrays split over several
    processes are gathered with ``multihost_utils.process_allgather``, a collective every process
    must enter (all of them in one call).
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    split = [i for i, leaf in enumerate(leaves) if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable
             and not leaf.is_fully_replicated]
    full = [np.asarray(leaf.addressable_data(0)) if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable
            else np.asarray(leaf) for leaf in leaves]
    if split:
        for i, gathered in zip(split, multihost_utils.process_allgather([leaves[i] for i in split], tiled=True)):
            full[i] = np.asarray(gathered)
    return jax.tree_util.tree_unflatten(treedef, full)


def save_pretrained(model, save_directory: str | os.PathLike, params=None, **kwargs: Any) -> bool:
    """Write the canonical checkpoint of parameters trained on a multi-process mesh; process 0 writes.

    Every process must call it. The parameters are gathered (:func:`gather_params`), process 0
    writes ``config.json`` and ``model.safetensors`` as ``model.save_pretrained`` does, and all
    processes then meet at a barrier, so the files exist once the call returns anywhere. The
    other processes write nothing: ``save_directory`` may be a path on a disk only process 0 has.

    Args:
        model: the wrapper (its config and head name the checkpoint).
        save_directory: the output directory.
        params: the trained parameters (``state.params``); default ``model.params``.
        kwargs: passed to ``model.save_pretrained`` (``max_shard_size``, ``format``).

    Returns:
        Whether this process wrote the files.
    """
    full = gather_params(model.params if params is None else params)
    chief = is_chief()
    if chief:
        model.save_pretrained(save_directory, params=full, **kwargs)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("bert_flax.distributed.save_pretrained")
    return chief
