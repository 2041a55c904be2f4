"""PyTorch implementation of tribert's BERT: ``BertModel``, the eight heads, Auto classes, loading.

Parameter names are the canonical checkpoint keys, so a ``transformers``
state dict loads without renaming. Importing this package imports torch only
(never tensorflow or jax).
"""

from bert_core._version import __version__  # noqa: F401  (one version for every package)

from bert_core._lazy import require as _require

_require("torch")

from ._pytree import register_output_pytrees  # noqa: E402

register_output_pytrees()

from bert_core.config import BertConfig  # noqa: E402
from bert_core.outputs import *  # noqa: E402,F401,F403
from bert_core.outputs import __all__ as _output_names  # noqa: E402

from .attention import eager_attention, fused_attention, make_attention_bias  # noqa: E402
from .auto import (  # noqa: E402
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForNextSentencePrediction,
    AutoModelForPreTraining,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)
from .base import BertPreTrainedModel  # noqa: E402
from .models import (  # noqa: E402
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertLMHeadModel,
    BertModel,
)

from .pipeline import pipeline  # noqa: E402

__all__ = [
    "pipeline",
    "BertConfig",
    "BertModel",
    "BertForPreTraining",
    "BertLMHeadModel",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "BertPreTrainedModel",
    "AutoModel",
    "AutoModelForPreTraining",
    "AutoModelForMaskedLM",
    "AutoModelForCausalLM",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
    "AutoModelForQuestionAnswering",
    "AutoModelForMultipleChoice",
    "AutoModelForNextSentencePrediction",
    "eager_attention",
    "fused_attention",
    "make_attention_bias",
    *_output_names,
]
