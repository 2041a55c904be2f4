"""``tribert convert``: the ``--to`` target -> the package that writes it, then :func:`conversion.convert.convert`.

``conversion`` writes the targets that need no model (safetensors, and the
legacy ``pytorch_model.bin`` / ``flax_model.msgpack`` files, each importing
its framework lazily). A target that needs a backend's model is registered by
that backend in its ``CONVERT_WRITERS`` (``bert_tf.export.CONVERT_WRITERS``:
``tf``, ``keras``, ``savedmodel``; ``bert_flax.export``: ``jax-export``; ``bert_torch.export``:
``torch-export``); this module, above every backend, looks it
up, so no lower package ever imports a backend.
"""

from __future__ import annotations

import functools
import importlib
import os
from typing import Any, Callable

from bert_core.errors import ConfigError, MissingBackendError
from conversion import convert as _core

from . import progress

__all__ = ["TARGETS", "TARGET_FORMATS", "writer_for", "convert"]

#: ``--to`` target -> the module whose ``CONVERT_WRITERS`` holds its writer (``None``: conversion's own).
TARGETS: dict[str, str | None] = {
    "safetensors": None,
    "torch": None,
    "flax": None,
    "tf": "bert_tf.export",
    "keras": "bert_tf.export",
    "savedmodel": "bert_tf.export",
    "jax-export": "bert_flax.export",
    "torch-export": "bert_torch.export",
}
#: The ``pip install tribert[...]`` extra each backend needs.
_EXTRAS = {"bert_tf.export": "tf", "bert_flax.export": "flax", "bert_torch.export": "torch"}
TARGET_FORMATS = tuple(TARGETS)


def writer_for(to: str) -> Callable | None:
    """The backend writer of target ``to`` (``None`` for conversion's own targets).

    Raises:
        ConfigError: an unknown target.
        MissingBackendError: the backend (or its framework) cannot be imported.
    """
    if to not in TARGETS:
        raise ConfigError(f"--to {to!r} is not supported; choose one of {sorted(TARGETS)}")
    if TARGETS[to] is None:
        return None
    try:
        module = importlib.import_module(TARGETS[to])
    except ImportError as exc:
        raise MissingBackendError(f"--to {to} needs {TARGETS[to]}, which could not be imported ({exc}); "
                                  f"install it with `pip install tribert[{_EXTRAS[TARGETS[to]]}]`") from exc
    return module.CONVERT_WRITERS[to]


def convert(src: str | os.PathLike, to: str, out: str | os.PathLike, *, tokenizer_ops: str | None = None,
            **options: Any) -> _core.ConvertResult:
    """Convert the checkpoint ``src`` to format ``to`` in directory ``out``.

    Arguments as :func:`conversion.convert.convert`; ``to`` is one of :data:`TARGETS`.
    ``tokenizer_ops`` (``--to savedmodel`` only): ``"text"`` (tensorflow-text kernels) or ``"core"`` (core
    TensorFlow ops only, a SavedModel that loads without tensorflow-text). On a terminal, stderr shows a bar
    of its stages (read, map keys, write, manifest: a SavedModel export is the write).

    Raises:
        ConfigError: ``tokenizer_ops`` with another target.
    """
    writer = writer_for(to)
    if tokenizer_ops is not None:
        if to != "savedmodel":
            raise ConfigError(f"--tokenizer-ops applies to --to savedmodel only, not --to {to}")
        writer = functools.partial(writer, tokenizer_ops=tokenizer_ops)
    with progress.bar(total=len(_core.STAGES), desc=f"tribert convert --to {to}", unit="stage") as bar:

        def on_stage(name: str) -> None:
            bar.update(_core.STAGES.index(name) - bar.n)
            bar.set_postfix_str(name)

        return _core.convert(src, to, out, writer=writer, on_stage=on_stage, **options)
