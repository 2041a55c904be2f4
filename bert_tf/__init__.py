"""Keras 3 (TensorFlow backend) implementation of tribert's BERT.

``TFBertModel`` and the eight heads (also exported without the ``TF`` prefix),
Auto classes, loading / saving the canonical checkpoint, an in-graph
``TFBertTokenizer``, SavedModel serving (from raw strings or token ids) and
``transformers`` 4.x's TF optimizer helpers (``create_optimizer``, ``AdamWeightDecay``, ``WarmUp``). Importing this
package imports TensorFlow and Keras only (never torch or jax).
"""

from bert_core._version import __version__  # noqa: F401  (one version for every package)

import os as _os
import sys as _sys

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from bert_core._lazy import require as _require  # noqa: E402

if "tensorflow" not in _sys.modules and "jax" not in _sys.modules:
    # TensorFlow's tflite utilities try `from jax import jit` at import time, which loads all of jaxlib
    # whenever jax is installed. A backend imports only its own framework: hide jax while TensorFlow
    # imports (only TFLite's JAX converter notices), then let any later `import jax` work as usual.
    _sys.modules["jax"] = None  # type: ignore[assignment]
    try:
        _require("tensorflow")
    finally:
        del _sys.modules["jax"]
_require("tensorflow")
_keras = _require("keras")
if _keras.backend.backend() != "tensorflow":
    from bert_core.errors import MissingBackendError as _MissingBackendError

    raise _MissingBackendError(
        f"bert_tf needs Keras' TensorFlow backend, but keras was already imported with "
        f"KERAS_BACKEND={_keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow before importing keras")

from ._nest import register_output_nests  # noqa: E402

register_output_nests()

from bert_core.config import BertConfig  # noqa: E402
from bert_core.outputs import *  # noqa: E402,F401,F403
from bert_core.outputs import __all__ as _output_names  # noqa: E402
from bert_core.outputs import BertForPreTrainingOutput as TFBertForPreTrainingOutput  # noqa: E402

from . import auto as _auto  # noqa: E402
from .auto import *  # noqa: E402,F401,F403
from .attention import eager_attention, fused_attention, make_attention_bias  # noqa: E402
from .compiled import DEFAULT_BUCKETS, CompiledCall, bucket_dataset, bucket_length  # noqa: E402
from .base import TFBertPreTrainedModel, dense_gradients, named_weights  # noqa: E402
from .export import write_converted, write_tf_h5  # noqa: E402
from .loading import canonical_tensors  # noqa: E402
from .models import (  # noqa: E402
    TFBertForMaskedLM,
    TFBertForMultipleChoice,
    TFBertForNextSentencePrediction,
    TFBertForPreTraining,
    TFBertForQuestionAnswering,
    TFBertForSequenceClassification,
    TFBertForTokenClassification,
    TFBertLMHeadModel,
    TFBertModel,
)
from .optimization import AdamWeightDecay, WarmUp, create_optimizer  # noqa: E402
from .serving import export_savedmodel, serving_signatures  # noqa: E402
from .tokenizer import TFBertTokenizer  # noqa: E402
from .pipeline import pipeline  # noqa: E402

# The unprefixed names, so code can be written once for the three backends.
BertModel = TFBertModel
BertForPreTraining = TFBertForPreTraining
BertLMHeadModel = TFBertLMHeadModel
BertForMaskedLM = TFBertForMaskedLM
BertForNextSentencePrediction = TFBertForNextSentencePrediction
BertForSequenceClassification = TFBertForSequenceClassification
BertForMultipleChoice = TFBertForMultipleChoice
BertForTokenClassification = TFBertForTokenClassification
BertForQuestionAnswering = TFBertForQuestionAnswering

__all__ = [
    "pipeline",
    "BertConfig",
    "TFBertModel",
    "TFBertForPreTraining",
    "TFBertLMHeadModel",
    "TFBertForMaskedLM",
    "TFBertForNextSentencePrediction",
    "TFBertForSequenceClassification",
    "TFBertForMultipleChoice",
    "TFBertForTokenClassification",
    "TFBertForQuestionAnswering",
    "BertModel",
    "BertForPreTraining",
    "BertLMHeadModel",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "TFBertPreTrainedModel",
    "TFBertForPreTrainingOutput",
    *_auto.__all__,
    "named_weights",
    "dense_gradients",
    "CompiledCall",
    "DEFAULT_BUCKETS",
    "bucket_length",
    "bucket_dataset",
    "canonical_tensors",
    "TFBertTokenizer",
    "export_savedmodel",
    "serving_signatures",
    "create_optimizer",
    "AdamWeightDecay",
    "WarmUp",
    "write_converted",
    "write_tf_h5",
    "eager_attention",
    "fused_attention",
    "make_attention_bias",
    *_output_names,
]
