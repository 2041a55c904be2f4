"""``FlaxAutoModel*``: pick the Flax wrapper from the ``bert_core`` head registry.

``FlaxAutoModelForX.from_pretrained(path)`` builds the head the class is for
(the checkpoint's ``architectures`` only matter to :class:`FlaxAutoModel`'s
siblings in the other backends); ``from_config(config)`` builds it randomly initialised.
"""

from __future__ import annotations

import os
from typing import Any

from bert_core.config import BertConfig
from bert_core.heads import HEADS

from . import models

__all__ = [
    "FlaxAutoModel",
    "FlaxAutoModelForPreTraining",
    "FlaxAutoModelForCausalLM",
    "FlaxAutoModelForMaskedLM",
    "FlaxAutoModelForNextSentencePrediction",
    "FlaxAutoModelForSequenceClassification",
    "FlaxAutoModelForMultipleChoice",
    "FlaxAutoModelForTokenClassification",
    "FlaxAutoModelForQuestionAnswering",
]


class _FlaxAutoBase:
    head_name = "base"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"{type(self).__name__} is not instantiated: use .from_pretrained(...) or .from_config(...)")

    @classmethod
    def model_class(cls) -> type:
        """The wrapper class this auto class builds (``FlaxBertForMaskedLM``...)."""
        return getattr(models, HEADS[cls.head_name].flax_name)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None = None, **kwargs: Any):
        """``model_class().from_pretrained(pretrained_model_name_or_path, **kwargs)``."""
        return cls.model_class().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def from_config(cls, config: BertConfig, **kwargs: Any):
        """A randomly initialised ``model_class()(config, **kwargs)``."""
        return cls.model_class()(config, **kwargs)


def _auto(name: str, head: str) -> type:
    return type(name, (_FlaxAutoBase,), {"head_name": head, "__doc__": f"Builds the {head!r} Flax head.",
                                         "__module__": __name__})


FlaxAutoModel = _auto("FlaxAutoModel", "base")
FlaxAutoModelForPreTraining = _auto("FlaxAutoModelForPreTraining", "pretraining")
FlaxAutoModelForCausalLM = _auto("FlaxAutoModelForCausalLM", "causal-lm")
FlaxAutoModelForMaskedLM = _auto("FlaxAutoModelForMaskedLM", "masked-lm")
FlaxAutoModelForNextSentencePrediction = _auto("FlaxAutoModelForNextSentencePrediction", "next-sentence")
FlaxAutoModelForSequenceClassification = _auto("FlaxAutoModelForSequenceClassification", "sequence-classification")
FlaxAutoModelForMultipleChoice = _auto("FlaxAutoModelForMultipleChoice", "multiple-choice")
FlaxAutoModelForTokenClassification = _auto("FlaxAutoModelForTokenClassification", "token-classification")
FlaxAutoModelForQuestionAnswering = _auto("FlaxAutoModelForQuestionAnswering", "question-answering")
