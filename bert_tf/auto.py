"""``AutoModel*`` classes: each picks its head class from ``bert_core.heads`` and loads it.

Also exported with the ``TF`` prefix that ``transformers`` 4.x used (``TFAutoModelForMaskedLM``).
"""

from __future__ import annotations

import os
from typing import Any

from bert_core.config import BertConfig
from bert_core.errors import ConfigError
from bert_core.heads import HEADS

from . import models

__all__ = [head.auto_name for head in HEADS.values()] + ["TF" + head.auto_name for head in HEADS.values()]


class _AutoModel:
    """Base of the ``AutoModelFor*`` classes; not instantiable, use the class methods."""

    _class_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ConfigError(f"{type(self).__name__} is built with .from_pretrained(...) or .from_config(config)")

    @classmethod
    def model_class(cls) -> type:
        """The ``bert_tf`` class this Auto class builds."""
        return getattr(models, "TF" + cls._class_name)

    @classmethod
    def from_config(cls, config: BertConfig, **kwargs: Any):
        """A randomly initialised model for ``config``."""
        return cls.model_class()(config, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None = None, **kwargs: Any):
        """Load a checkpoint; arguments as :func:`bert_tf.loading.from_pretrained`."""
        return cls.model_class().from_pretrained(pretrained_model_name_or_path, **kwargs)


def _make(auto_name: str, class_name: str) -> type:
    doc = f"Builds a :class:`bert_tf.TF{class_name}` from a config or checkpoint."
    return type(auto_name, (_AutoModel,), {"_class_name": class_name, "__doc__": doc, "__module__": __name__})


for _head in HEADS.values():
    globals()[_head.auto_name] = globals()["TF" + _head.auto_name] = _make(_head.auto_name, _head.class_name)
