"""Training and checkpointing ``bert_tf`` models under ``tf.distribute`` strategies.

TensorFlow's engine does the distribution; this module only holds what BERT
training gets wrong without it:

    strategy = tf.distribute.MirroredStrategy()          # or MultiWorkerMirroredStrategy, TPUStrategy
    model = from_pretrained(TFBertForMaskedLM, path, strategy=strategy)   # mirrored variables
    with strategy.scope():
        optimizer = keras.optimizers.AdamW(1e-4)
    step = make_train_step(model, optimizer, strategy, max_grad_norm=1.0)
    for batch in batches:                                 # numpy dicts of the *global* batch
        metrics = step(shard_batch(strategy, batch))      # {"loss", "grad_norm"} of the global batch
    save_pretrained(model, out_dir, strategy)             # the chief writes the canonical checkpoint

- **Loss reduction.** A head's loss is a mean over its labelled positions
  (``-100`` ignored). Averaging the replicas' means, as ``model.fit`` and DDP
  do, is the global mean only when every replica holds as many labelled
  tokens; :func:`make_train_step` weights each replica's mean by its share of
  the global label count, so the step equals the single-device step on the
  same global batch for any masking.
- **Gradient clipping.** Keras clips (``clipnorm`` / ``global_clipnorm``)
  inside ``apply_gradients`` before it sums the replicas' gradients, i.e. by
  the norm of a partial gradient. :func:`make_train_step` clips by the norm of
  the summed gradients (``max_grad_norm``), and refuses an optimizer that
  clips by itself on more than one replica.

``model.fit`` under ``strategy.scope()`` works too (Keras splits the batch and
sums the gradients), with the averaging and clipping caveats above.
``keras.distribution.DataParallel`` does nothing on Keras' TensorFlow backend
(docs/scaling.md): use a ``tf.distribute`` strategy.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf

from bert_core.errors import ConfigError

from .base import TFBertPreTrainedModel, dense_gradients

__all__ = ["from_pretrained", "shard_batch", "make_train_step", "save_pretrained", "is_chief"]

_SUM = tf.distribute.ReduceOp.SUM


def _strategy(strategy: tf.distribute.Strategy | None) -> tf.distribute.Strategy:
    return strategy if strategy is not None else tf.distribute.get_strategy()


def from_pretrained(model_class: type, name_or_path: str | os.PathLike, *,
                    strategy: tf.distribute.Strategy | None = None, **kwargs: Any) -> TFBertPreTrainedModel:
    """``model_class.from_pretrained(name_or_path, **kwargs)`` with its variables created under ``strategy.scope()``.

    Every variable is then a distributed (mirrored) variable with one copy per replica, each
    holding the checkpoint's values. Without ``strategy``, the current one (``tf.distribute.get_strategy()``).
    """
    with _strategy(strategy).scope():
        return model_class.from_pretrained(name_or_path, **kwargs)


def shard_batch(strategy: tf.distribute.Strategy, batch: Mapping[str, Any]):
    """Split a global batch ``{name: array (global_batch, ...)}`` into per-replica values for ``strategy.run``.

    Replica ``i`` (its id in the sync group, counted over all workers) gets rows
    ``[i * n, (i + 1) * n)`` with ``n = global_batch / num_replicas_in_sync``, so every worker may
    be given the same global batch and takes only its own replicas' rows.

    Raises:
        ConfigError: the arrays disagree on the batch size, or the replicas do not divide it.
    """
    arrays = {k: np.asarray(v) for k, v in batch.items() if v is not None}
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in arrays.items()}
    if not arrays or len(set(sizes.values())) != 1 or None in sizes.values():
        raise ConfigError(f"shard_batch needs arrays with one leading batch axis, got shapes "
                          f"{ {k: tuple(v.shape) for k, v in arrays.items()} }")
    rows, replicas = next(iter(sizes.values())), strategy.num_replicas_in_sync
    if rows % replicas:
        name = next(iter(arrays))
        raise ConfigError(f"batch[{name!r}] of shape {tuple(arrays[name].shape)}: a global batch of {rows} rows does "
                          f"not split over {replicas} replicas; use a multiple of {replicas}")
    per_replica = rows // replicas

    def replica_rows(context: tf.distribute.InputContext) -> dict[str, tf.Tensor]:
        start = context.replica_id_in_sync_group * per_replica
        return {k: tf.convert_to_tensor(v[start:start + per_replica]) for k, v in arrays.items()}

    return strategy.experimental_distribute_values_from_function(replica_rows)


def _label_count(model: TFBertPreTrainedModel, labels: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """What this replica's loss is a mean over: its labelled tokens (or rows), float32."""
    first = labels[model.label_names[0]]
    kind = model.head.loss
    if kind in ("pretraining", "question_answering") or not first.dtype.is_integer:
        # Two loss terms (MLM + NSP, start + end) or a per-row regression / multi-label loss: rows.
        return tf.cast(tf.shape(first)[0], tf.float32)
    if kind == "causal_lm":
        first = first[:, 1:]  # logits at t predict labels[t + 1]: the first label is never used
    return tf.reduce_sum(tf.cast(tf.not_equal(first, -100), tf.float32))


def make_train_step(model: TFBertPreTrainedModel, optimizer, strategy: tf.distribute.Strategy | None = None, *,
                    max_grad_norm: float | None = None,
                    return_gradients: bool = False) -> Callable[[Any], dict[str, Any]]:
    """A compiled (``tf.function``) training step over the replicas of ``strategy``.

    Each replica computes its rows' loss (the head's own label loss), scaled by its share of
    the global label count so that the replicas' losses sum to the global batch's loss;
    ``optimizer.apply_gradients`` sums the replicas' gradients (an all-reduce) and updates
    every copy of the variables alike. With ``max_grad_norm`` the gradients are clipped by the
    global norm of that sum, which costs one more all-reduce (Keras' optimizer sums only what
    it is given, in a replica context, after its own clipping).

    Args:
        model, optimizer: both created under ``strategy.scope()``.
        strategy: default ``tf.distribute.get_strategy()`` (one device: the plain step).
        max_grad_norm: clip the summed gradients to this global norm.
        return_gradients: also return ``"gradients"``, ``{parameter path: summed gradient}``.

    Returns:
        ``step(batch) -> {"loss": scalar[, "grad_norm": scalar before clipping, "gradients"]}`` (``grad_norm``
        with ``max_grad_norm`` or ``return_gradients``),
        ``batch`` being :func:`shard_batch`'s per-replica values (or, on one device, a dict of
        tensors) with the labels of ``model.label_names``.

    Raises:
        ConfigError: the optimizer clips by itself on more than one replica, or a batch lacks labels.
    """
    strategy = _strategy(strategy)
    clipping = {k: getattr(optimizer, k, None) for k in ("clipnorm", "global_clipnorm", "clipvalue")}
    clipping = {k: v for k, v in clipping.items() if v}
    if clipping and strategy.num_replicas_in_sync > 1:
        raise ConfigError(f"optimizer {type(optimizer).__name__} clips with {clipping}: Keras clips each replica's "
                          f"partial gradient before the replicas are summed; create it without clipping and pass "
                          f"max_grad_norm= to make_train_step")
    variables = list(model.trainable_weights)
    names = {id(v): k for k, v in model.named_weights().items()}
    with strategy.scope():
        optimizer.build(variables)

    def replica_step(batch):
        labels = {k: batch[k] for k in model.label_names if k in batch}
        if model.label_names[0] not in labels:
            raise ConfigError(f"make_train_step: the batch of {type(model).__name__} needs {list(model.label_names)}, "
                              f"got {sorted(batch)}")
        context = tf.distribute.get_replica_context()
        count = _label_count(model, labels)
        share = count / context.all_reduce(_SUM, count)
        with tf.GradientTape() as tape:
            outputs = model(**batch, training=True, return_dict=True)
            loss = tf.cast(outputs.loss, tf.float32) * share
            for extra in model.losses:  # regularisers: once over all the replicas
                loss = loss + tf.cast(extra, tf.float32) / strategy.num_replicas_in_sync
        # Embedding gradients summed into dense tensors, as in fit (Keras' Adam mishandles repeated rows).
        gradients = dense_gradients(tape.gradient(loss, variables))
        metrics = {"loss": loss}
        if max_grad_norm or return_gradients:
            # The global norm needs the summed gradients; Keras' optimizer sums the replicas' gradients
            # itself (and only in a replica context), so this costs one more all-reduce. Clipping is a
            # common factor: scaling every replica's part by it scales their sum.
            summed = context.all_reduce(_SUM, gradients)
            metrics["grad_norm"] = tf.linalg.global_norm(summed)
            if return_gradients:
                metrics["gradients"] = summed
            if max_grad_norm:
                # tf.clip_by_global_norm's (and optax's) factor
                factor = max_grad_norm / tf.maximum(metrics["grad_norm"], max_grad_norm)
                gradients = [g * factor for g in gradients]
        optimizer.apply_gradients(zip(gradients, variables))  # all-reduces (sums) the replicas' gradients
        return metrics

    @tf.function
    def step(batch):
        per_replica = strategy.run(replica_step, args=(batch,))
        metrics = {"loss": strategy.reduce(_SUM, per_replica["loss"], axis=None)}
        # every replica holds the same summed gradients: read the first one's
        for name in ("grad_norm", "gradients"):
            if name in per_replica:
                metrics[name] = strategy.experimental_local_results(per_replica[name])[0]
        if "gradients" in metrics:
            metrics["gradients"] = {names.get(id(v), v.path): g for v, g in zip(variables, metrics["gradients"])}
        return metrics

    return step


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether this process is the one that writes checkpoints: always, except on the non-chief workers
    of a multi-worker strategy (``TF_CONFIG`` task ``chief``, else ``worker`` 0)."""
    resolver = getattr(_strategy(strategy), "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster)


def save_pretrained(model: TFBertPreTrainedModel, save_directory: str | os.PathLike,
                    strategy: tf.distribute.Strategy | None = None, **kwargs: Any) -> bool:
    """Write the canonical checkpoint of a model trained under ``strategy``; only the chief writes.

    Call it from the training script's top level (cross-replica context), on every worker:
    each replica holds a full copy of the weights, so the chief reads its own copy and no
    collective is involved. The files are those :func:`bert_tf.loading.save_pretrained` writes
    for an undistributed model (``kwargs``: ``max_shard_size``).

    Returns:
        Whether this process wrote the files.

    Raises:
        ConfigError: called inside ``strategy.run`` (a replica context).
    """
    if not tf.distribute.in_cross_replica_context() and tf.distribute.has_strategy():
        raise ConfigError("bert_tf.distributed.save_pretrained runs in the cross-replica context: call it outside "
                          "strategy.run (after the step), on every worker")
    if not is_chief(strategy):
        return False
    model.save_pretrained(save_directory, **kwargs)
    return True
